"""A pipeline Stage: its definition, its validation, and what is computed from it once.

A :class:`Stage` is a frozen definition (AntFlow's field names and order). Everything the
workers need per call — each task's name and whether it is a coroutine function, the retry
policy, the queue capacity — is derived once, when the stage is built, and kept in a private
:class:`StagePlan`: nothing is rebuilt per item (AntFlow builds a tenacity wrapper per task per
item, which is where two thirds of its time goes).

As in AntFlow, an invalid stage can be built: :meth:`Stage.validate` and ``Pipeline(...)``
raise its :class:`StageValidationError` (the same one, naming the stage, the field and the bad
value), so a list of stages can be assembled before it is checked.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, field, replace
from typing import Any

from ._binding import is_coroutine_callable
from ._checks import is_count, is_number
from ._errors import StageValidationError
from ._limiter import Limiter
from ._public import publish
from ._retry import RetryPolicy

#: The longest a server's Retry-After stretches a stage's constant ``task_wait_seconds``.
_RETRY_AFTER_CAP = 60.0

__all__ = ["RETRY_MODES", "Stage", "StagePlan", "task_name"]

#: The two retry modes of a stage (AntFlow's strings).
RETRY_MODES = ("per_task", "per_stage")

#: Each worker of a stage may have this many items waiting in the stage's queue by default.
QUEUE_PER_WORKER = 10

TaskFunc = Callable[..., Any]


def task_name(fn: object) -> str:
    """The name a task is known by (events, ``task_concurrency_limits``): its ``__name__``."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    name = getattr(fn, "__name__", None)
    return name if isinstance(name, str) else type(fn).__name__


@dataclass(frozen=True, slots=True)
class StagePlan:
    """What the workers of a stage need, computed once from its definition."""

    names: tuple[str, ...]
    is_async: tuple[bool, ...]
    #: Retries of one task call (per-task mode); retries nothing in per-stage mode.
    task_policy: RetryPolicy
    #: Re-runs of the whole task list (per-stage mode), else None.
    stage_policy: RetryPolicy | None
    #: Most items in the stage's queue (None: unbounded); 0 for a pull stage (a hand-off).
    capacity: int | None
    #: A pull stage: an item leaves the upstream worker only when one of its workers is free.
    pull: bool = False


_NO_RETRY = RetryPolicy(retries=0, delay=0.0, jitter=0.0)


