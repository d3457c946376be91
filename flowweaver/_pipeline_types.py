"""The values a pipeline hands out: results, events, statistics, snapshots, error summaries.

All of them are frozen snapshots built on demand: the pipeline's hot path keeps plain counters
and only turns them into these objects when somebody asks (``get_stats()``, a tracker query, a
dashboard poll) or listens (a tracker callback). States are string enums, so the seeds'
``event.status == "failed"`` and ``state.status == "busy"`` comparisons keep working.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NoReturn

from ._public import publish

__all__ = [
    "EMPTY",
    "DashboardSnapshot",
    "ErrorSummary",
    "FailedItem",
    "ItemStatus",
    "PipelineResult",
    "PipelineStats",
    "StageStats",
    "StatusEvent",
    "TaskEvent",
    "TaskEventType",
    "WorkerMetrics",
    "WorkerState",
    "WorkerStatus",
    "success",
]


class _Empty(Mapping[str, Any]):
    """The empty mapping every event without metadata shares (read-only and hashable, so it
    can be a dataclass default)."""

    __slots__ = ()

    def __getitem__(self, key: str) -> NoReturn:
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0

    def __hash__(self) -> int:
        return 0

    def __repr__(self) -> str:
        return "{}"


EMPTY: Mapping[str, Any] = _Empty()


class ItemStatus(StrEnum):
    """Where an item stands in a stage.

    ``queued → in_progress → completed`` in each stage (``skipped`` instead when the stage's
    ``skip_if`` says so), with ``retrying`` between per-stage attempts; ``failed`` is final.
    """

    QUEUED = "queued"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"
    RETRYING = "retrying"
    SKIPPED = "skipped"


class WorkerStatus(StrEnum):
    """What a stage worker is doing."""

    IDLE = "idle"
    BUSY = "busy"
    #: Holding an item while it waits out a per-task retry (``WorkerState.attempt`` is next).
    RETRYING = "retrying"


class TaskEventType(StrEnum):
    """The kind of a :class:`TaskEvent`."""

    START = "start"
    COMPLETE = "complete"
    RETRY = "retry"
    FAIL = "fail"


@dataclass(frozen=True, slots=True)
class PipelineResult:
    """What became of one item.

    Attributes:
        id: The item's id: its input index, or the ``"id"`` of a dict item.
        value: The final stage's output; for a failure, the value the failing stage received.
        sequence_id: Position of the item in the order it was fed (``run()`` sorts by it).
        metadata: The other keys of a dict item (besides ``"id"`` and ``"value"``).
        error: The exception the item failed with, or None.
        stage: For a failure, the stage it failed in.
        restored: True when the value is the result an earlier run committed (a checkpointed
            ``run(store=..., run_id=...)``): the item passed no stage in this run.
    """

    id: Any
    value: Any
    sequence_id: int
    metadata: Mapping[str, Any] = EMPTY
    error: BaseException | None = None
    stage: str | None = None
    restored: bool = False

    @property
    def is_success(self) -> bool:
        return self.error is None

    @property
    def is_failure(self) -> bool:
        return self.error is not None


def _result_maker() -> Callable[[Any, Any, int, Mapping[str, Any]], PipelineResult]:
    """A maker of successful results that skips the frozen ``__init__``.

    A frozen dataclass sets each field through ``object.__setattr__``: 0.6 µs for the seven of
    a result, a quarter of what a whole item costs a 3-stage pipeline. Setting the slots
    through their own descriptors makes the same object in about 60 % of that time.
    """
    slots = PipelineResult.__dict__
    new = object.__new__
    set_id, set_value, set_seq, set_meta, set_error, set_stage, set_restored = (
        slots[name].__set__
        for name in ("id", "value", "sequence_id", "metadata", "error", "stage", "restored")
    )

    def result(
        item_id: Any, value: Any, sequence_id: int, metadata: Mapping[str, Any]
    ) -> PipelineResult:
        made = new(PipelineResult)
        set_id(made, item_id)
        set_value(made, value)
        set_seq(made, sequence_id)
        set_meta(made, metadata)
        set_error(made, None)
        set_stage(made, None)
        set_restored(made, False)
        return made

    return result


#: ``success(id, value, sequence_id, metadata)``: ``PipelineResult(id, value, sequence_id,
#: metadata)``, made faster (the last stage makes one per item).
success = _result_maker()


@dataclass(frozen=True, slots=True)
class StatusEvent:
    """An item changed status in a stage (what :class:`StatusTracker` records).

    Attributes:
        item_id: The item's id.
        stage: The stage's name.
        status: The new status.
        worker: The worker handling it (``"Fetch-W3"``), None while queued.
        timestamp: ``time.time()`` of the change.
        metadata: ``{"error", "error_type", "attempts"}`` for ``failed``; ``{"attempt",
            "retry", "error", "error_type"}`` for ``retrying``; empty otherwise.
    """

    item_id: Any
    stage: str | None
    status: ItemStatus
    worker: str | None
    timestamp: float
    metadata: Mapping[str, Any] = EMPTY

    @property
    def worker_id(self) -> int | None:
        """The worker's index within its stage (``"Fetch-W3"`` → 3), or None."""
        if self.worker is None:
            return None
        _, _, number = self.worker.rpartition("-W")
        return int(number) if number.isdigit() else None


