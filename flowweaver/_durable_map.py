"""Durable mapped tasks: each element's result is committed on its own, and cached on its own.

``_engine_factory.make_engine(workflow, options)`` builds a :class:`DurableMapEngine` for a
durable run (a ``store=``, or a ``cache=True`` task) of a workflow with mapped tasks.

Design:

* **One record per element.** A completed element is committed under ``"square[3]"`` in the
  run's namespace (one ``put``, one store transaction) before it counts as completed, exactly
  as a task is: a run killed after 7,000 of 10,000 elements resumes with 7,000 records and
  runs only the other 3,000. A completed mapped task that keeps its results is also committed
  whole under its own name, so a later resume restores it in one read; one that streams from
  another mapped task, or keeps no results, is not (its elements carry its state).
* **An element's fingerprint** is the hash of the task's code (and ``when``), of the stored
  text of the element's own input and of the whole inputs passed to every call (in binding
  order). A record whose fingerprint differs follows ``on_changed``, as a task's does; a
  record for an index whose input changed is simply not reused.
* **Caching per element.** A ``cache=True`` mapped task looks each element up under
  ``"<task>:<element fingerprint>"`` (or its ``cache_key(...)`` of the element's inputs) and
  stores each result there with the task's TTL: two runs mapping over overlapping lists
  compute the shared elements once.
* A streamed generator upstream is never committed (a generator has no stored form): a resumed
  run calls it again, and its elements find their records by index and fingerprint.
"""

from __future__ import annotations

import hashlib
import logging
from typing import TYPE_CHECKING, Any

from ._calls import INTERRUPTS
from ._durable import DurableEngine
from ._elements import element_name
from ._errors import ConfigurationError, SerializationError, StateMismatchError
from ._fingerprint import digest
from ._mapping import MapMixin
from ._run import Remote, fetched
from ._status import ChangePolicy
from ._store import CACHE_NAMESPACE, StateEntry

if TYPE_CHECKING:
    from ._map_state import MapState
    from ._options import RunOptions
    from ._workflow import Workflow

__all__ = ["DurableMapEngine"]

logger = logging.getLogger("flowweaver.state")


class DurableMapEngine(MapMixin, DurableEngine):
    """A map-aware :class:`DurableEngine`; see the module docstring."""

    _durable_elements = True

    def __init__(self, workflow: Workflow, options: RunOptions) -> None:
        super().__init__(workflow, options)
        self._init_maps(workflow)
        self._consumers = {c for feeds in self._feeds.values() for c in feeds}
        #: Element slot -> (fingerprint, cache key or None), between begin and commit.
        self._element_keys: dict[int, tuple[str, str | None]] = {}

    # -- whole mapped tasks ------------------------------------------------------------------

    def _begin_mapped(self, i: int) -> None:
        task = self.tasks[i]
        if self._records and not self.attempts[i] and i not in self._consumers:
            record = self._records.pop(task.name, None)
            if record is not None and self._restore(i, task, record):
                return
        super()._begin_mapped(i)

    def _commits_whole(self, m: MapState) -> bool:
        return m.i not in self._consumers  # a consumer's elements carry its state

    # -- elements ----------------------------------------------------------------------------

    def _reuse_element(
        self, m: MapState, slot: int, args: tuple[Any, ...], kwargs: dict[str, Any] | None
    ) -> bool:
        task = m.task
        if self._store is None and not task.cache:
            return False
        k = slot - self.n
        index = self._slot_index[k]
        name = element_name(task.name, index)
        try:
            fingerprint = self._element_fingerprint(m, self._slot_value[k])
            record = self._records.pop(name, None) if self._records else None
            if record is not None:
                if record.fingerprint == fingerprint:
                    value = self._serializer.loads(record.data)
                    self.run.restored.append(name)
                    self._element_completed(m, slot, value)
                    return True
                if self._on_changed is ChangePolicy.ERROR:
                    run = self.run
                    raise StateMismatchError(name, run.workflow, run.run_id)
            key = None
            if task.cache:
                key = self._element_cache_key(m, fingerprint, args, kwargs)
                cache = self._cache_of(task)
                entry = cache.get(CACHE_NAMESPACE, key)
                if entry is not None:
                    value = cache.serializer.loads(entry.data)
                    if self._store is not None:
                        stored = StateEntry(entry.data, self._store.now(), None, fingerprint)
                        self._store.put(self._namespace, name, stored)
                    self.run.cached.append(name)
                    self._element_completed(m, slot, value)
                    return True
        except SerializationError as error:
            self._slot_attempts[k] = 1
            failure = error if error.task_name else error.for_task(name)
            self._element_failed_for_good(slot, failure)
            return True
        except INTERRUPTS:
            raise
        except BaseException as error:  # a raising cache_key, a locked or broken store
            self._slot_attempts[k] = 1
            self._element_failed_for_good(slot, error)
            return True
        self._element_keys[slot] = (fingerprint, key)
        return False

    def _commit_element(self, m: MapState, slot: int, value: object) -> BaseException | None:
        keys = self._element_keys.pop(slot, None)
        if keys is None:
            return None  # nothing durable about it (a cached workflow, another task cached)
        fingerprint, key = keys
        task = m.task
        name = element_name(task.name, self._slot_index[slot - self.n])
        try:
            stored = value.fetch() if isinstance(value, Remote) else value
            text = self._serializer.dumps(stored)
            if key is not None:
                cache = self._cache_of(task)
                now, ttl = cache.now(), task.cache_ttl
                cache.put(CACHE_NAMESPACE, key,
                          StateEntry(text, now, None if ttl is None else now + ttl))  # fmt: skip
            store = self._store
            if store is not None:
                store.put(self._namespace, name, StateEntry(text, store.now(), None, fingerprint))
        except SerializationError as error:
            return error.for_task(name)
        except INTERRUPTS:
            raise
        except BaseException as error:  # a locked or broken store, a result the cluster lost
            return error
        return None

    def _element_fingerprint(self, m: MapState, value: object) -> str:
        """Hash of the task's code, the element's input and the whole inputs (module doc)."""
        i, task = m.i, m.task
        hasher = hashlib.blake2b(self._code_of(task.fn).encode(), digest_size=16)
        if task.when is not None:
            hasher.update(b"when:" + self._code_of(task.when).encode())
        (element,) = fetched((value,))
        hasher.update(b"element:" + digest(self._serializer.dumps(element)).encode())
        deps, spec, plan = self.deps[i], self.specs[i], self._plans[i]
        for k in spec.positional:
            if k not in plan:
                hasher.update(b"|" + self._digest_of(deps[k]).encode())
        for name, k in spec.keywords:
            if k not in plan:
                hasher.update(f"|{name}={self._digest_of(deps[k])}".encode())
        return hasher.hexdigest()

    def _element_cache_key(
        self, m: MapState, fingerprint: str, args: tuple[Any, ...], kwargs: dict[str, Any] | None
    ) -> str:
        task = m.task
        user_key = task.cache_key
        if user_key is None:
            return f"{task.name}:{fingerprint}"
        named = kwargs or {}
        values = fetched((*named.values(), *args))
        part = user_key(*values[len(named) :], **dict(zip(named, values, strict=False)))
        if not isinstance(part, str):
            raise ConfigurationError(
                f"task {task.name!r}: cache_key must return a str, got {part!r}"
            )
        hasher = hashlib.blake2b(self._code_of(task.fn).encode(), digest_size=16)
        hasher.update(b"key:" + part.encode("utf-8", "surrogatepass"))
        return f"{task.name}:{hasher.hexdigest()}"
