"""What a state store is: the :class:`StateStore` and :class:`Serializer` protocols and the
:class:`StateEntry` record they trade in.

Apart from the stores themselves (:mod:`flowweaver._store` and the file stores), so that what
only *names* a store — run options, a pipeline's ``store=`` — costs no more than these three
definitions: ``import flowweaver`` and a run without a store never load the stores, their
history records, or the JSON serializer's table of types.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

__all__ = ["Serializer", "StateEntry", "StateStore"]


@runtime_checkable
class Serializer(Protocol):
    """Turns values into text for a :class:`~flowweaver.StateStore`, and text back into values.

    ``loads(dumps(v))`` must equal ``v``, and equal values should give equal text (a task's
    fingerprint hashes its inputs' text). Raise :class:`~flowweaver.SerializationError` for a
    value you cannot store or a text you cannot read.
    """

    def dumps(self, value: object) -> str:
        """The stored form of ``value``."""
        ...

    def loads(self, text: str) -> object:
        """The value whose stored form is ``text``."""
        ...


@dataclass(frozen=True, slots=True)
class StateEntry:
    """One stored value.

    Attributes:
        data: The value as its serializer's text.
        created_at: Wall-clock time (the store's clock) when it was stored.
        expires_at: Wall-clock time after which it counts as absent, or None.
        fingerprint: For a run's task results, the hash of the task's code and inputs that
            produced it (see :mod:`flowweaver._fingerprint`); empty otherwise.
        metadata: Free text stored beside the value (``StateManager`` keeps its metadata
            dict here, serialized), or None.
    """

    data: str
    created_at: float
    expires_at: float | None = None
    fingerprint: str = ""
    metadata: str | None = None

    def is_expired(self, now: float) -> bool:
        """Whether the entry counts as absent at wall-clock time ``now``."""
        return self.expires_at is not None and self.expires_at <= now


@runtime_checkable
class StateStore(Protocol):
    """Durable ``(namespace, key) -> StateEntry`` storage; see the module docstring.

    flowweaver ships :class:`MemoryStore`, :class:`~flowweaver.SQLiteStore` (the durable
    default for runs) and :class:`~flowweaver.JSONFileStore`. A store of your own must make each
    ``put`` durable before it returns, keep namespaces apart, treat expired entries as absent,
    and raise :class:`~flowweaver.StateError` subclasses for trouble it can name.

    Stores are thread-safe; runs call them only from the thread that drives the run.
    """

    #: How values become ``StateEntry.data`` and back.
    serializer: Serializer

    def now(self) -> float:
        """Wall-clock seconds (``time.time()`` unless a clock was injected), for TTLs."""
        ...

    def get(self, namespace: str, key: str) -> StateEntry | None:
        """The live entry at ``key``, or None."""
        ...

    def put(self, namespace: str, key: str, entry: StateEntry) -> None:
        """Store ``entry`` at ``key`` (replacing any), durably, in one transaction."""
        ...

    def delete(self, namespace: str, key: str) -> bool:
        """Remove ``key``; True if a live entry was there."""
        ...

    def clear(self, namespace: str) -> None:
        """Remove every entry of ``namespace``."""
        ...

    def entries(self, namespace: str) -> dict[str, StateEntry]:
        """Every live entry of ``namespace``, by key."""
        ...

    def close(self) -> None:
        """Release the store's file handles. Idempotent."""
        ...
