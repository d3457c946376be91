"""The engine's durable half: resuming a run from its store, and the result cache.

``_engine_factory.make_engine`` — how every executor builds a run's engine — builds a
:class:`DurableEngine` when the run has a ``store=`` or a task has ``cache=True``; otherwise
nothing here runs.

Design:

* **A run's identity** is ``(workflow name, run id)``: its committed results live in the
  store namespace :func:`~flowweaver._store.run_namespace` of that pair, keyed by task name, so
  two workflows or two run ids never see each other's results. They are read once, when the
  run is built.
* **Commit before release.** :meth:`DurableEngine.succeed` serializes the result and stores
  it (one ``put``, one store transaction) *before* the plain engine marks the task completed
  and releases its dependants. A crash therefore loses at most the tasks that were running
  (and, on a pool, calls that had returned but were not yet committed); a task whose result
  was committed never runs again under the same run id.
* **Resume.** When a task becomes ready, :meth:`DurableEngine.begin` looks for its committed
  result. If the record's fingerprint matches the task's current one, the task is settled
  ``completed`` with the restored value (listed in ``run.restored``, ``attempts`` 0) and its
  dependants are released, without running it. Failed, cancelled and never-started tasks were
  never committed, so they run.
* **Fingerprint** = hash(code, inputs). Code: :func:`~flowweaver._fingerprint.code_fingerprint`
  of ``fn`` (and of ``when``). Inputs: the hashes of the stored text of the upstream results
  the function actually receives, in binding order — a task's own result text is hashed once
  when it is committed or restored, never re-serialized for its dependants. A mismatch follows
  ``on_changed`` (:class:`~flowweaver.ChangePolicy`): re-run the task (warning logged; its
  dependants re-run only if its new result differs) or fail it with
  :class:`~flowweaver.StateMismatchError`.
* **One owner per run id.** Before reading them, the run claims its namespace on the store
  (:mod:`flowweaver._claim`) and holds the claim until :meth:`DurableEngine.finish`: another
  run of the same workflow and run id, in this process or another, gets
  :class:`~flowweaver.RunLockedError` (or waits, ``owner_timeout=``). A run without a
  ``run_id`` gets a fresh random one and claims nothing.
* **Cache.** A ``cache=True`` task that was not restored looks up
  ``"<task name>:<hash of code and inputs>"`` (or of code and ``cache_key(*args)``) in the
  cache namespace of the run's store — or, without a store, in a :class:`MemoryStore` kept on
  the Task object for the life of the process. A hit is committed to the run like a result and
  listed in ``run.cached``; a miss is stored with its TTL when the task succeeds.
* **Failures of the state machinery are task failures.** A result with no stored form
  (:class:`~flowweaver.SerializationError` naming the task and the type), a locked or broken
  store, a raising ``cache_key``: the task fails for good (no retry) through the normal failure
  path, so the failure policy applies and the run ends consistent — nothing half-committed, no
  dependant released.

Store writes happen on the thread that drives the run (the only thread that calls the engine),
so a run's writes are sequential. On the async executor that is the event loop: a commit
blocks it for one transaction (tens of microseconds with SQLite, ``synchronous="normal"``).
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from time import perf_counter
from typing import TYPE_CHECKING, Any

from ._calls import INTERRUPTS
from ._claim import claim_run
from ._engine import Call, Engine
from ._errors import ConfigurationError, SerializationError, StateMismatchError
from ._fingerprint import code_fingerprint, digest
from ._history import RunKind, records_history
from ._options import check_owner_timeout, check_state_options
from ._recording import RunRecorder, error_fields, outcome_metadata, reused_metadata, run_status
from ._run import Remote, fetched
from ._serialize import JSONSerializer
from ._status import ChangePolicy, TaskStatus
from ._store import CACHE_NAMESPACE, MemoryStore, StateEntry, StateStore, run_namespace
from ._subflow import Nestable

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from ._claim import Claim
    from ._nesting import Child
    from ._options import RunOptions
    from ._run import WorkflowRun
    from ._task import Task
    from ._workflow import Workflow

__all__ = ["DurableEngine"]

logger = logging.getLogger("flowweaver.state")

_COMPLETED = TaskStatus.COMPLETED


class DurableEngine(Engine):
    """An :class:`Engine` that commits results to a store, resumes from it, and caches.

    Built by ``_engine_factory.make_engine``; see the module docstring.
    """

    __slots__ = (
        "_cache_keys",
        "_children",
        "_claim",
        "_code",
        "_digests",
        "_namespace",
        "_on_changed",
        "_perf0",
        "_recorder",
        "_records",
        "_serializer",
        "_store",
    )

    def __init__(self, workflow: Workflow, options: RunOptions) -> None:
        store, self._on_changed = check_state_options(options)
        owner_timeout = check_owner_timeout(options)
        run_id = options.get("run_id")
        records: dict[str, StateEntry] = {}
        self._claim: Claim | None = None
        if store is not None and isinstance(run_id, str) and run_id:
            namespace = run_namespace(workflow.name, run_id)
            # Own the run id first, so that no other owner writes what we read; then read,
            # before the run is registered anywhere: a broken store fails the call cleanly.
            label = ("workflow", workflow.name, run_id)
            self._claim = claim_run(store, namespace, label, owner_timeout)
            try:
                records = store.entries(namespace)
            except BaseException:
                self._release_claim()
                raise
        try:
            super().__init__(workflow, options)
        except BaseException:
            self._release_claim()
            raise
        self._store: StateStore | None = store
        self._records = records
        self._namespace = run_namespace(workflow.name, self.run.run_id)
        self._serializer = store.serializer if store is not None else JSONSerializer()
        self._digests: list[str | None] = [None] * self.n
        self._code: dict[int, str] = {}  # id(callable) -> code fingerprint
        self._cache_keys: dict[int, str] = {}  # task index -> cache key, between begin/succeed
        # Run history (a store's diary of its runs): perf_counter() readings become wall times.
        self._perf0 = perf_counter()
        self._recorder = (
            RunRecorder(store, RunKind.WORKFLOW, workflow.name, self.run.run_id)
            if store is not None and records_history(store)
            else None
        )
        # Opener -> (namespace, committed records) of each child run (see _nesting).
        self._children: dict[int, tuple[str, dict[str, StateEntry]]] = {}

    # -- the driver protocol -----------------------------------------------------------------

    def start(
        self,
        awaiter: Callable[[Awaitable[object]], object],
        wake: Callable[[], object] = lambda: None,
        capacity: int | None = None,
    ) -> None:
        if self._records:
            run = self.run
            logger.info(
                "workflow %r: resuming run %s from %r: %d task result(s) committed earlier",
                run.workflow, run.run_id, self._store, len(self._records),
            )  # fmt: skip
        recorder = self._recorder
        try:
            if recorder is not None:
                recorder.start(self.run.started_at, self.executor, self.n)
                tasks, deps = self.tasks, self.deps
                n = self.n
                mapped = [i for i in range(n) if tasks[i].map_over is not None]
                recorder.graph([tasks[i].name for i in range(n)], deps[:n], mapped)
            super().start(awaiter, wake, capacity)
        except BaseException:  # drivers finish() only a run that started
            self._release_claim()
            raise

    def begin(self, i: int, start: bool = True) -> Call | None:
        """As :meth:`Engine.begin`, but a task with a reusable committed or cached result is
        settled ``completed`` with it instead of running."""
        if not self.attempts[i] and self._settle_from_state(i):
            return None
        return super().begin(i, start)

    def succeed(self, i: int, value: object) -> None:
        """Commit the result (and cache it), then as :meth:`Engine.succeed`; if it cannot be
        stored, the task fails instead and nothing downstream is released."""
        if isinstance(value, Nestable):  # a child run opens: nothing to commit yet
            super().succeed(i, value)
            return
        error = self._commit(i, value)
        if error is not None:
            self.errors[i] = error
            self._fail_for_good(i, error)
            return
        super().succeed(i, value)

    def open_state(self, child: Child) -> None:
        """Read what an earlier run committed of this child run (its run id is derived from
        the parent's, so it resumes with it)."""
        namespace = run_namespace(child.workflow.name, child.run_id)
        store = self._store
        records = store.entries(namespace) if store is not None else {}
        self._children[child.opener] = (namespace, records)
        self._digests.extend([None] * child.count)

    def _state_of(self, i: int) -> tuple[str, dict[str, StateEntry]]:
        """The namespace task ``i`` commits to and the records it may resume from."""
        child = None if self.nest is None else self.nest.child_of(self, i)
        if child is None:
            return self._namespace, self._records
        return self._children[child.opener]

    def finish(self) -> WorkflowRun:
        try:
            run = super().finish()
            if self._recorder is not None:
                self._record_end(run)
        finally:
            self._release_claim()  # the run id is free again, whatever happened
        if run.restored or run.cached:
            logger.info(
                "workflow %r: run %s reused %d committed and %d cached result(s)",
                run.workflow, run.run_id, len(run.restored), len(run.cached),
            )  # fmt: skip
        return run

    def _record_end(self, run: WorkflowRun) -> None:
        """Tell the run's history how it ended and what every task that did not complete did."""
        assert self._recorder is not None
        outcomes: dict[str, object] = {}
        statuses = self.statuses[: self.n]
        counts = {status.value: k for status, k in Counter(statuses).items()}
        started, finished, attempts = self.started, self.finished, self.attempts
        names = run._names  # a subflow's tasks under their nested names
        for name in run.restored:
            outcomes[name] = {"status": "completed", "reused": "restored"}
        for name in run.cached:
            outcomes[name] = {"status": "completed", "reused": "cached"}
        # A subflow's tasks commit to their child run's namespace, and an opener's own result
        # is never committed: every task of a child run and every opener is listed here, with
        # the task that opened it (``parent``) or the number of tasks it opened (``subflow``).
        parent: dict[int, str] = {}
        opened: dict[int, int] = {}
        if self.nest is not None:
            for child in self.nest.by_opener.values():
                opened[child.opener] = child.count
                parent.update(dict.fromkeys(range(child.base, child.base + child.count),
                                            names[child.opener]))  # fmt: skip
        if counts.get("completed", 0) < self.n or parent:
            for i, task_status in enumerate(statuses):
                if task_status is _COMPLETED and i not in parent and i not in opened:
                    continue
                outcome: dict[str, object] = {"status": task_status.value, "attempts": attempts[i]}
                if i in parent:
                    outcome["parent"] = parent[i]
                if i in opened:
                    outcome["subflow"] = opened[i]
                if started[i]:
                    outcome["started_at"] = self._wall(started[i])
                    if finished[i]:
                        outcome["duration"] = finished[i] - started[i]
                if task_status is TaskStatus.FAILED:
                    outcome.update(error_fields(self.errors.get(i)))
                outcomes[names[i]] = outcome
        error = str(run.failures[0]) if run.failures else None
        self._recorder.finish(
            run_status(counts), run.finished_at or 0.0, counts, error, {"outcomes": outcomes},
            total=self.n,  # with the tasks of its subflows
        )  # fmt: skip

    def _wall(self, reading: float) -> float:
        """A perf_counter() reading of this run as wall-clock time."""
        return self.run.started_at + (reading - self._perf0)

    def _release_claim(self) -> None:
        claim, self._claim = self._claim, None
        if claim is not None:
            claim.release()

    # -- reuse -------------------------------------------------------------------------------

    def _settle_from_state(self, i: int) -> bool:
        """Settle task ``i`` from its committed or cached result; True if it was settled."""
        task = self.tasks[i]
        records = self._records if i < self.run.own_tasks else self._state_of(i)[1]
        if records:
            record = records.pop(task.name, None)
            if record is not None and self._restore(i, task, record):
                return True
        if task.cache:
            return self._from_cache(i, task)
        return False

    def _restore(self, i: int, task: Task[..., Any], record: StateEntry) -> bool:
        if record.fingerprint != self._fingerprint(i):
            run = self.run
            if self._on_changed is ChangePolicy.ERROR:
                self._refuse(i, StateMismatchError(task.name, run.workflow, run.run_id))
                return True
            logger.warning(
                "task %r: code or inputs changed since run %s committed its result; "
                "running it again",
                task.name, run.run_id, extra={**self.log_fields, "task": task.name},
            )  # fmt: skip
            return False
        try:
            value = self._serializer.loads(record.data)
        except SerializationError as error:
            self._refuse(i, error.for_task(task.name))
            return True
        self._digests[i] = digest(record.data)
        self._reuse(i, value, self.run.restored)
        return True

    def _from_cache(self, i: int, task: Task[..., Any]) -> bool:
        try:
            key = self._cache_key(i, task)
            cache = self._cache_of(task)
            entry = cache.get(CACHE_NAMESPACE, key)
            if entry is None:
                self._cache_keys[i] = key
                return False
            value = cache.serializer.loads(entry.data)
            store = self._store
            if store is not None:  # commit it to the run too, before releasing dependants
                record = StateEntry(
                    entry.data, store.now(), None, self._fingerprint(i), reused_metadata("cached")
                )
                store.put(self._state_of(i)[0], task.name, record)
        except SerializationError as error:
            self._refuse(i, error if error.task_name else error.for_task(task.name))
            return True
        except INTERRUPTS:
            raise
        except BaseException as error:  # a raising cache_key, a locked or broken store
            self._refuse(i, error)
            return True
        self._digests[i] = digest(entry.data)
        self._reuse(i, value, self.run.cached)
        return True

    def _reuse(self, i: int, value: object, reused: list[str]) -> None:
        """Settle ``i`` completed with ``value`` without running it; release its dependants.

        The COMPLETED transition is :meth:`Engine.succeed`'s, said once there; only the
        commit (this class's ``succeed``) is skipped: the value came from the store."""
        task = self.tasks[i]
        reused.append(self.run._names[i])
        if self._debug:
            logger.debug(
                "task %r: reusing its stored result", task.name,
                extra={**self.log_fields, "task": task.name},
            )  # fmt: skip
        self.started[i] = perf_counter()
        Engine.succeed(self, i, value)

    # -- commit ------------------------------------------------------------------------------

    def _commit(self, i: int, value: object) -> BaseException | None:
        """Store task ``i``'s result in the run and in the cache; the error if that failed."""
        store = self._store
        key = self._cache_keys.pop(i, None)
        if store is None and key is None:
            return None  # a workflow with some cached tasks, and this is not one of them
        task = self.tasks[i]
        try:
            # A result kept on a cluster comes here to be stored: durability has that price.
            # The run keeps the remote handle, so downstream calls still get it in place.
            stored = value.fetch() if isinstance(value, Remote) else value
            text = self._serializer.dumps(stored)
        except SerializationError as error:
            return error.for_task(task.name)
        except INTERRUPTS:
            raise
        except BaseException as error:  # the cluster lost it
            return error
        self._digests[i] = digest(text)
        try:
            if key is not None:
                cache = self._cache_of(task)
                now, ttl = cache.now(), task.cache_ttl
                cache.put(CACHE_NAMESPACE, key,
                          StateEntry(text, now, None if ttl is None else now + ttl))  # fmt: skip
            if store is not None:
                begun = self.started[i]
                outcome = (
                    None
                    if self._recorder is None
                    else outcome_metadata(
                        self.attempts[i], self._wall(begun), perf_counter() - begun
                    )
                )
                entry = StateEntry(text, store.now(), None, self._fingerprint(i), outcome)
                namespace = self._namespace if i < self.run.own_tasks else self._state_of(i)[0]
                store.put(namespace, task.name, entry)
        except INTERRUPTS:
            raise
        except BaseException as error:  # a locked or broken store (a custom one may raise anything)
            return error
        return None

    # -- fingerprints and keys ---------------------------------------------------------------

    def _cache_of(self, task: Task[..., Any]) -> StateStore:
        if self._store is not None:
            return self._store
        memo = task._memo
        if memo is None:
            memo = MemoryStore()
            task._remember("_memo", memo)
        return memo

    def _code_of(self, fn: Callable[..., object]) -> str:
        code = self._code.get(id(fn))
        if code is None:
            code = self._code[id(fn)] = code_fingerprint(fn)
        return code

    def _digest_of(self, j: int) -> str:
        """Hash of task ``j``'s result text (serialized now if it was never stored)."""
        known = self._digests[j]
        if known is not None:
            return known
        try:
            (value,) = fetched((self.results[j],))  # a result kept on a cluster: its value
            text = self._serializer.dumps(value)
        except SerializationError as error:
            raise error.for_task(self.tasks[j].name) from None
        known = self._digests[j] = digest(text)
        return known

    def _fingerprint(self, i: int) -> str:
        """Hash of task ``i``'s code and of the inputs it receives (see the module docstring)."""
        task = self.tasks[i]
        hasher = hashlib.blake2b(self._code_of(task.fn).encode(), digest_size=16)
        if task.when is not None:
            hasher.update(b"when:" + self._code_of(task.when).encode())
        deps, spec = self.deps[i], self.specs[i]
        for k in spec.positional:
            hasher.update(b"|" + self._digest_of(deps[k]).encode())
        for name, k in spec.keywords:
            hasher.update(f"|{name}={self._digest_of(deps[k])}".encode())
        return hasher.hexdigest()

    def _cache_key(self, i: int, task: Task[..., Any]) -> str:
        user_key = task.cache_key
        if user_key is None:
            try:
                return f"{task.name}:{self._fingerprint(i)}"
            except SerializationError as error:
                raise SerializationError(
                    error.type_name,
                    f"the result of {error.task_name!r}, an input of this cached task, has no "
                    f"stored form to hash for its cache key (give the task a cache_key=)",
                    task_name=task.name,
                ) from error
        args, kwargs = self._arguments(i)
        part = user_key(*args, **kwargs)
        if not isinstance(part, str):
            raise ConfigurationError(
                f"task {task.name!r}: cache_key must return a str, got {part!r}"
            )
        hasher = hashlib.blake2b(self._code_of(task.fn).encode(), digest_size=16)
        hasher.update(b"key:" + part.encode("utf-8", "surrogatepass"))
        return f"{task.name}:{hasher.hexdigest()}"

    def _arguments(self, i: int) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """The values task ``i`` is called with (the binding rule, as in ``begin``), fetched
        from the cluster when they are kept there: a ``cache_key`` reads values, not handles."""
        results, deps, spec = self.results, self.deps[i], self.specs[i]
        args = fetched(tuple([results[deps[k]] for k in spec.positional]))
        names = [name for name, _ in spec.keywords]
        values = fetched(tuple([results[deps[k]] for _, k in spec.keywords]))
        return args, dict(zip(names, values, strict=True))