@dataclass(frozen=True, slots=True)
class TaskEvent:
    """One task function of a stage started, completed, will be retried, or failed for good.

    Attributes:
        item_id: The item being processed.
        stage: The stage's name.
        task_name: The task function's name.
        worker: The worker running it.
        event_type: ``start``, ``complete``, ``retry`` or ``fail``.
        attempt: The attempt this event is about (1-based); for ``retry`` and ``fail``, the
            attempt that just failed.
        timestamp: ``time.time()`` of the event.
        error: The exception, for ``retry`` and ``fail``.
        duration: Seconds the attempt took (None for ``start``).
    """

    item_id: Any
    stage: str
    task_name: str
    worker: str
    event_type: TaskEventType
    attempt: int
    timestamp: float
    error: BaseException | None = None
    duration: float | None = None


@dataclass(frozen=True, slots=True)
class StageStats:
    """One stage's counts at the time of the snapshot.

    Attributes:
        stage_name: The stage's name.
        pending_items: Items waiting in its queue.
        in_progress_items: Items its workers hold (running, or waiting for a retry or for room
            in the next stage).
        completed_items: Items it processed successfully (its workers' ``items_processed``).
        failed_items: Items that failed in it, however they failed (cancelled by a shutdown
            included): the count of :attr:`ErrorSummary.errors_by_stage`.
    """

    stage_name: str
    pending_items: int
    in_progress_items: int
    completed_items: int
    failed_items: int


@dataclass(frozen=True, slots=True)
class PipelineStats:
    """Counts of the current (or latest) run.

    Attributes:
        items_processed: Items that completed every stage (restored ones included).
        items_failed: Items that failed (in any stage, or cancelled by a shutdown).
        items_in_flight: Items fed and not yet ended (queued, running, waiting for a retry or
            for room in the next stage, or taken from the input and waiting for room in the
            first).
        queue_sizes: Items waiting in each stage's queue.
        stage_stats: Per-stage counts.
        items_restored: Items of ``items_processed`` whose result an earlier run had committed
            (checkpointing): they passed no stage in this run.
    """

    items_processed: int
    items_failed: int
    items_in_flight: int
    queue_sizes: Mapping[str, int]
    stage_stats: Mapping[str, StageStats] = EMPTY
    items_restored: int = 0


@dataclass(frozen=True, slots=True)
class WorkerState:
    """What one worker is doing right now."""

    worker_name: str
    stage: str
    status: WorkerStatus
    current_item_id: Any = None
    processing_since: float | None = None  # time.time() when it took its current item
    current_task: str | None = None


