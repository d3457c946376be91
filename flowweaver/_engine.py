"""The scheduling engine: the one state machine behind every executor.

Design:

* **What runs next** is decided here and nowhere else. The engine keeps a dynamic ready queue
  (graphlib's ``get_ready``/``done`` protocol, flattened into ``begin``/``succeed``/``fail``):
  a task enters it the moment its last dependency completes, so no task ever waits for a whole
  Kahn layer. The queue is FIFO (ties broken by the order tasks became ready, then by insertion
  order), which makes the sequential executor's order deterministic; a retried task goes to the
  front, since it was started before everything now waiting.
* **Only the driver thread mutates run state.** A driver (``_drivers``: inline, pool, asyncio)
  pops ready tasks, asks :meth:`Engine.begin` for the call, runs it wherever its executor says,
  and reports the outcome back with :meth:`Engine.succeed` or :meth:`Engine.fail`. Workers
  never touch the engine: they post outcomes to a queue the driver reads (``_lanes``). So run
  state needs no locks and every callback fires on one thread, in one place. The one variant:
  ``ThreadedExecutor``'s runs without observers (``_handoff``), whose workers call the same
  methods themselves, one at a time under the run's lock, to save a thread hand-off per task.
* **Retries** are decided by :meth:`Engine.fail` from the task's retry settings; the driver only
  waits the returned delay (through the run's :class:`Clock`) and calls :meth:`Engine.requeue`.
  A pipeline stage retries in its own loop (``_stage_run``), on the same rules, each written
  once: whether an error is retried (``_retry.is_retryable``: ``retry_on``, never a
  ``TransferError`` or ``ExecutorShutdownError``), the back-off (``RetryPolicy.delay_before``),
  what a failure is (``_calls.INTERRUPTS``), and waiting through the :class:`Clock`. The loops
  differ because the units do: a task's attempt is a state of this run, so the wait is a timer
  the driver keeps and no worker is held; an item's attempt belongs to the worker holding the
  item (AntFlow's per-task retry keeps it, in order, between its tasks; per-stage retry sends
  it back to its stage's queue), and a pipeline has no run-wide state machine to hand it to.
* **Failure policy** (:class:`FailurePolicy`): a final failure marks every task downstream of it
  ``upstream_failed`` at once; under fail-fast it also sets :attr:`Engine.stopping`, after which
  drivers start nothing new. :meth:`Engine.finish` ends whatever never ran ``cancelled``: when a
  run returns, no task is left ``pending``, ``retrying`` or ``running``.
* **Timeouts** are enforced by the drivers, which know what can be interrupted where; they
  report an overrun as a failed attempt with :class:`TaskTimeoutError`.
* **Durable state** (resume, result cache): ``_engine_factory.make_engine(...)``, which
  every executor calls, builds a :class:`~flowweaver._durable.DurableEngine` instead when the
  run has a ``store=`` or a task has ``cache=True``. It overrides ``begin`` (settle a task from its
  committed or cached result without running it) and ``succeed`` (commit the result before
  releasing the dependants). Runs without either never reach that code: the per-task hot path
  has no extra check (building the engine scans the tasks for ``cache=True`` once, ~30 ns per
  task).

* **Mapped tasks** (``Task(map_over=...)``): ``Engine(...)`` builds a
  :class:`~flowweaver._mapping.MapEngine` (or its durable twin) when the workflow has one. An
  element is an index past the workflow's tasks that the drivers run like a task; its retry is
  decided by :func:`retry_delay`, the rule :meth:`fail` uses. See ``_mapping``.

* **Priorities** (``Task(priority=...)``): when any task has a non-zero priority, the ready
  queue is a :class:`~flowweaver._ready.PriorityReady` (higher first, today's FIFO order among
  equals, a retry first among its equals); otherwise it stays a deque, untouched.

Hot path: one ``begin`` and one ``succeed`` per task, list indexing only, no allocation for
observers that are absent (status callbacks and monitors are checked with one ``is not None`` /
truthiness test each).
"""

from __future__ import annotations

from bisect import bisect_left
from collections import deque
from collections.abc import Awaitable, Callable
from time import perf_counter, time
from typing import TYPE_CHECKING, Any

