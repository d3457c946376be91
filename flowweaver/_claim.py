"""One owner per durable run: the claim a run holds on its run id while it runs.

Two processes running the same ``(workflow, run id)`` on one store at once would both execute
every task. So a durable run first *claims* its run id on the store and holds the claim until
it ends; a second run of the same id gets :class:`~flowweaver.RunLockedError` naming the run
and the holder — or waits for the holder to finish, when asked (``owner_timeout=``).

Design:

* **File stores** (SQLite, JSON) claim with an exclusive ``flock`` on a small file per run id,
  ``<store file>.runs/<hash of the namespace>.lock`` (folder 0o700, files 0o600). The
  operating system holds the lock for as long as the descriptor is open and drops it when the
  process dies, however it dies: a ``kill -9``'d owner never leaves a stale claim, so there is
  no expiry to tune, no clock to trust and no pid to reuse. The file holds the holder's
  description (pid, host, start time) for the error message only; nothing relies on it.
* **Release** deletes the file, then closes it. A claimer that opened the old file before it
  was deleted finds, once it holds the lock, that its file is no longer the one at the path
  (inode check) and starts over on the new one, so two claimers never both win.
* **Several runs in one process** conflict like several processes: every claim opens its own
  descriptor, and ``flock`` locks belong to the open file, not to the process.
* :class:`~flowweaver.MemoryStore` keeps its claims in the store object (one process).
  A store of your own gets one-owner runs by offering ``claim(namespace, label, timeout)``
  returning an object with ``release()``; without it, runs are not claimed.
* Windows has no ``flock``: there, file stores do not claim runs (run one process per store,
  as for JSON writers).

Claims are taken by the thread that drives the run, once per run, before the run reads its
committed results (so what it reads is not being written by another owner).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import socket
import sys
import threading
import time
from typing import TYPE_CHECKING, Protocol

from ._errors import RunLockedError, StateAccessError

if sys.platform != "win32":
    import fcntl

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["Claim", "FileClaims", "MemoryClaims", "RunLabel", "claim_run", "holder_text"]

logger = logging.getLogger("flowweaver.state")

_POLL = 0.02  # seconds between attempts while waiting for an owner to finish

#: What a claim names in errors: (kind, name, run id), e.g. ("workflow", "etl", "2024-06-01").
RunLabel = tuple[str, str, str]


class Claim(Protocol):
    """A held claim on a run id; :meth:`release` ends it (idempotent)."""

    def release(self) -> None: ...


class _Unclaimed:
    __slots__ = ()

    def release(self) -> None:
        return


def holder_text(pid: int, host: str, since: float) -> str:
    """How a holder is named in :class:`~flowweaver.RunLockedError`."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(since))
    return f"process {pid} on host {host!r} since {stamp}"


def _me() -> dict[str, object]:
    return {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}


def _describe(raw: bytes) -> str | None:
    try:
        doc = json.loads(raw.decode("utf-8"))
        return holder_text(int(doc["pid"]), str(doc["host"]), float(doc["since"]))
    except (ValueError, KeyError, TypeError):
        return None  # the holder has not written it yet (or it is not ours to read)


def claim_run(store: object, namespace: str, label: RunLabel, timeout: float | None) -> Claim:
    """Claim the run whose results live in ``namespace`` of ``store``.

    Args:
        store: The run's store; one without a ``claim`` method is not claimed.
        namespace: The run's namespace in the store (one claim per namespace).
        label: How the run is named in errors.
        timeout: Seconds to wait for another owner to finish (0: do not wait; None: as long
            as it takes).

    Raises:
        RunLockedError: Another run owns it (still, after ``timeout``).
        StateAccessError: The claim file cannot be created.
    """
    claim: Callable[[str, RunLabel, float | None], Claim] | None = getattr(store, "claim", None)
    if claim is None:
        return _Unclaimed()
    return claim(namespace, label, timeout)


class _Waiting:
    """The deadline of one claim attempt, and the one log line a wait gets."""

    __slots__ = ("deadline", "label", "logged", "timeout")

    def __init__(self, label: RunLabel, timeout: float | None) -> None:
        self.label = label
        self.timeout = timeout
        self.deadline = None if timeout is None else time.monotonic() + timeout
        self.logged = False

    def expired(self, holder: str | None) -> bool:
        """True when the caller must give up; else logs (once) that it waits."""
        if self.deadline is not None and time.monotonic() >= self.deadline:
            return True
        if not self.logged:
            self.logged = True
            kind, name, run_id = self.label
            logger.info(
                "%s %r run %r is owned by %s; waiting for it to finish",
                kind, name, run_id, holder or "another run",
            )  # fmt: skip
        return False


