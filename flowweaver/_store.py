"""The in-memory store, and what every store shares (the protocols are in ``_store_types``).

A state store is a small durable map ``(namespace, key) -> StateEntry``. Four kinds of
namespace share one store and never see each other:

* a run's committed task results — one namespace per ``(workflow name, run id)``, built by
  :func:`run_namespace`, keyed by task name;
* a pipeline run's committed item results — one namespace per ``(pipeline name, run id)``,
  built by :func:`pipeline_namespace`, keyed by the JSON text of the item's id;
* the result cache of ``Task(cache=True)`` — :data:`CACHE_NAMESPACE`, keyed by task name and a
  hash of the task's code and inputs;
* :class:`~flowweaver.StateManager` key/value pairs — ``"kv:" + namespace``.

Stores hold text (what their :class:`~flowweaver.Serializer` made of a value), never live
objects, so every backend behaves the same. Each :meth:`StateStore.put` is durable on return
(one transaction). Entries whose ``expires_at`` has passed by the store's clock are absent:
``get`` and ``entries`` skip them and ``delete`` reports them as not found. The built-in stores
also *remove* them, so TTL entries never pile up: each store sweeps expired entries as it is
written (amortised, see each store) and has ``purge(namespace=None)`` to do it at once — an
optional method a store of your own may offer too (:meth:`StateManager.purge` uses it).
"""

from __future__ import annotations

import errno
import os
import threading
import time
from typing import TYPE_CHECKING, Any, Self

from ._claim import MemoryClaims
from ._errors import ConfigurationError
from ._history import DEFAULT_KEEP_RUNS, check_keep_runs, pipeline_namespace, run_namespace
from ._history_read import HasRunHistory
from ._public import publish
from ._serialize import JSONSerializer
from ._store_types import Serializer, StateEntry, StateStore

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import TracebackType

    from ._claim import Claim, RunLabel

__all__ = [
    "CACHE_NAMESPACE",
    "PURGE_EVERY",
    "Closing",
    "MemoryStore",
    "StateEntry",
    "StateStore",
    "check_clock",
    "check_serializer",
    "make_private_dirs",
    "pipeline_namespace",
    "run_namespace",
]

#: Where ``Task(cache=True)`` results live in a store.
CACHE_NAMESPACE = "cache"

#: Fewest writes between two sweeps for expired entries in a store that sweeps on write.
PURGE_EVERY = 256


def check_serializer(owner: str, serializer: object) -> Serializer:
    """The serializer to use (default :class:`JSONSerializer`), validated."""
    if serializer is None:
        return JSONSerializer()
    if not isinstance(serializer, Serializer):
        raise ConfigurationError(
            f"{owner}: serializer must implement Serializer (dumps/loads), got {serializer!r}"
        )
    return serializer


def check_clock(owner: str, clock: object) -> Callable[[], float]:
    """The wall clock to use (default ``time.time``), validated."""
    if clock is None:
        return time.time
    if not callable(clock):
        raise ConfigurationError(
            f"{owner}: clock must be a callable returning seconds, got {clock!r}"
        )
    return clock


def make_private_dirs(folder: str) -> None:
    """Create ``folder`` and any missing parents with owner-only permissions (0o700).

    Folders that already exist are left as they are.

    Raises:
        OSError: A folder cannot be created (or a file is in the way).
    """
    missing: list[str] = []
    current = os.path.abspath(folder)
    while not os.path.isdir(current):
        missing.append(current)
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    for path in reversed(missing):
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            if not os.path.isdir(path):
                raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), path) from None


