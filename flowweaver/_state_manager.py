"""Flowkit's StateManager: a key/value face with TTLs on the same state stores runs use."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from ._checks import check_number
from ._errors import ConfigurationError, SerializationError
from ._json_store import JSONFileStore
from ._public import publish
from ._sqlite_store import SQLiteStore
from ._store import Closing, MemoryStore, StateEntry, StateStore

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._serialize import Serializer

__all__ = ["StateManager"]

_SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")


class StateManager(Closing):
    """Key/value state with expiry, in memory or in a file (Flowkit's ``StateManager``).

    Examples:
        >>> state = StateManager()  # in memory
        >>> state.set("task_result", {"rows": (1, 2)}, ttl=3600)
        >>> state.get("task_result")
        {'rows': (1, 2)}
        >>> state.set("nothing", None)
        >>> state.has("nothing"), state.get("missing", "default")
        (True, 'default')

    Where the state lives, by ``storage_path``:

    * ``None``: a :class:`~flowweaver.MemoryStore` (gone with the process);
    * a path ending ``.json``: a :class:`~flowweaver.JSONFileStore` (one file, atomic writes);
    * ``.db``, ``.sqlite`` or ``.sqlite3``: a :class:`~flowweaver.SQLiteStore`;
    * anything else: :class:`~flowweaver.ConfigurationError`.

    Or pass ``store=`` to share a store (a run's, say); ``namespace`` keeps several managers on
    one store apart, and apart from runs and the task cache. Missing folders are created 0o700
    and files 0o600.

    Values keep their types as the store's :class:`~flowweaver.Serializer` does (tuples, sets,
    datetimes, dataclasses … with the default one). A stored ``None`` is a value: ``has`` is
    True and ``get`` returns ``None``, not ``default``. An entry past its TTL is absent for
    every method, and is removed from the store as it is written (amortised) or by
    :meth:`purge`. Each ``set``/``delete``/``clear`` is durable when it returns.

    Args:
        storage_path: Where to keep the state (see above).
        default_ttl: Seconds an entry lives when ``set`` gets no ``ttl`` (None: forever).
        store: A store to use instead of ``storage_path``; the manager does not close it.
        namespace: Name of this manager's key space in the store.
        serializer: For the store the manager creates (default
            :class:`~flowweaver.JSONSerializer`).
        clock: Wall-clock seconds for TTLs (default ``time.time``), for the store the manager
            creates; inject one in tests.

    Raises:
        ConfigurationError: An argument is invalid, or ``storage_path`` has an unknown suffix.
        StateError: The file cannot be opened (corrupt, newer version, locked, no access).
    """

    __slots__ = ("_owned", "default_ttl", "namespace", "store")

    def __init__(
        self,
        storage_path: str | os.PathLike[str] | None = None,
        default_ttl: float | None = None,
        *,
        store: StateStore | None = None,
        namespace: str = "default",
        serializer: Serializer | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        if default_ttl is not None:
            check_number("StateManager", "default_ttl", default_ttl, strict=True)
        if not isinstance(namespace, str) or not namespace:
            raise ConfigurationError(
                f"StateManager: namespace must be a non-empty str, got {namespace!r}"
            )
        self.default_ttl = default_ttl
        self.namespace = namespace
        self._owned = store is None
        if store is not None:
            if storage_path is not None or serializer is not None or clock is not None:
                raise ConfigurationError(
                    "StateManager: give either store= or storage_path/serializer/clock, not both"
                )
            if not isinstance(store, StateStore):
                raise ConfigurationError(
                    f"StateManager: store must implement StateStore, got {store!r}"
                )
            self.store: StateStore = store
        else:
            self.store = open_store(storage_path, serializer, clock)

    def __repr__(self) -> str:
        return f"StateManager(store={self.store!r}, namespace={self.namespace!r})"

    @property
    def _ns(self) -> str:
        return "kv:" + self.namespace

    def set(
        self,
        key: str,
        value: Any,
        ttl: float | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        """Store ``value`` at ``key``, replacing any entry.

        Args:
            key: The key.
            value: Anything the store's serializer can store (``None`` included).
            ttl: Seconds until the entry expires (default: ``default_ttl``).
            metadata: A dict stored beside the value (see :meth:`get_metadata`).

        Raises:
            SerializationError: ``value`` or ``metadata`` has no stored form.
            ConfigurationError: ``key``, ``ttl`` or ``metadata`` is invalid.
            StateError: The store cannot be written.
        """
        _check_key(key)
        if ttl is not None:
            check_number("StateManager.set", "ttl", ttl, strict=True)
        else:
            ttl = self.default_ttl
        if metadata is not None and not isinstance(metadata, dict):
            raise ConfigurationError(
                f"StateManager.set: metadata must be a dict or None, got {metadata!r}"
            )
        serializer = self.store.serializer
        try:
            data = serializer.dumps(value)
            meta = None if metadata is None else serializer.dumps(metadata)
        except SerializationError as error:
            raise SerializationError(
                error.type_name, f"{error.reason} (state key {key!r})"
            ) from error
        now = self.store.now()
        expires = None if ttl is None else now + ttl
        self.store.put(self._ns, key, StateEntry(data, now, expires, "", meta))

    def get(self, key: str, default: Any = None) -> Any:
        """The value at ``key``, or ``default`` when there is none (or it expired)."""
        _check_key(key)
        entry = self.store.get(self._ns, key)
        return default if entry is None else self.store.serializer.loads(entry.data)

    def get_metadata(self, key: str) -> dict[str, Any] | None:
        """The metadata stored with ``key`` (None when there is none, or no such key)."""
        _check_key(key)
        entry = self.store.get(self._ns, key)
        if entry is None or entry.metadata is None:
            return None
        meta: dict[str, Any] = self.store.serializer.loads(entry.metadata)  # type: ignore[assignment]
        return meta

    def has(self, key: str) -> bool:
        """Whether ``key`` holds a value that has not expired (a stored ``None`` counts)."""
        _check_key(key)
        return self.store.get(self._ns, key) is not None

    def delete(self, key: str) -> bool:
        """Remove ``key``; True if it held a value that had not expired."""
        _check_key(key)
        return self.store.delete(self._ns, key)

    def clear(self) -> None:
        """Remove every key of this manager's namespace."""
        self.store.clear(self._ns)

    def get_all(self) -> dict[str, Any]:
        """Every key that has not expired, with its value."""
        loads = self.store.serializer.loads
        return {key: loads(entry.data) for key, entry in self.store.entries(self._ns).items()}

    def purge(self) -> int:
        """Remove this manager's expired entries from the store now; returns how many.

        Expired entries are absent whether or not they are purged; purging frees the space.
        The built-in stores also purge as they are written (amortised), so a file never
        grows without bound; this is for doing it at a moment of your choosing. A store of
        your own is purged only if it has a ``purge(namespace)`` method (else 0).
        """
        purge = getattr(self.store, "purge", None)
        if purge is None:
            return 0
        removed: int = purge(self._ns)
        return removed

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.has(key)

    def __len__(self) -> int:
        return len(self.store.entries(self._ns))

    def close(self) -> None:
        """Close the store if this manager opened it. Idempotent."""
        if self._owned:
            self.store.close()


def _check_key(key: object) -> None:
    if not isinstance(key, str):
        raise ConfigurationError(f"StateManager: keys must be str, got {key!r}")


def open_store(
    path: str | os.PathLike[str] | None,
    serializer: Serializer | None = None,
    clock: Callable[[], float] | None = None,
    *,
    what: str = "StateManager: storage_path",
) -> StateStore:
    """The store for a ``storage_path`` (see :class:`StateManager`); ``what`` names the path
    in errors."""
    if path is None:
        return MemoryStore(serializer=serializer, clock=clock)
    if not isinstance(path, str | os.PathLike):
        raise ConfigurationError(f"{what} must be a str or path, got {path!r}")
    suffix = os.path.splitext(os.fspath(path))[1].lower()
    if suffix == ".json":
        return JSONFileStore(path, serializer=serializer, clock=clock)
    if suffix in _SQLITE_SUFFIXES:
        return SQLiteStore(path, serializer=serializer, clock=clock)
    raise ConfigurationError(
        f"{what} must end in .json (JSON file) or "
        f"{', '.join(_SQLITE_SUFFIXES)} (SQLite), got {os.fspath(path)!r}"
    )


publish(__name__)  # last: every exported class above exists