class _FileClaim:
    __slots__ = ("_fd", "_lock", "path")

    def __init__(self, fd: int, path: str) -> None:
        self._fd = fd
        self.path = path
        self._lock = threading.Lock()

    def __del__(self) -> None:
        # A safety net: a claim its run forgot (a path that never reached finish()) must not
        # hold the run id for the rest of the process once nothing refers to it.
        with contextlib.suppress(Exception):  # at interpreter exit, os may be gone already
            self.release()

    def release(self) -> None:
        with self._lock:
            fd, self._fd = self._fd, -1
        if fd < 0:
            return
        try:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)  # while still locked: see the module docstring
        finally:
            os.close(fd)


class FileClaims:
    """The claims of one file store: lock files in ``<store file>.runs/``."""

    __slots__ = ("folder", "store_path")

    def __init__(self, store_path: str) -> None:
        self.store_path = store_path
        self.folder = store_path + ".runs"

    def claim(self, namespace: str, label: RunLabel, timeout: float | None) -> Claim:
        if sys.platform == "win32":  # pragma: no cover - no flock (see the module docstring)
            return _Unclaimed()
        name = hashlib.blake2b(namespace.encode("utf-8", "surrogatepass"), digest_size=16)
        path = os.path.join(self.folder, name.hexdigest() + ".lock")
        waiting = _Waiting(label, timeout)
        try:
            with contextlib.suppress(FileExistsError):
                os.mkdir(self.folder, 0o700)  # beside the store, whose folder exists
            while True:
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
                if _try_lock(fd):
                    if _is_current(fd, path):
                        me = json.dumps(_me()).encode()
                        os.ftruncate(fd, 0)
                        os.pwrite(fd, me, 0)
                        return _FileClaim(fd, path)
                    os.close(fd)  # released and deleted meanwhile: try the new file
                    continue
                holder = _describe(os.pread(fd, 4096, 0))
                os.close(fd)
                if waiting.expired(holder):
                    kind, run_name, run_id = label
                    raise RunLockedError(
                        self.store_path, run_name, run_id, holder, timeout or 0, kind
                    )
                time.sleep(_POLL)
        except RunLockedError:
            raise  # a TimeoutError, hence an OSError: not an access problem
        except OSError as error:
            raise StateAccessError(self.store_path, error.strerror or str(error)) from error


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _is_current(fd: int, path: str) -> bool:
    """Whether the locked descriptor is still the file at ``path`` (not one deleted since)."""
    try:
        here, there = os.fstat(fd), os.stat(path)
    except FileNotFoundError:
        return False
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)


class MemoryClaims:
    """The claims of one :class:`~flowweaver.MemoryStore` (this process only)."""

    __slots__ = ("_changed", "_held", "label")

    def __init__(self, label: str) -> None:
        self.label = label
        self._changed = threading.Condition()
        self._held: dict[str, str] = {}

    def claim(self, namespace: str, label: RunLabel, timeout: float | None) -> Claim:
        waiting = _Waiting(label, timeout)
        with self._changed:
            while namespace in self._held:
                holder = self._held[namespace]
                if waiting.expired(holder):
                    kind, name, run_id = label
                    raise RunLockedError(self.label, name, run_id, holder, timeout or 0, kind)
                self._changed.wait(_POLL if waiting.deadline is not None else None)
            me = _me()
            self._held[namespace] = holder_text(os.getpid(), str(me["host"]), time.time())
        return _MemoryClaim(self, namespace)

    def _release(self, namespace: str) -> None:
        with self._changed:
            self._held.pop(namespace, None)
            self._changed.notify_all()


class _MemoryClaim:
    __slots__ = ("_claims", "_namespace")

    def __init__(self, claims: MemoryClaims, namespace: str) -> None:
        self._claims: MemoryClaims | None = claims
        self._namespace = namespace

    def release(self) -> None:
        claims, self._claims = self._claims, None
        if claims is not None:
            claims._release(self._namespace)