@dataclass(frozen=True, slots=True)
class WorkerMetrics:
    """What one worker has done in the current (or latest) run.

    Attributes:
        worker_name: The worker's name (``"Fetch-W3"``).
        stage: Its stage's name.
        items_processed: Items it processed successfully.
        items_failed: Items that failed while it held them (a shutdown's included).
        total_processing_time: Seconds it spent on the items it processed successfully, from
            taking each one to the end of its tasks (the time of failed items is not in it).
        last_active: ``time.time()`` when it last finished an item, or None.
    """

    worker_name: str
    stage: str
    items_processed: int = 0
    items_failed: int = 0
    total_processing_time: float = 0.0
    last_active: float | None = None

    @property
    def avg_processing_time(self) -> float:
        """Seconds per successfully processed item: ``total_processing_time`` divided by
        ``items_processed`` (0.0 before the first one)."""
        if not self.items_processed:
            return 0.0
        return self.total_processing_time / self.items_processed


@dataclass(frozen=True, slots=True)
class DashboardSnapshot:
    """Everything a dashboard draws, taken at one moment.

    Its size depends on the pipeline's shape (stages, workers), never on how many items have
    passed: a dashboard that draws from snapshots costs the same for ten items or ten million.

    Attributes:
        worker_states: What each worker is doing now.
        worker_metrics: What each worker has done in the run.
        pipeline_stats: The run's counts, overall and per stage.
        timestamp: ``time.time()`` when the snapshot was taken.
        recent_failures: The latest failures of the run, oldest first (at most a few: see
            :meth:`Pipeline.get_error_summary` for all of them).
        error_summary: The run's failures (AntFlow 0.10's field): exact counts, and as
            ``failed_items`` the same few latest failures, so a snapshot stays small.
        retry_attempts: ``{worker name: attempt}`` for each worker ``retrying``: the attempt
            it waits to start (2 for the first retry).
    """

    worker_states: Mapping[str, WorkerState]
    worker_metrics: Mapping[str, WorkerMetrics]
    pipeline_stats: PipelineStats
    timestamp: float
    recent_failures: tuple[FailedItem, ...] = ()
    error_summary: ErrorSummary = field(default_factory=lambda: ErrorSummary())  # noqa: PLW0108  (defined below)
    retry_attempts: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class FailedItem:
    """One item that failed.

    Attributes:
        item_id: The item's id.
        stage: The stage it failed in.
        error: The exception of its last attempt (:class:`ItemCancelledError` when the
            pipeline stopped before it finished).
        attempts: Attempts started by the failing task (per-task retry) or of the whole stage
            (per-stage retry); for an item a shutdown cancelled, those started before it did.
            0 when none was (cancelled while queued, ``skip_if`` raised).
        timestamp: ``time.time()`` of the failure.
    """

    item_id: Any
    stage: str
    error: BaseException
    attempts: int
    timestamp: float

    @property
    def error_type(self) -> str:
        return type(self.error).__name__


@dataclass(frozen=True, slots=True)
class ErrorSummary:
    """The failures of the current (or latest) run, counted two ways and listed.

    Attributes:
        total_failed: How many items failed (exact).
        errors_by_type: ``{error type name: count}`` (exact).
        errors_by_stage: ``{stage name: count}`` (exact).
        failed_items: The failures, oldest first: every one when the run kept its results;
            the latest 1,000 when it kept none (``stream()``, ``collect_results=False``).
    """

    total_failed: int = 0
    errors_by_type: Mapping[str, int] = EMPTY
    errors_by_stage: Mapping[str, int] = EMPTY
    failed_items: list[FailedItem] = field(default_factory=list)

    def __str__(self) -> str:
        if not self.total_failed:
            return "no failures"
        by_type = ", ".join(f"{name}: {count}" for name, count in self.errors_by_type.items())
        return f"{self.total_failed} failed ({by_type})"


publish(__name__)  # last: every exported class above exists