from . import _nesting
from ._binding import NO_ARGS, params_of
from ._calls import INTERRUPTS
from ._errors import ConfigurationError, TaskFailedError, WorkflowFailedError
from ._events import (
    OBSERVER_TIMEOUT,
    Monitor,
    ObserverWaits,
    call_safely,
    check_observer_timeout,
    close_unstarted,
    interrupted_slow,
)
from ._gates import Gates
from ._log import DEBUG, lazy_logger
from ._options import check_options
from ._ready import PriorityReady
from ._release import releaser_for
from ._retry import is_retryable
from ._run import WorkflowRun, fetched
from ._status import FailurePolicy, TaskStatus
from ._subflow import NESTED, Nestable
from ._telemetry import workflow_telemetry
from ._workflow import Workflow

if TYPE_CHECKING:
    from ._nesting import Child, Nesting
    from ._options import RunOptions
    from ._task import Task

__all__ = ["Call", "Engine", "retry_delay"]

logger = lazy_logger("flowweaver.engine")

_PENDING = TaskStatus.PENDING
_RUNNING = TaskStatus.RUNNING
_RETRYING = TaskStatus.RETRYING
_COMPLETED = TaskStatus.COMPLETED
_FAILED = TaskStatus.FAILED
_SKIPPED = TaskStatus.SKIPPED
_UPSTREAM_FAILED = TaskStatus.UPSTREAM_FAILED
_CANCELLED = TaskStatus.CANCELLED

#: What a driver runs for one attempt: the function, its positional and keyword arguments.
Call = tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any] | None]


def _nothing() -> None:
    return None


def _is_cached(task: Task[..., Any]) -> bool:
    return task._options is not None and task.cache  # a task that sets no option: no read


def _has_priority(task: Task[..., Any]) -> bool:
    return task._options is not None and task.priority != 0


def retry_delay(
    task: Task[..., Any], attempt: int, error: BaseException
) -> tuple[float | None, BaseException]:
    """The rule of every retry, of a task or of an element: ``(seconds to wait before the next
    attempt, error)``, or ``(None, failure)`` when ``error`` after ``attempt`` attempts is final
    (the failure is the exception of a ``retry_if``/``retry_after`` that raised, if one did)."""
    if (attempt <= task.retries and is_retryable(error, task.retry_on)) or (
        task.retry_if_result is not None  # its failures may be values, or a broken predicate
    ):
        return task.retry_policy.decide(error, attempt)
    return None, error


def _refuse_awaitable(awaitable: Awaitable[object]) -> object:
    raise AssertionError("Engine.start() was not called")  # pragma: no cover - a driver bug


