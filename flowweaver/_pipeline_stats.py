"""Snapshots of a run: statistics, worker states and metrics, the error summary.

Built on demand from the run's plain counters (the hot path never builds them). Before the first
run they describe idle workers and zero counts.
"""

from __future__ import annotations

from itertools import islice
from time import perf_counter, time
from typing import TYPE_CHECKING

from ._errors import ItemCancelledError
from ._pipeline_types import (
    DashboardSnapshot,
    ErrorSummary,
    FailedItem,
    PipelineStats,
    StageStats,
    WorkerMetrics,
    WorkerState,
    WorkerStatus,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ._pipeline_run import PipelineRun
    from ._stage import Stage
    from ._stage_items import WorkerSlot
    from ._stage_run import StageRun

__all__ = [
    "RECENT_FAILURES",
    "dashboard_snapshot",
    "end_of_run_warning",
    "error_summary",
    "pipeline_stats",
    "worker_metrics",
    "worker_state",
    "worker_states",
]


#: How many of the latest failures a dashboard snapshot carries.
RECENT_FAILURES = 10


def _worker_names(stages: Sequence[Stage]) -> list[tuple[str, str]]:
    return [(f"{s.name}-W{i}", s.name) for s in stages for i in range(s.workers)]


def worker_states(stages: Sequence[Stage], run: PipelineRun | None) -> dict[str, WorkerState]:
    if run is None:
        return {
            name: WorkerState(name, stage, WorkerStatus.IDLE)
            for name, stage in _worker_names(stages)
        }
    offset = time() - perf_counter()  # turns perf_counter readings into wall-clock times
    return {
        slot.name: worker_state(stage, slot, offset) for stage in run.stages for slot in stage.slots
    }


def worker_state(stage: StageRun, slot: WorkerSlot, offset: float | None = None) -> WorkerState:
    """One worker's state: ``current_task`` is what its task last said (``set_task_status``),
    else the name of the task it runs."""
    item = slot.item
    if item is None:
        return WorkerState(slot.name, stage.name, WorkerStatus.IDLE)
    if offset is None:
        offset = time() - perf_counter()
    return WorkerState(
        slot.name,
        stage.name,
        WorkerStatus.RETRYING if slot.waiting else WorkerStatus.BUSY,
        item.id,
        slot.since + offset,
        slot.status if slot.status is not None else stage.names[slot.task],
    )


def worker_metrics(stages: Sequence[Stage], run: PipelineRun | None) -> dict[str, WorkerMetrics]:
    if run is None:
        return {name: WorkerMetrics(name, stage) for name, stage in _worker_names(stages)}
    offset = time() - perf_counter()
    return {
        slot.name: WorkerMetrics(
            slot.name,
            stage.name,
            slot.processed,
            slot.failed,
            slot.busy,
            slot.last + offset if slot.last else None,
        )
        for stage in run.stages
        for slot in stage.slots
    }


def pipeline_stats(stages: Sequence[Stage], run: PipelineRun | None) -> PipelineStats:
    if run is None:
        empty = {s.name: StageStats(s.name, 0, 0, 0, 0) for s in stages}
        return PipelineStats(0, 0, 0, {s.name: 0 for s in stages}, empty)
    stage_stats = {}
    for stage in run.stages:
        slots = stage.slots
        stage_stats[stage.name] = StageStats(
            stage.name,
            len(stage.inbox),
            sum(1 for slot in slots if slot.item is not None),
            sum(slot.processed for slot in slots),
            # The run's own count: it includes failures no worker held (cancelled while queued).
            run.failed_by_stage[stage.name],
        )
    return PipelineStats(
        items_processed=run.processed,
        items_failed=run.failed,
        items_in_flight=run.open,
        queue_sizes={name: s.pending_items for name, s in stage_stats.items()},
        stage_stats=stage_stats,
        items_restored=run.restored,
    )


def dashboard_snapshot(stages: Sequence[Stage], run: PipelineRun | None) -> DashboardSnapshot:
    # The tail of the failure records, not a copy of them: a snapshot's size must not grow
    # with the number of items that passed.
    recent = () if run is None else tuple(islice(reversed(run.failures), RECENT_FAILURES))[::-1]
    retrying = (
        {}
        if run is None
        else {slot.name: slot.attempts + 1 for s in run.stages for slot in s.slots if slot.waiting}
    )
    return DashboardSnapshot(
        worker_states(stages, run),
        worker_metrics(stages, run),
        pipeline_stats(stages, run),
        time(),
        recent,
        error_summary(run, list(recent)),
        retrying,
    )


def error_summary(run: PipelineRun | None, items: list[FailedItem] | None = None) -> ErrorSummary:
    """The run's failures: exact counts, and ``items`` (default: every record it kept)."""
    if run is None or not run.failed:
        return ErrorSummary()
    return ErrorSummary(
        total_failed=run.failed,
        errors_by_type=dict(run.failed_by_type),
        errors_by_stage=dict(run.failed_by_stage),
        failed_items=list(run.failures) if items is None else items,
    )


#: The error type of an item a stop cancelled: counted apart from failures.
_CANCELLED = ItemCancelledError.__name__


def end_of_run_warning(name: str, run: PipelineRun) -> str | None:
    """The WARNING a run that ended with failed items logs (None: nothing failed).

    Retries are quiet by design, so a run whose items all failed would otherwise end silently
    with ``[]``; one line says how many failed, of what, and where to look.
    """
    by_type = {kind: n for kind, n in run.failed_by_type.items() if kind != _CANCELLED}
    failed = sum(by_type.values())
    if not failed:
        return None
    ended = run.processed + run.failed
    kinds = ", ".join(f"{kind} {n}" for kind, n in sorted(by_type.items(), key=lambda kv: -kv[1]))
    cancelled = run.failed - failed
    also = f", {cancelled} cancelled" if cancelled else ""
    noun = "item" if ended == 1 else "items"
    return (
        f"pipeline {name!r}: {failed} of {ended} {noun} failed ({kinds}){also}; "
        "see get_error_summary()"
    )
