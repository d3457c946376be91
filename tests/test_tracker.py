"""StatusTracker: statuses, history, counters, task events, callbacks, bounded history."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest

from flowweaver import (
    ConfigurationError,
    ItemStatus,
    Pipeline,
    Stage,
    StatusEvent,
    StatusTracker,
    TaskEvent,
)

from .conftest import FakeClock, Recorder, run


async def inc(x: int) -> int:
    return x + 1


def test_queries_after_a_run() -> None:
    async def picky(x: int) -> int:
        if x == 2:
            raise ValueError("two")
        return x

    tracker = StatusTracker()
    pipeline = Pipeline(
        [Stage("A", 2, [inc]), Stage("B", 1, [picky], task_attempts=1)], status_tracker=tracker
    )
    run(pipeline.run(range(4)))  # B sees 1, 2, 3, 4: item 1 (value 2) fails there
    assert tracker.get_stats() == {
        "queued": 0, "in_progress": 0, "completed": 3, "failed": 1, "retrying": 0, "skipped": 0,
    }  # fmt: skip
    status = tracker.get_status(1)
    assert status is not None
    assert (status.item_id, status.stage, status.status, status.worker) == (1, "B", "failed", None)
    assert dict(status.metadata) == {"error": "two", "error_type": "ValueError", "attempts": 1}
    assert [e.item_id for e in tracker.get_by_status("completed")] == [0, 2, 3]
    assert [e.item_id for e in tracker.get_by_status(ItemStatus.FAILED)] == [1]
    history = tracker.get_history(0)
    assert [(e.stage, e.status, e.worker_id) for e in history] == [
        ("A", "queued", None), ("A", "in_progress", 0), ("A", "completed", 0),
        ("B", "queued", None), ("B", "in_progress", 0), ("B", "completed", 0),
    ]  # fmt: skip
    assert all(a.timestamp <= b.timestamp for a, b in itertools.pairwise(history))
    assert tracker.get_status("nope") is None
    assert tracker.get_history("nope") == []


def test_status_events_mid_run() -> None:
    gate: list[asyncio.Event] = []

    async def wait(x: int) -> int:
        await gate[0].wait()
        return x

    tracker = StatusTracker()
    pipeline = Pipeline([Stage("S", 1, [wait])], status_tracker=tracker)

    async def main() -> None:
        gate.append(asyncio.Event())
        running = asyncio.ensure_future(pipeline.run(range(3)))
        for _ in range(10):
            await asyncio.sleep(0)
        assert tracker.get_stats()["in_progress"] == 1
        assert tracker.get_stats()["queued"] == 2
        gate[0].set()
        await running

    run(main())
    assert tracker.get_stats()["completed"] == 3


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_status_callbacks_may_be_sync_or_async(kind: str) -> None:
    seen: list[tuple[Any, str]] = []

    def sync(event: StatusEvent) -> None:
        seen.append((event.item_id, event.status.value))

    async def asynchronous(event: StatusEvent) -> None:
        await asyncio.sleep(0)
        sync(event)

    tracker = StatusTracker(on_status_change=sync if kind == "sync" else asynchronous)
    run(Pipeline([Stage("S", 1, [inc])], status_tracker=tracker).run([1]))
    assert seen == [(0, "queued"), (0, "in_progress"), (0, "completed")]


def test_task_events_per_task_retry() -> None:
    events: list[TaskEvent] = []
    calls = Recorder()

    async def flaky(x: int) -> int:
        calls(x)
        if calls.count(x) == 1:
            raise ConnectionError("once")
        return x

    tracker = StatusTracker(
        on_task_start=events.append,
        on_task_complete=events.append,
        on_task_retry=events.append,
        on_task_fail=events.append,
    )
    stage = Stage("S", 1, [inc, flaky], task_attempts=2)
    run(Pipeline([stage], status_tracker=tracker, clock=FakeClock()).run([5]))
    assert [(e.task_name, e.event_type, e.attempt, type(e.error).__name__) for e in events] == [
        ("inc", "start", 1, "NoneType"),
        ("inc", "complete", 1, "NoneType"),
        ("flaky", "start", 1, "NoneType"),
        ("flaky", "retry", 1, "ConnectionError"),
        ("flaky", "start", 2, "NoneType"),
        ("flaky", "complete", 2, "NoneType"),
    ]
    assert all(e.worker == "S-W0" and e.stage == "S" and e.item_id == 0 for e in events)
    assert events[0].duration is None and events[1].duration is not None


def test_task_events_per_stage_retry() -> None:
    events: list[tuple[str, str, int]] = []

    async def broken(x: int) -> int:
        raise OSError("no")

    def note(event: TaskEvent) -> None:
        events.append((event.task_name, event.event_type.value, event.attempt))

    tracker = StatusTracker(on_task_retry=note, on_task_fail=note)
    stage = Stage("S", 1, [inc, broken], retry="per_stage", stage_attempts=2)
    run(Pipeline([stage], status_tracker=tracker).run([1]))
    assert events == [("broken", "retry", 1), ("broken", "fail", 2)]


def test_item_level_callbacks() -> None:
    seen = Recorder()

    async def picky(x: int) -> int:
        if x:
            raise ValueError("no")
        return x

    tracker = StatusTracker(
        on_success=lambda i, v, m: seen("ok", i, v),
        on_failure=lambda i, e, m: seen("failed", i, str(e)),
    )
    run(
        Pipeline(
            [Stage("A", 1, [picky], task_attempts=1), Stage("B", 1, [inc])], status_tracker=tracker
        ).run([0, 1])
    )
    assert sorted(seen.items, key=str) == [("failed", 1, "no"), ("ok", 0, 1)]


def test_max_history_forgets_finished_items_but_counts_stay_exact() -> None:
    async def picky(x: int) -> int:
        if x % 4 == 0:
            raise ValueError("no")
        return x

    tracker = StatusTracker(max_history=3)
    stages = [Stage("A", 2, [inc]), Stage("B", 1, [picky], task_attempts=1)]
    run(Pipeline(stages, status_tracker=tracker).run(range(10)))
    assert (tracker.get_stats()["completed"], tracker.get_stats()["failed"]) == (8, 2)
    assert sum(tracker.get_stats().values()) == 10
    assert [tracker.get_status(i) is not None for i in range(10)] == [False] * 7 + [True] * 3
    assert tracker.get_history(0) == []
    assert len(tracker.get_history(9)) == 6  # kept whole: queued … completed in A and B


def test_async_callback_that_raises_is_disabled(caplog: pytest.LogCaptureFixture) -> None:
    calls = Recorder()

    async def bad(event: TaskEvent) -> None:
        calls(event.event_type.value)
        raise RuntimeError("oops")

    tracker = StatusTracker(on_task_start=bad)
    with caplog.at_level("ERROR", logger="flowweaver"):
        results = run(Pipeline([Stage("S", 1, [inc])], status_tracker=tracker).run([1, 2]))
    assert [r.value for r in results] == [2, 3]
    assert calls.items == ["start"]
    assert [r.getMessage() for r in caplog.records] == [
        "status tracker callback on_task_start raised; it is disabled for the rest of this run"
    ]
    # A new run gives it another chance.
    run(Pipeline([Stage("S", 1, [inc])], status_tracker=tracker).run([1]))
    assert calls.items == ["start", "start"]


def test_tracker_arguments_are_validated() -> None:
    with pytest.raises(ConfigurationError) as bad_callback:
        StatusTracker(on_status_change="print")  # type: ignore[arg-type]
    assert str(bad_callback.value) == (
        "StatusTracker: on_status_change must be callable or None, got 'print'"
    )
    with pytest.raises(ConfigurationError) as bad_history:
        StatusTracker(max_history=0)
    assert str(bad_history.value) == "StatusTracker: max_history must be an int >= 1, got 0"
    with pytest.raises(ConfigurationError) as bad_limits:
        StatusTracker(task_concurrency_limits={"api": 0})
    assert str(bad_limits.value) == (
        "StatusTracker: task_concurrency_limits must map task names to ints >= 1, got {'api': 0}"
    )


def test_status_event_worker_id() -> None:
    def event(worker: str | None) -> StatusEvent:
        return StatusEvent(1, "S", ItemStatus.QUEUED, worker, 0.0)

    assert [event(w).worker_id for w in ("ProcessBatch-W5", "Fetch-W0", None, "odd")] == [
        5, 0, None, None,
    ]  # fmt: skip


def test_histories_are_the_same_whether_or_not_anyone_listens() -> None:
    # Without on_status_change the workers record through the tracker's one-call path, and
    # "completed here, queued there" as one pair when the put does not wait; a listener gets
    # every change one at a time. Both must leave the same histories and counts — including
    # items that wait for room in B's one-slot queue, fail in C, or are skipped.
    async def picky(x: int) -> int:
        if x % 5 == 0:
            raise ValueError("five")
        return x

    def tracked(tracker: StatusTracker) -> dict[int, list[tuple[Any, ...]]]:
        stages = [
            Stage("A", 3, [inc]),
            Stage("B", 1, [inc], queue_capacity=1),
            Stage("C", 2, [picky], task_attempts=1, skip_if=lambda x: x == 7),
        ]
        run(Pipeline(stages, status_tracker=tracker).run(range(30)))
        return {
            i: [(e.stage, e.status, e.worker, dict(e.metadata)) for e in tracker.get_history(i)]
            for i in range(30)
        }

    heard: list[StatusEvent] = []
    quiet, listened = StatusTracker(), StatusTracker(on_status_change=heard.append)
    histories = tracked(quiet)
    assert histories == tracked(listened)
    assert quiet.get_stats() == listened.get_stats() == {
        "queued": 0, "in_progress": 0, "completed": 23, "failed": 6, "retrying": 0, "skipped": 1,
    }  # fmt: skip
    assert sorted(e.item_id for e in heard) == sorted(i for i, h in histories.items() for _ in h)
    assert [(stage, status) for stage, status, _, _ in histories[1]] == [
        ("A", "queued"), ("A", "in_progress"), ("A", "completed"),
        ("B", "queued"), ("B", "in_progress"), ("B", "completed"),
        ("C", "queued"), ("C", "in_progress"), ("C", "completed"),
    ]  # fmt: skip
    worker = histories[1][1][2]  # the worker that ran it in A
    assert worker is not None and histories[1][2][2] == worker
    assert all(a.timestamp <= b.timestamp for a, b in itertools.pairwise(quiet.get_history(9)))


def test_ids_fed_twice_are_tracked_the_same_whether_or_not_anyone_listens() -> None:
    # The quiet path finds an item's history by id. Duplicates share one; with a bounded
    # history one may be forgotten while the other is in flight, which then starts anew (and
    # counts anew, as documented): the same as the one-change path, change for change.
    def tracked(tracker: StatusTracker) -> tuple[dict[str, int], list[Any], list[Any]]:
        items = [{"id": k % 3, "value": k} for k in range(12)]
        stages = [Stage("A", 4, [inc]), Stage("B", 4, [inc])]
        results = run(Pipeline(stages, status_tracker=tracker).run(items))
        assert sorted(r.value for r in results) == [k + 2 for k in range(12)]
        ids = tracker.get_tracked_ids()
        histories = [[(e.stage, e.status) for e in tracker.get_history(i)] for i in ids]
        return tracker.get_stats(), ids, histories

    for bound, completed in ((None, 3), (1, 12)):
        quiet = tracked(StatusTracker(max_history=bound))
        assert quiet == tracked(StatusTracker(max_history=bound, on_status_change=lambda _: None))
        assert quiet[0]["completed"] == sum(quiet[0].values()) == completed


def test_a_quiet_tracker_logs_changes_and_builds_histories_when_asked() -> None:
    # With nobody listening and no bound, the workers append each change to one flat log (no
    # object per item); a query folds it in first, in order, mid-run as well as after.
    tracker = StatusTracker()
    totals: list[int] = []

    async def peek(x: int) -> int:
        stats = tracker.get_stats()  # folds what the workers logged so far
        assert stats["in_progress"] >= 1  # this very item, in B
        totals.append(sum(stats.values()))
        return x

    run(
        Pipeline([Stage("A", 2, [inc]), Stage("B", 2, [peek])], status_tracker=tracker).run(
            range(20)
        )
    )
    assert len(totals) == 20 and all(1 <= total <= 20 for total in totals)
    assert tracker.get_stats()["completed"] == 20
    assert [(e.stage, e.status) for e in tracker.get_history(3)][-2:] == [
        ("B", "in_progress"), ("B", "completed"),
    ]  # fmt: skip

    quiet = StatusTracker()
    run(Pipeline([Stage("A", 2, [inc]), Stage("B", 2, [inc])], status_tracker=quiet).run(range(20)))
    # one log of five changes per item, nothing per item, and nothing indexed until asked
    assert not quiet._history and len(quiet._log) == 3 * 20 * 5 and quiet._folded == 0
    assert quiet.get_stats()["completed"] == 20 and quiet._folded == 20 * 5
    assert len(quiet._latest) == 20 and not quiet._history
    assert len(quiet.get_tracked_ids()) == 20