class Engine:
    """The state of one workflow run and the rules that move it forward.

    Not thread-safe by design: one thread at a time calls it (the driver's, or a worker's
    under the hand-off driver's lock). See the module docstring.

    Args:
        workflow: What to run; its current tasks are the run (later additions are not).
        options: See :class:`RunOptions`.

    Raises:
        ConfigurationError: An option is invalid.
    """

    __slots__ = (
        "_awaiter",
        "_debug",
        "_muted",
        "_wake",
        "attempts",
        "capacity",
        "children",
        "clock",
        "deps",
        "errors",
        "executor",
        "finished",
        "gates",
        "local_calls",
        "log_fields",
        "monitors",
        "n",
        "nest",
        "observer_waits",
        "pending",
        "policy",
        "ready",
        "releaser",
        "results",
        "run",
        "source",
        "specs",
        "started",
        "statuses",
        "stopping",
        "tasks",
        "telemetry",
    )

    def __new__(cls, workflow: Workflow, options: RunOptions) -> Engine:
        given: object = workflow  # typed callers cannot get this wrong; others can
        if not isinstance(given, Workflow):  # every executor's execute() comes through here
            hint = " (a DAG or Flow: call its run(), or pass its to_workflow())"
            raise ConfigurationError(
                f"execute() needs a Workflow, got {given!r}"
                + (hint if hasattr(given, "to_workflow") else "")
            )
        # Built by _engine_factory.make_engine, which picks the class; building the plain
        # engine for a run that needs another would silently lose its state or its elements.
        if cls is Engine and (
            workflow._mapped
            or options.get("store") is not None
            or any(map(_is_cached, workflow._tasks))
        ):
            raise TypeError("this run needs a durable or mapping engine: use make_engine()")
        return object.__new__(cls)

    def __init__(self, workflow: Workflow, options: RunOptions) -> None:
        self.policy, self.monitors, self.clock, run_id = check_options(options)
        #: How long observers' awaitables may run (the rule for observers that do not return).
        self.observer_waits = ObserverWaits(
            check_observer_timeout(options.get("observer_timeout", OBSERVER_TIMEOUT), "execute()")
        )
        self._awaiter: Callable[[Awaitable[object]], object] = _refuse_awaitable
        self._wake: Callable[[], object] = _nothing
        #: How many calls the driver runs at once (None: no limit), told by :meth:`start`.
        self.capacity: int | None = None
        n = len(workflow._tasks)
        self.n = n
        # The workflow's graph lists are append-only (and its dependants list is replaced, not
        # changed, after an edit): reading indices below `n` is a snapshot. The tasks are
        # copied (pointers only) because drivers hold that list while a subflow's tasks join
        # it; the other three are the workflow's own until a subflow opens (_nesting copies
        # them then), so a run without one keeps no second copy (24 bytes a task).
        self.source = workflow
        self.tasks: list[Task[..., Any]] = workflow._tasks[:n]
        self.deps = workflow._deps
        self.children = workflow._successors()
        self.specs = workflow._specs
        run = WorkflowRun(workflow.name, run_id, workflow._names, workflow._index)
        self.run = run
        self.statuses = run._statuses
        self.results = run._results
        self.errors = run._errors
        self.attempts = run._attempts
        self.started = run._started
        self.finished = run._finished
        self.pending = list(map(len, self.deps))
        sources = workflow._sources
        self.ready: deque[int] | PriorityReady = deque(sources[: bisect_left(sources, n)])
        if any(map(_has_priority, self.tasks)):  # ~30 ns a task; a run without pays nothing more
            self.ready = PriorityReady(self.ready, self._priority_of)
        #: The limiters of ``Task(limits=...)``: None when no task has one.
        self.gates: Gates | None = None
        limited = {limiter for task in self.tasks if task.limits for limiter in task.limits}
        if limited:
            self.gates = Gates(limited, lambda: self.stopping)
        #: What ``keep_results=`` lets go of, and when; None (the default): nothing.
        self.releaser = releaser_for(self, options.get("keep_results"))
        #: Set once no new task may start (fail-fast after a failure, or a stop request).
        self.stopping = False
        #: The run's child runs (subflows), once one opens.
        self.nest: Nesting | None = None
        # Disabled callbacks, as (id(callback), kind): a callback shared by many tasks (one
        # webhook for all) is disabled once, not once per task (a hanging one: one timeout).
        self._muted: set[tuple[int, str]] = set()
        self._debug = logger.isEnabledFor(DEBUG)
        #: Record fields of every log line of this run (JSON lines carry them).
        self.log_fields = {"workflow": run.workflow, "run_id": run.run_id}
        #: The class name of the executor that drives the run (set by it; for run history).
        self.executor = ""
        #: Whether the executor runs calls in this process (OpenTelemetry context reaches them).
        self.local_calls = False
        #: OpenTelemetry spans and metrics of this run; None unless configure_telemetry() is on.
        self.telemetry = workflow_telemetry(run.workflow, run.run_id)
        put = object.__setattr__
        for task in self.tasks:  # an own task is found in the run by its name (see Task)
            put(task, "_latest", run)
        workflow._last_run = run

    # -- the driver protocol -----------------------------------------------------------------

    def start(
        self,
        awaiter: Callable[[Awaitable[object]], object],
        wake: Callable[[], object] = _nothing,
        capacity: int | None = None,
    ) -> None:
        """Announce the run to its monitors.

        Args:
            awaiter: How the driver finishes an awaitable that an observer returned.
            wake: Interrupts the driver's wait (for :meth:`request_stop` from another thread).
            capacity: How many calls the driver runs at once (None: no limit); a mapped
                task keeps about that many of its elements ready.
        """
        self.capacity = capacity
        self._awaiter = awaiter
        self._wake = wake
        if self.gates is not None:
            self.gates.open(wake)
        run = self.run
        logger.info(
            "workflow %r: run %s starting, %d tasks", run.workflow, run.run_id, self.n,
            extra=self.log_fields,
        )  # fmt: skip
        for monitor in list(self.monitors):
            self._call_monitor(monitor, "on_run_start", run)
        if self.telemetry is not None:
            self.telemetry.start(self.executor, self.local_calls)

    def begin(self, i: int, start: bool = True) -> Call | None:
        """Start the next attempt of ready task ``i``.

        Args:
            i: The task.
            start: The call starts now. False: it waits for a worker first; the task stays
                ``pending`` (``retrying``) until the driver calls :meth:`mark_running`, so
                ``running`` means running and a task's duration leaves out its queueing.

        Returns:
            The call to run, or None when the task was settled without running (skipped, or
            failed in its ``when`` predicate); its dependants are released as appropriate.
        """
        task = self.tasks[i]
        spec = self.specs[i]
        kwargs: dict[str, Any] | None = None
        if spec is NO_ARGS:
            args: tuple[Any, ...] = ()
        elif spec is NESTED:  # a subflow: open its child run, or join it (see _nesting)
            _nesting.step(self, i)
            return None
        else:
            results, deps = self.results, self.deps[i]
            args = tuple([results[deps[k]] for k in spec.positional])
            if spec.keywords:
                kwargs = {name: results[deps[k]] for name, k in spec.keywords}
        attempt = self.attempts[i] + 1
        if attempt == 1:
            if (
                (task.when is not None or task.skip_if_upstream_skipped)
                and (not task.limits or not self.gates.waited(i))  # type: ignore[union-attr]
                and self._skips(i, task, args, kwargs)
            ):
                return None
            if task.limits and not self.gates.take(i, task.limits):  # type: ignore[union-attr]
                return None  # parked, still pending: tried again once a permit may be free
        elif task.limits and not self.gates.take(i, task.limits):  # type: ignore[union-attr]
            return None
        self.attempts[i] = attempt
        if start:  # mark_running(), inlined: this is the hot path
            if attempt == 1:
                self.started[i] = perf_counter()
            self.statuses[i] = _RUNNING
            if task.on_status_change is not None or self.monitors:
                self._notify(i, _RUNNING)
            if self._debug:
                fields = {**self.log_fields, "task": task.name, "attempt": attempt}
                logger.debug("task %r: attempt %d started", task.name, attempt, extra=fields)
        # (A task that sets no option has no retry_if_result: one slot read, not a lookup.)
        fn = task.fn if task._options is None or task.retry_if_result is None else task._call_fn()
        if self.telemetry is not None:
            return (
                self.telemetry.begin(i, self.run._names[i], attempt, fn, perf_counter()),
                args,
                kwargs,
            )
        return fn, args, kwargs

    def mark_running(self, i: int) -> None:
        """The call of ``begin(i, start=False)`` has reached a worker: task ``i`` is running."""
        attempt = self.attempts[i]
        if attempt == 1:
            self.started[i] = perf_counter()
        self.statuses[i] = _RUNNING
        task = self.tasks[i]
        if task.on_status_change is not None or self.monitors:
            self._notify(i, _RUNNING)
        if self._debug:
            fields = {**self.log_fields, "task": task.name, "attempt": attempt}
            logger.debug("task %r: attempt %d started", task.name, attempt, extra=fields)

    def succeed(self, i: int, value: object) -> None:
        """Record that task ``i``'s current attempt returned ``value``; release its dependants.

        A returned Workflow, DAG or Flow is run as the task's child run instead; the task
        completes when it ends (see ``_nesting``).
        """
        if isinstance(value, Nestable):
            if self.telemetry is not None:  # the builder's call is over; its child opens
                self.telemetry.end(i, self.run._names[i], perf_counter(), None, retried=False)
            _nesting.open_child(self, i, value)
            return
        self.results[i] = value
        self.finished[i] = perf_counter()
        self.statuses[i] = _COMPLETED
        task = self.tasks[i]
        if task.limits:
            self.gates.release(i, None)  # type: ignore[union-attr]
        if self.telemetry is not None:
            self.telemetry.end(i, self.run._names[i], self.finished[i], None, retried=False)
        if task.on_status_change is not None or self.monitors:
            self._notify(i, _COMPLETED)
        if self._debug:
            logger.debug("task %r: completed", task.name,
                         extra={**self.log_fields, "task": task.name})  # fmt: skip
        # Inlined _release(): this is the hot path, and a method call is ~10% of a task's cost.
        pending, ready, n = self.pending, self.ready, self.n
        for child in self.children[i]:
            if child < n:  # a task added during the run is not part of it
                left = pending[child] - 1
                pending[child] = left
                if not left:
                    ready.append(child)
        if self.releaser is not None:
            self.releaser.ended(i)

    #: :meth:`succeed` as the plain engine does it (a subflow's opener completes with it: its
    #: result is never committed, see ``_nesting``).
    complete = succeed

    def fail_opener(self, i: int, error: BaseException) -> None:
        """Fail task ``i``, whose child run could not open or failed, for good (no retry)."""
        self.errors[i] = error
        self._fail_for_good(i, error)

    def open_state(self, child: Child) -> None:
        """A child run opens: read what a durable run committed of it (nothing here)."""
        if any(map(_is_cached, child.workflow._tasks[: child.count])):
            logger.warning(
                "workflow %r: the subflow %r has cache=True tasks, which are cached only when "
                "the run has a store= or a task of its own workflow has cache=True",
                self.run.workflow, child.workflow.name, extra=self.log_fields,
            )  # fmt: skip

    def observed(self, i: int) -> bool:
        """Whether anyone listens to task ``i``'s status changes."""
        return self.tasks[i].on_status_change is not None or bool(self.monitors)

    def fail(self, i: int, error: BaseException) -> float | None:
        """Record that task ``i``'s current attempt raised ``error``.

        Returns:
            Seconds to wait before :meth:`requeue` when the task will be retried; None when the
            failure is final (the task is ``failed`` and the failure policy has been applied)
            or the run is stopping (the task is ``cancelled``: its retry will not happen).
        """
        task = self.tasks[i]
        if task.limits:
            self.gates.release(i, error)  # type: ignore[union-attr]
        attempt = self.attempts[i]
        name = self.run._names[i]
        delay, error = retry_delay(task, attempt, error)
        self.errors[i] = error
        if self.telemetry is not None:
            retried = delay is not None and not self.stopping
            self.telemetry.end(i, name, perf_counter(), error, retried)
        if delay is not None:
            if self.stopping:  # it would be retried, but the run starts nothing new
                self._settle(i, _CANCELLED)
                return None
            self.statuses[i] = _RETRYING
            if task.on_status_change is not None or self.monitors:
                self._notify(i, _RETRYING)
            logger.info(
                "task %r: attempt %d failed (%s: %s); retry %d of %d in %.3g s",
                name, attempt, type(error).__name__, error, attempt, task.retries, delay,
                extra={**self.log_fields, "task": name, "attempt": attempt},
            )  # fmt: skip
            if task.on_retry is not None and (id(task.on_retry), "on_retry") not in self._muted:
                self._call_task_callback(i, "on_retry", task.on_retry, name, attempt)
            return delay
        self._fail_for_good(i, error)
        return None

    def requeue(self, i: int) -> None:
        """Put a task whose retry delay has passed back at the front of the ready queue."""
        self.ready.appendleft(i)

    def cancel(self, i: int) -> None:
        """Record that a started task was cancelled by the run (not by its own code)."""
        if not self.statuses[i].is_terminal:
            self._settle(i, _CANCELLED)

    def request_stop(self) -> None:
        """Start nothing new; what never started ends ``cancelled`` (Ctrl-C, cancellation).

        May be called from any thread: it only sets a flag, cuts the observers' waits short
        (see ``_events.ObserverWaits``) and wakes the driver.
        """
        self.stop_starting()
        self.observer_waits.stop()
        self._wake()

    def finish(self) -> WorkflowRun:
        """Close the run: every task still pending, retrying or running ends ``cancelled``.

        Returns:
            The run record. Check :attr:`WorkflowRun.failures`, or call :meth:`raise_for_failures`.
        """
        _nesting.close(self)
        if self.gates is not None:
            self.gates.close()
        statuses = self.statuses
        if statuses.count(_PENDING) or statuses.count(_RUNNING) or statuses.count(_RETRYING):
            for i in range(self.n):
                if not statuses[i].is_terminal:
                    self._settle(i, _CANCELLED)
        run = self.run
        run.finished_at = time()
        stats = run.stats()
        logger.info(
            "workflow %r: run %s ended in %.3f s: %d completed, %d failed, %d skipped, "
            "%d upstream_failed, %d cancelled",
            run.workflow, run.run_id, stats["total_time_seconds"], stats["completed"],
            stats["failed"], stats["skipped"], stats["upstream_failed"], stats["cancelled"],
            extra=self.log_fields,
        )  # fmt: skip
        for monitor in list(self.monitors):
            self._call_monitor(monitor, "on_run_end", run)
        if self.telemetry is not None:
            self.telemetry.finish(len(run.failures), stats["cancelled"])
        return run

    def raise_for_failures(self) -> WorkflowRun:
        """Return the (finished) run, or raise :class:`WorkflowFailedError` if a task failed."""
        run = self.run
        if run.failures:
            raise WorkflowFailedError(run.workflow, run.failures, run)
        return run

    # -- internals ---------------------------------------------------------------------------

    def _priority_of(self, i: int) -> int:
        """The priority of ready index ``i``: its task's (a subflow's task, a mapped task's
        element slot: ``tasks`` holds them too)."""
        tasks = self.tasks
        return tasks[i].priority if i < len(tasks) else 0

    def _skips(
        self, i: int, task: Task[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any] | None
    ) -> bool:
        """Apply ``skip_if_upstream_skipped`` and ``when``; True when ``i`` was settled."""
        deps = self.deps[i]
        if task.skip_if_upstream_skipped and deps:
            statuses = self.statuses
            if all(statuses[d] is _SKIPPED for d in deps):
                self._skip(i)
                return True
        predicate = task.when
        if predicate is None:
            return False
        try:
            if params_of(predicate).takes_nothing:
                verdict = predicate()
            else:  # the predicate reads its inputs here: fetch any kept on a cluster
                named = kwargs or {}
                values = fetched((*named.values(), *args))
                inputs = dict(zip(named, values, strict=False))
                verdict = predicate(*values[len(named) :], **inputs)
            if hasattr(verdict, "__await__"):
                close = getattr(verdict, "close", None)
                if close is not None:
                    close()
                raise ConfigurationError(
                    f"task {task.name!r}: when= must be a sync predicate; it returned {verdict!r}"
                )
        except INTERRUPTS:
            raise
        except BaseException as error:
            self._refuse(i, error)
            return True
        if verdict:
            return False
        self._skip(i)
        return True

    def _refuse(self, i: int, error: BaseException) -> None:
        """Fail ``i`` for good before it ran: its first attempt is the failure, never retried
        (a failing ``when=`` predicate, or state that cannot be read or written)."""
        self.errors[i] = error
        self.attempts[i] = 1
        self._fail_for_good(i, error)

    def _skip(self, i: int) -> None:
        self._settle(i, _SKIPPED)
        self._release(i)

    def _release(self, i: int) -> None:
        """Task ``i`` is settled for its dependants: count it done for each of them.

        :meth:`succeed` does the same inline: it is the hot path, one call per task saved.
        """
        pending, ready, n = self.pending, self.ready, self.n
        for child in self.children[i]:
            if child < n:  # a task added during the run is not part of it
                left = pending[child] - 1
                pending[child] = left
                if not left:
                    ready.append(child)

    def _fail_for_good(
        self, i: int, error: BaseException, failure: TaskFailedError | None = None
    ) -> None:
        name = self.run._names[i]
        if failure is None:
            failure = TaskFailedError(name, max(self.attempts[i], 1), error)
        child = None if self.nest is None else self.nest.child_of(self, i)
        # A child task's failure is its subflow's: the run lists it once, inside the failure
        # of the task that opened the subflow.
        (self.run.failures if child is None else child.failures).append(failure)
        # INFO, not WARNING: the run raises WorkflowFailedError with this failure in it, and
        # unconfigured logging would print warnings to stderr a second time.
        logger.info(
            "%s", failure,
            extra={**self.log_fields, "task": name, "attempt": failure.attempts},
        )  # fmt: skip
        self._settle(i, _FAILED)
        # Everything downstream can no longer run: say so now, not at the end.
        statuses, children, n = self.statuses, self.children, self.n
        stack = [c for c in children[i] if c < n]
        while stack:
            j = stack.pop()
            if statuses[j] is _PENDING:
                self._settle(j, _UPSTREAM_FAILED)
                stack.extend(c for c in children[j] if c < n)
        if self.policy is FailurePolicy.FAIL_FAST:
            self.stop_starting()

    def stop_starting(self) -> None:
        """From now on no task starts (fail-fast, a stop request): set :attr:`stopping`; the
        run's parked tasks leave their limiters' queues now (``Gates.stop``: callers of other
        runs behind them must not wait for this run's calls in flight to end)."""
        self.stopping = True
        if self.gates is not None:
            self.gates.stop()

    def _settle(self, i: int, status: TaskStatus) -> None:
        if self.gates is not None:
            self.gates.release(i, None)  # e.g. cancelled while it ran
        self.statuses[i] = status
        self.finished[i] = perf_counter()
        if self.tasks[i].on_status_change is not None or self.monitors:
            self._notify(i, status)
        if i >= self.run.own_tasks:
            _nesting.settled(self, i, status)
        if self.releaser is not None:
            self.releaser.ended(i)

    def _notify(self, i: int, status: TaskStatus) -> None:
        task = self.tasks[i]
        name = self.run._names[i]  # a subflow's task: its nested name
        callback = task.on_status_change
        if callback is not None and (id(callback), "on_status_change") not in self._muted:
            self._call_task_callback(i, "on_status_change", callback, name, status)
        for monitor in tuple(self.monitors):
            self._call_monitor(monitor, "on_status_change", self.run, name, status)

    def _call_task_callback(
        self, i: int, kind: str, callback: Callable[..., object], *args: object
    ) -> None:
        name = self.tasks[i].name
        key = (id(callback), kind)
        start = perf_counter()
        value: object = None
        waiting: object = None
        try:
            ok, value = call_safely(callback, args, "%s of task %r", kind, name)
            if not ok:
                self._muted.add(key)
            elif hasattr(value, "__await__"):
                waiting = self.observer_waits.wait(
                    value,
                    "%s of task %r",
                    kind,
                    name,
                    on_error=lambda: self._muted.add(key),
                )
                self._awaiter(waiting)
        except INTERRUPTS:
            close_unstarted(waiting, value)
            if interrupted_slow(start):  # the stop must not wait on it again
                self._muted.add(key)
            raise

    def _call_monitor(self, monitor: Monitor, hook: str, *args: object) -> None:
        start = perf_counter()
        value: object = None
        waiting: object = None
        try:
            ok, value = call_safely(getattr(monitor, hook), args, "monitor %r.%s", monitor, hook)
            if not ok:
                self._drop_monitor(monitor)
            elif hasattr(value, "__await__"):
                waiting = self.observer_waits.wait(
                    value,
                    "monitor %r.%s",
                    monitor,
                    hook,
                    on_error=lambda: self._drop_monitor(monitor),
                )
                self._awaiter(waiting)
        except INTERRUPTS:
            close_unstarted(waiting, value)
            if interrupted_slow(start):  # the stop must not wait on it again
                self._drop_monitor(monitor)
            raise

    def _drop_monitor(self, monitor: Monitor) -> None:
        if monitor in self.monitors:
            self.monitors.remove(monitor)