class Closing:
    """``with obj:`` closes ``obj`` on the way out (stores and the StateManager)."""

    __slots__ = ()

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class MemoryStore(Closing, HasRunHistory):
    """A :class:`StateStore` in this process's memory: nothing survives the process.

    What :class:`~flowweaver.StateManager` uses without a ``storage_path``, and handy in tests.
    Values are still stored as serialized text, so what comes back is a copy with the same
    types a durable store would give.

    Args:
        serializer: Default :class:`~flowweaver.JSONSerializer`.
        clock: Wall-clock seconds for TTLs (default ``time.time``); inject one in tests.
        keep_runs: Run history kept per workflow or pipeline name (default 1000; None: no
            limit; 0: record no history); see :meth:`runs`.
    """

    __slots__ = (
        "_claims", "_clock", "_data", "_lock", "_next_purge", "_writes", "keep_runs", "serializer"
    )  # fmt: skip

    def __init__(
        self,
        *,
        serializer: Serializer | None = None,
        clock: Callable[[], float] | None = None,
        keep_runs: int | None = DEFAULT_KEEP_RUNS,
    ) -> None:
        self.serializer = check_serializer("MemoryStore", serializer)
        self._clock = check_clock("MemoryStore", clock)
        self.keep_runs = check_keep_runs("MemoryStore", keep_runs)
        self._data: dict[str, dict[str, StateEntry]] = {}
        self._lock = threading.Lock()
        self._writes = 0
        self._next_purge = PURGE_EVERY
        self._claims = MemoryClaims("MemoryStore")

    def __repr__(self) -> str:
        return f"MemoryStore({sum(map(len, self._data.values()))} entries)"

    # A cached Task carries one of these; it must pickle with the Task (to a process or a Dask
    # worker), minus its lock.
    def __getstate__(self) -> tuple[Serializer, Callable[[], float], dict[str, Any], int | None]:
        with self._lock:
            data = {ns: dict(e) for ns, e in self._data.items()}
            return self.serializer, self._clock, data, self.keep_runs

    def __setstate__(
        self, state: tuple[Serializer, Callable[[], float], dict[str, Any], int | None]
    ) -> None:
        self.serializer, self._clock, self._data, self.keep_runs = state
        self._lock = threading.Lock()
        self._writes = 0
        self._next_purge = PURGE_EVERY
        self._claims = MemoryClaims("MemoryStore")

    def now(self) -> float:
        return self._clock()

    def get(self, namespace: str, key: str) -> StateEntry | None:
        with self._lock:
            entry = self._data.get(namespace, {}).get(key)
        return None if entry is None or entry.is_expired(self._clock()) else entry

    def put(self, namespace: str, key: str, entry: StateEntry) -> None:
        with self._lock:
            self._data.setdefault(namespace, {})[key] = entry
            self._writes += 1
            if self._writes < self._next_purge:
                return
            # Amortised: a sweep of n entries at most every n writes, so O(1) per write.
            self._writes = 0
            now = self._clock()
            live = 0
            for entries in self._data.values():
                for expired in [k for k, e in entries.items() if e.is_expired(now)]:
                    del entries[expired]
                live += len(entries)
            self._next_purge = max(PURGE_EVERY, live)

    def delete(self, namespace: str, key: str) -> bool:
        with self._lock:
            entry = self._data.get(namespace, {}).pop(key, None)
        return entry is not None and not entry.is_expired(self._clock())

    def clear(self, namespace: str) -> None:
        with self._lock:
            self._data.pop(namespace, None)

    def entries(self, namespace: str) -> dict[str, StateEntry]:
        now = self._clock()
        with self._lock:
            items = list(self._data.get(namespace, {}).items())
        return {key: entry for key, entry in items if not entry.is_expired(now)}

    def purge(self, namespace: str | None = None) -> int:
        """Remove the expired entries of ``namespace`` (None: of every namespace); how many.

        ``put`` also sweeps expired entries now and then (amortised O(1) per write).
        """
        now = self._clock()
        removed = 0
        with self._lock:
            for ns in [namespace] if namespace is not None else list(self._data):
                entries = self._data.get(ns, {})
                for expired in [k for k, e in entries.items() if e.is_expired(now)]:
                    del entries[expired]
                    removed += 1
        return removed

    def claim(self, namespace: str, label: RunLabel, timeout: float | None) -> Claim:
        """Own the run whose results live in ``namespace`` until the claim is released
        (within this process; see :mod:`flowweaver._claim`).

        Raises:
            RunLockedError: Another run owns it (still, after ``timeout`` seconds).
        """
        return self._claims.claim(namespace, label, timeout)

    def close(self) -> None:
        return


publish(__name__)  # last: every exported class above exists