@dataclass(frozen=True, slots=True)
class Stage:
    """One step of a :class:`~flowweaver.Pipeline`: a pool of workers running tasks in order.

    Every item a worker takes goes through ``tasks`` one after another, each task receiving the
    previous one's result; the last result moves on to the next stage.

    Examples:
        >>> async def fetch(url): ...
        >>> stage = Stage(name="Fetch", workers=10, tasks=[fetch], task_attempts=5)

    Args:
        name: Unique within its pipeline; workers are named ``"<name>-W0"`` …
        workers: How many items the stage processes at once (default 1).
        tasks: Sync or async callables. Async ones run on the event loop; sync ones on the
            pipeline's executor (flowweaver's daemon threads by default).
        retry: ``"per_task"``: a failing task call is retried on its own, waiting
            ``task_wait_seconds`` between attempts (the worker keeps the item); ``"per_stage"``:
            a failure sends the item back to the end of the stage's queue to run every task
            again, up to ``stage_attempts`` times.
        task_attempts: Attempts per task call in per-task mode (default 3; 1 = no retry).
        task_wait_seconds: Seconds between per-task attempts (default 1.0). With the
            defaults a failing call takes three attempts and two seconds before its item
            fails; a run that ends with failed items logs one WARNING saying how many.
        stage_attempts: Attempts of the whole task list in per-stage mode (default 3).
        unpack_args: Call every task with its input unpacked: a dict as keyword arguments, a
            list or tuple as positional ones (anything else as the single argument).
        task_concurrency_limits: ``{task name: n}``: at most ``n`` calls of that task at once
            in this stage; the stage's other workers keep working meanwhile.
        on_success: ``(item_id, value, metadata)`` after an item completes this stage.
        on_failure: ``(item_id, error, metadata)`` after an item fails in this stage.
        skip_if: ``(value) -> bool`` (sync or async); a true result passes the item through
            this stage unchanged (status ``skipped``). If it raises, the item fails.
        queue_capacity: Most items waiting in this stage's queue: None for 10 per worker,
            0 for unbounded (no backpressure: opt in knowingly). Ignored by a pull stage.
        on_skip: ``(item_id, value, metadata)`` after ``skip_if`` passed an item through.
        pull: Make the stage's input a zero-buffer hand-off: an item leaves the upstream
            worker only when one of this stage's workers is free to take it, so at most
            ``workers`` items are inside the stage and none waits in a queue (for work that
            must not sit, e.g. short-lived URLs). Not for the first stage, nor with
            ``retry="per_stage"``.
        call_concurrency: At most this many blocks under ``concurrency_limit()`` at once,
            across the stage's workers (30 polling workers, 5 API calls at a time).
        call_rate: At most this many blocks under ``rate_limit()`` start in any
            ``call_rate_period`` seconds (``call_rate_has_capacity()`` peeks).
        call_rate_period: The window of ``call_rate``, in seconds (AntFlow's default: 60).
        task_timeout: Seconds one task call may take (None: no limit), counted from when the
            call can run: a sync call waiting for a free thread or executor slot is not timed
            yet. A timeout is a failed attempt (:class:`~flowweaver.TaskTimeoutError`), retried
            like any other. What it stops depends on where the call runs: an **async** task is
            cancelled. A **sync** task on the pipeline's own threads (no ``executor=``) is
            abandoned — it runs on, its late result discarded — and its thread is replaced, so
            later items never wait for it. A sync task on a given executor is cancelled if it
            has not started, else abandoned, and it keeps its slot of the executor
            (``max_workers``) until it returns: later items wait for a slot, untimed, instead
            of timing out in the executor's queue (an executor with no ``max_workers`` gets no
            slots, so time in its queue counts). Nothing is killed: a call on a
            :class:`~flowweaver.ProcessExecutor` runs on in its process (only *workflow* runs
            on a ``ProcessExecutor`` terminate a timed-out call's process). On a
            :class:`~flowweaver.SequentialExecutor` the call runs inline and cannot be
            interrupted: an overrun fails the attempt when it returns.
        retry_policy: A :class:`~flowweaver.RetryPolicy` to use instead of
            ``task_attempts``/``task_wait_seconds`` (per-task) or ``stage_attempts``
            (per-stage): exponential back-off, jitter, ``retry_on``, ``retry_if``,
            ``retry_after``.
        retry_if: ``(error) -> bool``: whether a failure is worth another attempt (with
            either retry mode). If it raises, its exception is the item's failure. A server's
            ``Retry-After`` (a failure's ``retry_after`` attribute) lengthens the next wait,
            up to ``retry_policy.max_delay`` (without one: 60 s, or ``task_wait_seconds`` if
            longer).
        retry_if_result: ``(result) -> bool``: a true answer counts a task's returned value
            as a failure (:class:`~flowweaver.RejectedResultError`, carrying the value),
            retried like an exception (with either retry mode) whatever ``retry_on`` and
            ``retry_if`` say; the last one is the item's failure. If it raises, its
            exception is the item's failure. It runs where the task runs.
        limits: Shared :class:`~flowweaver.Limiter` objects: every call of the stage's tasks
            (each attempt) takes a slot and a token of each, in order, for as long as it runs.
            The same limiter may limit workflows' tasks and other pipelines at the same time.

    Callbacks may be sync or async; one that raises is logged and disabled for the rest of the
    run, and never changes the item's outcome.

    Raises:
        StageValidationError: From :meth:`validate` and ``Pipeline(...)``, not from the
            constructor (AntFlow's rule): a field is invalid. It is a ``ValueError`` and a
            :class:`~flowweaver.PipelineError`; the message names the stage, the field and the
            bad value.
    """

    name: str
    workers: int = 1
    tasks: Sequence[TaskFunc] = ()
    retry: str = "per_task"
    task_attempts: int = 3
    task_wait_seconds: float = 1.0
    stage_attempts: int = 3
    unpack_args: bool = False
    task_concurrency_limits: Mapping[str, int] = field(default_factory=dict)
    on_success: Callable[[Any, Any, dict[str, Any]], object] | None = None
    on_failure: Callable[[Any, BaseException, dict[str, Any]], object] | None = None
    skip_if: Callable[[Any], object] | None = None
    queue_capacity: int | None = None
    _: KW_ONLY
    task_timeout: float | None = None
    retry_policy: RetryPolicy | None = None
    on_skip: Callable[[Any, Any, dict[str, Any]], object] | None = None
    pull: bool = False
    call_concurrency: int | None = None
    call_rate: float | None = None
    call_rate_period: float = 60.0
    retry_if: Callable[[BaseException], object] | None = None
    limits: Sequence[Limiter] = ()
    retry_if_result: Callable[[Any], object] | None = None
    _plan: StagePlan | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.limits, list | tuple):
            object.__setattr__(self, "limits", tuple(self.limits))
        tasks: object = self.tasks
        if isinstance(tasks, Sequence) and not isinstance(tasks, str | bytes):
            object.__setattr__(self, "tasks", tuple(tasks))
        if isinstance(self.task_concurrency_limits, Mapping):
            object.__setattr__(self, "task_concurrency_limits", dict(self.task_concurrency_limits))
        try:
            plan: StagePlan | None = self._compile()
        except StageValidationError:
            plan = None  # validate() and Pipeline(...) raise it (AntFlow's rule)
        object.__setattr__(self, "_plan", plan)

    def validate(self) -> None:
        """Check every field.

        Raises:
            StageValidationError: A field is invalid.
        """
        if self._plan is None:
            self._compile()

    @property
    def plan(self) -> StagePlan:
        """What the workers use, derived from the fields once.

        Raises:
            StageValidationError: The stage is invalid.
        """
        plan = self._plan
        return plan if plan is not None else self._compile()

    def _bad(self, name: str, message: str) -> StageValidationError:
        return StageValidationError(f"stage {self.name!r}: {name} {message}", self.name, name)

    def _compile(self) -> StagePlan:
        name = self.name
        if not isinstance(name, str) or not name:
            raise StageValidationError(
                f"stage name must be a non-empty str, got {name!r}", None, "name"
            )
        if not is_count(self.workers, 1):
            raise self._bad(
                "workers",
                f"must be an int >= 1, got {self.workers!r} (a stage must have at least 1 worker)",
            )
        tasks = self.tasks
        if not isinstance(tasks, tuple) or not tasks:
            hint = " (a stage must have at least one task)" if tasks == () else ""
            raise self._bad(
                "tasks", f"must be a non-empty sequence of callables, got {tasks!r}{hint}"
            )
        for index, fn in enumerate(tasks):
            if not callable(fn):
                raise self._bad(f"tasks[{index}]", f"must be callable, got {fn!r}")
        if self.retry not in RETRY_MODES:
            raise self._bad("retry", f"must be 'per_task' or 'per_stage', got {self.retry!r}")
        for label in ("task_attempts", "stage_attempts"):
            if not is_count(getattr(self, label), 1):
                value = getattr(self, label)
                raise self._bad(
                    label, f"must be an int >= 1, got {value!r} ({label} must be at least 1)"
                )
        wait = self.task_wait_seconds
        if not is_number(wait) or wait < 0:
            raise self._bad("task_wait_seconds", f"must be a finite number >= 0, got {wait!r}")
        if not isinstance(self.unpack_args, bool):
            raise self._bad("unpack_args", f"must be a bool, got {self.unpack_args!r}")
        names = tuple(task_name(fn) for fn in tasks)
        self._check_limits(names)
        for label in ("on_success", "on_failure", "skip_if", "on_skip"):
            value = getattr(self, label)
            if value is not None and not callable(value):
                raise self._bad(label, f"must be callable or None, got {value!r}")
        capacity = self.queue_capacity
        if capacity is not None and not is_count(capacity, 0):
            raise self._bad("queue_capacity", f"must be an int >= 0 or None, got {capacity!r}")
        timeout = self.task_timeout
        if timeout is not None and (not is_number(timeout) or timeout <= 0):
            raise self._bad("task_timeout", f"must be a finite number > 0 or None, got {timeout!r}")
        limits = self.limits
        if not isinstance(limits, tuple) or not all(isinstance(x, Limiter) for x in limits):
            raise self._bad("limits", f"must be a sequence of Limiter, got {limits!r}")
        task_policy, stage_policy = self._policies()
        self._check_calls()
        if capacity is None:
            capacity = self.workers * QUEUE_PER_WORKER
        return StagePlan(
            names=names,
            is_async=tuple(is_coroutine_callable(fn) for fn in tasks),
            task_policy=task_policy,
            stage_policy=stage_policy,
            capacity=0 if self.pull else (capacity or None),
            pull=self.pull,
        )

    def _check_calls(self) -> None:
        """``pull`` and the call limits (AntFlow 0.10's fields)."""
        if not isinstance(self.pull, bool):
            raise self._bad("pull", f"must be a bool, got {self.pull!r}")
        if self.pull and self.retry == "per_stage":
            raise self._bad("pull", "pull=True is not compatible with retry='per_stage'")
        limit = self.call_concurrency
        if limit is not None and not is_count(limit, 1):
            raise self._bad("call_concurrency", f"must be an int >= 1 or None, got {limit!r}")
        rate = self.call_rate
        if rate is not None and (not is_number(rate) or rate <= 0):
            raise self._bad("call_rate", f"must be a finite number > 0 or None, got {rate!r}")
        period = self.call_rate_period
        if not is_number(period) or period <= 0:
            raise self._bad("call_rate_period", f"must be a finite number > 0, got {period!r}")

    def _check_limits(self, names: tuple[str, ...]) -> None:
        limits = self.task_concurrency_limits
        if not isinstance(limits, dict):
            raise self._bad(
                "task_concurrency_limits",
                f"must be a dict of task name -> int >= 1, got {limits!r}",
            )
        for key, limit in limits.items():
            if key not in names:
                raise self._bad(
                    "task_concurrency_limits",
                    f"references unknown task(s): {key!r} is not one of its tasks {list(names)!r}",
                )
            if not is_count(limit, 1):
                raise self._bad(
                    f"task_concurrency_limits[{key!r}]", f"must be an int >= 1, got {limit!r}"
                )

    def _policies(self) -> tuple[RetryPolicy, RetryPolicy | None]:
        task_policy, stage_policy = self._given_policies()
        conditions: dict[str, Any] = {}
        for label in ("retry_if", "retry_if_result"):
            condition = getattr(self, label)
            if condition is None:
                continue
            if not callable(condition):
                raise self._bad(label, f"must be callable or None, got {condition!r}")
            if self.retry_policy is not None and getattr(self.retry_policy, label) is not None:
                raise self._bad(label, "is given twice: here and in retry_policy")
            conditions[label] = condition
        if not conditions:
            return task_policy, stage_policy
        if stage_policy is not None:
            return task_policy, replace(stage_policy, **conditions)
        return replace(task_policy, **conditions), None

    def _given_policies(self) -> tuple[RetryPolicy, RetryPolicy | None]:
        policy = self.retry_policy
        per_task = self.retry == "per_task"
        if policy is None:
            if per_task:
                wait = float(self.task_wait_seconds)
                # The cap only bounds a server's Retry-After: the waits themselves are constant.
                cap = max(wait, _RETRY_AFTER_CAP)
                return RetryPolicy(self.task_attempts - 1, wait, 1.0, cap, 0.0), None
            return _NO_RETRY, RetryPolicy(self.stage_attempts - 1, 0.0, 1.0, _RETRY_AFTER_CAP, 0.0)
        if not isinstance(policy, RetryPolicy):
            raise self._bad("retry_policy", f"must be a RetryPolicy or None, got {policy!r}")
        given = [
            label
            for label, default in (
                ("task_attempts", 3),
                ("task_wait_seconds", 1.0),
                ("stage_attempts", 3),
            )
            if getattr(self, label) != default
        ]
        if given:
            raise self._bad(
                "retry_policy", f"replaces {', '.join(given)}: give one or the other, not both"
            )
        return (policy, None) if per_task else (_NO_RETRY, policy)


publish(__name__)  # last: every exported class above exists
