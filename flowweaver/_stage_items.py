"""What a stage's workers hold: the item envelope, each worker's slot, a call's permits.

The records the stage loops (``_stage_run``, ``_stage_plain``) share with the run
(``_pipeline_run``) and its snapshots (``_pipeline_stats``): plain slotted objects, written by
the worker that holds them and read by whoever asks.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from ._calls import INTERRUPTS

__all__ = ["YIELD_EVERY", "Failed", "Item", "Permit", "WorkerSlot", "stops"]

#: A worker whose items never make it wait yields to the event loop after this many of them.
YIELD_EVERY = 64


class Item:
    """One item on its way through the pipeline (the run's envelope around the user's value)."""

    __slots__ = ("attempt", "ended", "id", "meta", "priority", "seq", "value")

    def __init__(
        self, id: Any, value: Any, seq: int, priority: int, meta: dict[str, Any] | None
    ) -> None:
        self.id = id
        self.value = value
        self.seq = seq
        self.priority = priority
        self.meta = meta
        #: Attempt of the current stage's task list (per-stage retry), 1-based.
        self.attempt = 1
        #: Set once, when the item becomes a result or a recorded failure.
        self.ended = False


class WorkerSlot:
    """One worker's state and counters (``get_worker_states`` / ``get_worker_metrics`` read
    them). Times are ``perf_counter`` readings, turned into wall-clock times on demand;
    ``busy`` is the time spent on the items it processed successfully."""

    __slots__ = (
        "attempts",
        "busy",
        "failed",
        "handed_off",
        "item",
        "last",
        "name",
        "processed",
        "since",
        "span",
        "status",
        "status_at",
        "task",
        "waiting",
    )

    def __init__(self, name: str) -> None:
        self.name = name
        self.item: Item | None = None
        #: What a hand-off calls as a pull stage's worker takes this worker's item.
        self.handed_off = self._handed_off
        #: What its task said it is doing (``set_task_status``), until it takes the next item.
        self.status: str | None = None
        self.status_at: float | None = None
        self.task = 0  # index of the task it is running (multi-task stages)
        #: Attempts started on the current item: of the running task (per-task retry) or of
        #: the stage (per-stage retry); 0 until a task starts. A shutdown reports it.
        self.attempts = 0
        self.since = 0.0
        self.last = 0.0
        self.busy = 0.0
        self.processed = 0
        self.failed = 0
        #: The OpenTelemetry span of the stage attempt it is running (telemetry on only).
        self.span: Any = None
        #: True while it waits out a per-task retry's delay (shown as ``retrying``).
        self.waiting = False

    def _handed_off(self) -> None:
        self.item = None


class Failed(Exception):
    """An item failed in this stage (carries what the worker needs to report it)."""

    def __init__(
        self, error: BaseException, attempts: int, task: int, duration: float | None
    ) -> None:
        self.error = error
        self.attempts = attempts
        self.task = task  # -1: not a task (skip_if raised)
        self.duration = duration


def stops(error: BaseException) -> bool:
    """Whether ``error`` must stop the worker rather than fail the item (module docstring)."""
    if isinstance(error, INTERRUPTS):
        return True
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


class Permit(Protocol):
    """What a stage task's call holds while it runs: a semaphore, or a stage's ``limits``."""

    async def acquire(self) -> object: ...

    def release(self) -> None: ...
