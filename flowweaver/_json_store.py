"""JSONFileStore: a whole state store in one human-readable JSON file, for small cases.

Design:

* **Atomic replace.** Every ``put``/``delete``/``clear`` writes the whole store to a temporary
  file in the same folder (created 0o600), fsyncs it, renames it over the store, then fsyncs
  the folder. A crash at any moment leaves either the old file or the new one, never a mix;
  a ``.<name>.*.tmp`` file a killed writer left behind is removed when the store is next
  opened (only its own names, under the writers' lock).
* **Expiry**: each rewrite leaves out the entries whose TTL has passed, so expired entries
  never accumulate; :meth:`JSONFileStore.purge` removes them on demand.
* **Cost**: each write rewrites the file, so a run of n tasks writes O(n²) bytes. Use
  :class:`~flowweaver.SQLiteStore` beyond a few hundred entries.
* **Several processes**: writers take an exclusive ``flock`` on ``<file>.lock`` (POSIX; on
  other systems there is no cross-process lock: use one writer process) and re-read the file
  under it before changing it, so concurrent writers never lose each other's entries. A writer
  that waits longer than ``timeout`` raises :class:`StateLockedError`. Readers need no lock
  (a rename is atomic); they re-read the file when its size, inode or modification time
  changed.
* **Errors**: a truncated, damaged or foreign file raises :class:`StateCorruptError`, and one
  from a newer format version :class:`StateVersionError`; the file is never overwritten then,
  so nothing committed is lost.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import sys
import tempfile
import threading
import time
from typing import TYPE_CHECKING, Any, TypeVar

from ._checks import check_number, is_number
from ._claim import FileClaims
from ._errors import (
    ConfigurationError,
    StateAccessError,
    StateCorruptError,
    StateError,
    StateLockedError,
    StateVersionError,
)
from ._history import DEFAULT_KEEP_RUNS, check_keep_runs
from ._history_read import HasRunHistory
from ._public import publish
from ._store import Closing, StateEntry, check_clock, check_serializer, make_private_dirs

if sys.platform != "win32":
    import fcntl

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from ._claim import Claim, RunLabel
    from ._serialize import Serializer

__all__ = ["FORMAT_VERSION", "JSONFileStore"]

#: The file format this module writes; it reads every version up to this one.
FORMAT_VERSION = 1
_FORMAT = "flowweaver-state"
_LOCK_POLL = 0.005  # seconds between attempts to take a held file lock

Namespaces = dict[str, dict[str, StateEntry]]
T = TypeVar("T")

logger = logging.getLogger("flowweaver.state")


class JSONFileStore(Closing, HasRunHistory):
    """A :class:`~flowweaver.StateStore` in one JSON file, replaced atomically on each write.

    Examples:
        >>> store = JSONFileStore(".flowkit/state.json")  # doctest: +SKIP

    Args:
        path: The file, created (0o600) on the first write; its folder (0o700) when the store
            is made.
        serializer: How values become text (default :class:`~flowweaver.JSONSerializer`).
        timeout: Seconds a write waits for another process's lock before
            :class:`StateLockedError`.
        fsync: Flush the file and its folder to disk on every write (default True). False
            survives a process crash but not an operating-system crash.
        clock: Wall-clock seconds for TTLs (default ``time.time``).
        keep_runs: Run history kept per workflow or pipeline name (default 1000; None: no
            limit; 0: record no history); see :meth:`runs`.

    Raises:
        StateCorruptError: The file exists but is not a readable store.
        StateVersionError: The file was written by a newer format version.
        StateAccessError: The file or its folder cannot be read or created.
        ConfigurationError: An argument is invalid.
    """

    __slots__ = (
        "_claims",
        "_clock",
        "_closed",
        "_data",
        "_lock",
        "_signature",
        "fsync",
        "keep_runs",
        "path",
        "serializer",
        "timeout",
    )

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        serializer: Serializer | None = None,
        timeout: float = 5.0,
        fsync: bool = True,
        clock: Callable[[], float] | None = None,
        keep_runs: int | None = DEFAULT_KEEP_RUNS,
    ) -> None:
        if not isinstance(path, str | os.PathLike) or not os.fspath(path):
            raise ConfigurationError(f"JSONFileStore: path must be a file path, got {path!r}")
        self.path = os.path.abspath(os.fspath(path))
        self._claims = FileClaims(self.path)
        self.timeout = check_number("JSONFileStore", "timeout", timeout)
        self.fsync = bool(fsync)
        self.serializer = check_serializer("JSONFileStore", serializer)
        self._clock = check_clock("JSONFileStore", clock)
        self.keep_runs = check_keep_runs("JSONFileStore", keep_runs)
        self._lock = threading.Lock()
        self._data: Namespaces = {}
        self._signature: tuple[int, int, int] | None = None
        self._closed = False
        try:
            make_private_dirs(os.path.dirname(self.path))
        except OSError as error:
            raise StateAccessError(self.path, error.strerror or str(error)) from error
        with self._lock:
            self._refresh()  # a corrupt or newer file is reported now, not at the first write
        self._remove_leftovers()

    def __repr__(self) -> str:
        return f"JSONFileStore({self.path!r})"

    # -- reading the file --------------------------------------------------------------------

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        except OSError as error:
            raise StateAccessError(self.path, error.strerror or str(error)) from error
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def _refresh(self, force: bool = False) -> None:
        """Re-read the file if it changed since we last read or wrote it (lock held).

        ``force``: re-read even if (inode, size, mtime) look unchanged — a reused inode on a
        file system with coarse timestamps could hide another writer's change.
        """
        if self._closed:
            raise StateAccessError(self.path, "the store is closed")
        signature = self._stat()
        if signature == self._signature and not force:
            return
        if signature is None:
            self._data, self._signature = {}, None
            return
        try:
            with open(self.path, "rb") as file:
                raw = file.read()
        except OSError as error:
            raise StateAccessError(self.path, error.strerror or str(error)) from error
        self._data = self._parse(raw)
        self._signature = signature

    def _parse(self, raw: bytes) -> Namespaces:
        if not raw.strip():
            raise StateCorruptError(self.path, "the file is empty (truncated?)")
        try:
            doc = json.loads(raw.decode("utf-8"))
        except RecursionError:
            raise StateCorruptError(self.path, "JSON nested too deeply to read") from None
        except ValueError as error:  # not JSON, not UTF-8, or a number of 5,000 digits
            raise StateCorruptError(self.path, f"not valid JSON ({error})") from None
        if not isinstance(doc, dict) or doc.get("format") != _FORMAT:
            raise StateCorruptError(self.path, "not a flowweaver state file")
        version = doc.get("version")
        if type(version) is not int or version < 1:
            raise StateCorruptError(self.path, f"unreadable format version {version!r}")
        if version > FORMAT_VERSION:
            raise StateVersionError(self.path, version, FORMAT_VERSION)
        namespaces = doc.get("namespaces")
        if not isinstance(namespaces, dict):
            raise StateCorruptError(self.path, "'namespaces' is not an object")
        data: Namespaces = {}
        for namespace, entries in namespaces.items():
            if not isinstance(entries, dict):
                raise StateCorruptError(self.path, f"namespace {namespace!r} is not an object")
            data[namespace] = {
                key: self._entry(namespace, key, raw_entry) for key, raw_entry in entries.items()
            }
        return data

    def _entry(self, namespace: str, key: str, raw: Any) -> StateEntry:
        try:
            entry = StateEntry(
                raw["data"], raw["created_at"], raw["expires_at"], raw["fingerprint"],
                raw["metadata"],
            )  # fmt: skip
            ok = (
                isinstance(entry.data, str)
                and is_number(entry.created_at)
                and (entry.expires_at is None or is_number(entry.expires_at))
                and isinstance(entry.fingerprint, str)
                and (entry.metadata is None or isinstance(entry.metadata, str))
            )
        except (KeyError, TypeError):
            ok = False
        if not ok:
            raise StateCorruptError(self.path, f"malformed entry {key!r} in {namespace!r}")
        return entry

    # -- writing the file --------------------------------------------------------------------

    def _write(self, change: Callable[[Namespaces], tuple[bool, T]]) -> T:
        """Apply ``change`` to the freshest contents; replace the file if it changed anything.

        ``change`` mutates a copy and returns ``(changed, result)``; ``result`` is returned.
        A rewrite leaves out every expired entry: the file is rewritten whole anyway, so
        purging on each write costs nothing more (TTL entries never pile up).
        """
        with self._lock, self._file_lock():
            self._refresh(force=True)  # under the lock: what we rewrite must be the latest
            data = {ns: dict(entries) for ns, entries in self._data.items()}
            changed, result = change(data)
            if changed:
                _drop_expired(data, self._clock())
                self._replace(data)
            return result

    def _remove_leftovers(self) -> None:
        """Delete this store's own temporary files that a killed writer left behind.

        Only names ``_replace`` makes (``.<name>.`` + mkstemp's 8 characters + ``.tmp``),
        only regular files, and only under the writers' file lock — a live writer creates and
        renames its temporary file while holding it, so no one else's file is touched.
        """
        folder, name = os.path.split(self.path)
        pattern = re.compile(re.escape(f".{name}.") + r"[a-z0-9_]{8}\.tmp")
        try:
            if not any(map(pattern.fullmatch, os.listdir(folder))):
                return  # the usual case: no lock taken, nothing created
            with _FileLock(self.path + ".lock", 0.0):  # busy: someone is writing; next time
                for entry in os.scandir(folder):
                    if pattern.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
                        with contextlib.suppress(FileNotFoundError):
                            os.unlink(entry.path)
                            logger.info("%r: removed leftover temporary file %r", self, entry.name)
        except (OSError, StateError) as error:  # a read-only folder, a busy lock: harmless
            logger.debug("%r: leftover temporary files not removed: %s", self, error)

    def _replace(self, data: Namespaces) -> None:
        doc = {
            "format": _FORMAT,
            "version": FORMAT_VERSION,
            "namespaces": {
                ns: {
                    key: {
                        "data": e.data,
                        "created_at": e.created_at,
                        "expires_at": e.expires_at,
                        "fingerprint": e.fingerprint,
                        "metadata": e.metadata,
                    }
                    for key, e in entries.items()
                }
                for ns, entries in data.items()
                if entries
            },
        }
        text = json.dumps(doc, indent=1).encode("utf-8")
        folder, name = os.path.split(self.path)
        try:
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".tmp")  # 0o600
            try:
                with os.fdopen(fd, "wb") as file:
                    file.write(text)
                    file.flush()
                    if self.fsync:
                        os.fsync(file.fileno())
                os.replace(tmp, self.path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
            if self.fsync and os.name == "posix":  # make the rename itself durable
                dir_fd = os.open(folder, os.O_RDONLY)
                try:
                    os.fsync(dir_fd)
                finally:
                    os.close(dir_fd)
        except OSError as error:
            raise StateAccessError(self.path, error.strerror or str(error)) from error
        self._data = data
        self._signature = self._stat()

    def _file_lock(self) -> _FileLock:
        return _FileLock(self.path + ".lock", self.timeout)

    # -- the StateStore protocol -------------------------------------------------------------

    def now(self) -> float:
        return self._clock()

    def get(self, namespace: str, key: str) -> StateEntry | None:
        with self._lock:
            self._refresh()
            entry = self._data.get(namespace, {}).get(key)
        return None if entry is None or entry.is_expired(self._clock()) else entry

    def put(self, namespace: str, key: str, entry: StateEntry) -> None:
        def change(data: Namespaces) -> tuple[bool, bool]:
            data.setdefault(namespace, {})[key] = entry
            return True, True

        self._write(change)

    def delete(self, namespace: str, key: str) -> bool:
        now = self._clock()

        def change(data: Namespaces) -> tuple[bool, bool]:
            entry = data.get(namespace, {}).pop(key, None)
            return entry is not None, entry is not None and not entry.is_expired(now)

        return self._write(change)

    def clear(self, namespace: str) -> None:
        def change(data: Namespaces) -> tuple[bool, bool]:
            return data.pop(namespace, None) is not None, True

        self._write(change)

    def entries(self, namespace: str) -> dict[str, StateEntry]:
        now = self._clock()
        with self._lock:
            self._refresh()
            items = list(self._data.get(namespace, {}).items())
        return {key: entry for key, entry in items if not entry.is_expired(now)}

    def purge(self, namespace: str | None = None) -> int:
        """Remove expired entries now; returns how many were removed.

        Every write already leaves expired entries out of the file, of *every* namespace
        (the file is rewritten whole), so this removes all of them whatever ``namespace``
        says; it is accepted for the same signature as the other stores.
        """
        now = self._clock()

        def change(data: Namespaces) -> tuple[bool, int]:
            removed = _drop_expired(data, now)
            return removed > 0, removed

        return self._write(change)

    def claim(self, namespace: str, label: RunLabel, timeout: float | None) -> Claim:
        """Own the run whose results live in ``namespace`` until the claim is released.

        A lock file in ``<store file>.runs/`` (see :mod:`flowweaver._claim`); durable runs
        call this, so that one run id has one owner at a time.

        Raises:
            RunLockedError: Another run owns it (still, after ``timeout`` seconds).
        """
        return self._claims.claim(namespace, label, timeout)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._data = {}


def _drop_expired(data: Namespaces, now: float) -> int:
    """Remove expired entries from ``data``; how many went."""
    removed = 0
    for entries in data.values():
        expired = [key for key, entry in entries.items() if entry.is_expired(now)]
        for key in expired:
            del entries[key]
        removed += len(expired)
    return removed


class _FileLock:
    """An exclusive ``flock`` on a sidecar file, waited for up to ``timeout`` seconds."""

    __slots__ = ("_fd", "path", "timeout")

    def __init__(self, path: str, timeout: float) -> None:
        self.path = path
        self.timeout = timeout
        self._fd = -1

    def __enter__(self) -> None:
        if sys.platform == "win32":  # pragma: no cover - no flock: one writer process only
            return
        store = self.path.removesuffix(".lock")
        try:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as error:
            raise StateAccessError(store, error.strerror or str(error)) from error
        deadline = time.monotonic() + self.timeout
        for _ in _attempts(deadline):
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue
            return
        os.close(self._fd)
        self._fd = -1
        raise StateLockedError(store, self.timeout)

    def __exit__(self, *exc: object) -> None:
        if self._fd >= 0:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = -1


def _attempts(deadline: float) -> Iterator[None]:
    """Yield once at once, then every ``_LOCK_POLL`` seconds until ``deadline`` passes."""
    yield
    while time.monotonic() < deadline:
        time.sleep(_LOCK_POLL)
        yield


publish(__name__)  # last: every exported class above exists
