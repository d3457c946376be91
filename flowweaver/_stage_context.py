"""What a stage's task can ask about the worker running it: status, call limits.

Inside a stage task (async on the loop, or sync on the pipeline's threads) these functions
reach the worker that runs it through a ``ContextVar`` its worker sets once; a sync task sent
to flowweaver's threads (or to a thread-based executor) gets a copy of the worker's context, so
they work there too. Outside a stage task they have nothing to reach: the status calls do
nothing, the limit helpers raise.

* :func:`set_task_status` / :func:`get_worker_state`: a short message ("polling batch 7") shown
  as the worker's ``current_task`` in ``get_worker_states()``, snapshots and dashboards, until
  the worker takes its next item.
* :func:`concurrency_limit` / :func:`rate_limit` / :func:`call_rate_has_capacity`: the stage's
  ``call_concurrency`` and ``call_rate`` limits, each a :class:`~flowweaver.Limiter` made for the
  run, held only around the block that needs it (``async with`` on the loop, ``with`` on a
  thread).
"""

from __future__ import annotations

import contextvars
import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._errors import PipelineError
from ._public import publish

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._clock import Clock
    from ._limiter import Limiter
    from ._pipeline_types import WorkerState
    from ._stage_items import WorkerSlot
    from ._stage_run import StageRun

__all__ = [
    "WorkerContext",
    "call_rate_has_capacity",
    "concurrency_limit",
    "current",
    "get_worker_state",
    "in_worker_context",
    "rate_limit",
    "set_task_status",
]


@dataclass(frozen=True, slots=True)
class WorkerContext:
    """The worker a stage task runs on (set once per worker coroutine)."""

    stage: StageRun
    slot: WorkerSlot
    clock: Clock


current: contextvars.ContextVar[WorkerContext | None] = contextvars.ContextVar(
    "flowweaver_stage_worker", default=None
)


def in_worker_context(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn``, to be called on another thread in a copy of the calling worker's context.

    Called with the same arguments and carrying ``fn``'s name (``__wrapped__`` is ``fn``), so an
    executor that looks at what it runs sees the task, not a wrapper.
    """
    return functools.update_wrapper(functools.partial(contextvars.copy_context().run, fn), fn)


def set_task_status(status: str, min_interval: float = 0.0) -> bool:
    """Say what the current task is doing; shown as its worker's ``current_task``.

    Example::

        async def poll(job):
            for n in itertools.count():
                set_task_status(f"polling {job} ({n})", min_interval=0.5)
                ...

    Args:
        status: A short message; it stays until the worker takes its next item.
        min_interval: Ignore updates sooner than this many seconds after the last accepted one
            (for tight loops); measured on the pipeline's clock.

    Returns:
        True if the status was recorded; False outside a stage task, or when ``min_interval``
        dropped it.
    """
    context = current.get()
    if context is None:
        return False
    slot = context.slot
    if min_interval > 0:
        now = context.clock.now()
        if slot.status_at is not None and now - slot.status_at < min_interval:
            return False
        slot.status_at = now
    slot.status = str(status)
    return True


def get_worker_state() -> WorkerState | None:
    """The state of the worker running the current stage task (None outside one)."""
    from ._pipeline_stats import worker_state  # here: the stats module reads the stage runs

    context = current.get()
    return None if context is None else worker_state(context.stage, context.slot)


def concurrency_limit() -> Limiter:
    """The stage's ``call_concurrency`` limit: ``async with concurrency_limit():`` (or ``with``
    in a sync task) holds one of its slots only around the block.

    Example::

        async def poll_until_done(job):          # 30 workers poll, at most 5 calls at once
            while True:
                async with concurrency_limit():
                    status = await api.check(job)
                if status == "done":
                    return job
                await asyncio.sleep(10)

    Raises:
        PipelineError: Not inside a stage task, or the stage has no ``call_concurrency``
            (a ``RuntimeError``, as in AntFlow).
    """
    return _stage_limiter("concurrency_limit", "call_concurrency")


def rate_limit() -> Limiter:
    """The stage's ``call_rate`` limit: ``async with rate_limit():`` (or ``with``) waits until
    the rate window has room for one more call, then runs the block.

    At most ``call_rate`` blocks start in any ``call_rate_period`` seconds, across the stage's
    workers (an exact sliding window: bursts included).

    Raises:
        PipelineError: Not inside a stage task, or the stage has no ``call_rate``.
    """
    return _stage_limiter("rate_limit", "call_rate")


def call_rate_has_capacity(amount: float = 1) -> bool:
    """Whether ``rate_limit()`` would let ``amount`` calls start now, without taking them.

    True when there is no ``call_rate`` to respect (outside a stage task, or none set).
    """
    context = current.get()
    limiter = None if context is None else context.stage.call_rate
    return True if limiter is None else limiter.has_capacity(amount)


def _stage_limiter(helper: str, field: str) -> Limiter:
    context = current.get()
    if context is None:
        raise PipelineError(f"{helper}() works inside a pipeline stage's task only")
    stage = context.stage
    limiter = stage.call_concurrency if field == "call_concurrency" else stage.call_rate
    if limiter is None:
        raise PipelineError(
            f"{helper}() called but no {field} is configured on stage {stage.name!r}; "
            f"set {field}=N on the Stage to use {helper}()"
        )
    return limiter


publish(__name__)  # last: every exported class above exists
