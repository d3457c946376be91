"""AntFlow 0.10's pipeline features: validation, pull stages, call limits, task status, on_skip,
stream(buffer_size)."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowweaver import (
    ConfigurationError,
    Pipeline,
    PipelineError,
    Stage,
    StageValidationError,
    StatusTracker,
    ThreadedExecutor,
    WorkerStatus,
    call_rate_has_capacity,
    concurrency_limit,
    get_worker_state,
    rate_limit,
    set_task_status,
)

from .conftest import FakeClock, run, settle


async def ident(x: Any) -> Any:
    return x


# --- validation ----------------------------------------------------------------------------


def test_an_invalid_stage_can_be_built_and_fails_validation() -> None:
    stage = Stage("S", workers=0, tasks=[ident])
    with pytest.raises(StageValidationError) as info:
        stage.validate()
    assert str(info.value) == (
        "stage 'S': workers must be an int >= 1, got 0 (a stage must have at least 1 worker)"
    )
    assert isinstance(info.value, PipelineError) and isinstance(info.value, ValueError)
    with pytest.raises(PipelineError, match="must have at least 1 worker"):
        Pipeline([stage])
    with pytest.raises(StageValidationError):
        stage.plan  # noqa: B018


@pytest.mark.parametrize(
    ("fields", "phrase"),
    [
        ({"tasks": []}, "must have at least one task"),
        ({"task_attempts": 0}, "task_attempts must be at least 1"),
        ({"stage_attempts": 0}, "stage_attempts must be at least 1"),
        ({"task_concurrency_limits": {"nope": 1}}, "references unknown task(s)"),
        (
            {"pull": True, "retry": "per_stage"},
            "pull=True is not compatible with retry='per_stage'",
        ),
        ({"pull": "yes"}, "pull must be a bool, got 'yes'"),
        ({"call_concurrency": 0}, "call_concurrency must be an int >= 1 or None, got 0"),
        ({"call_rate": -5}, "call_rate must be a finite number > 0 or None, got -5"),
        ({"call_rate_period": 0}, "call_rate_period must be a finite number > 0, got 0"),
        ({"on_skip": 1}, "on_skip must be callable or None, got 1"),
    ],
)
def test_antflow_phrasing_is_in_the_messages(fields: dict[str, Any], phrase: str) -> None:
    stage = Stage(**{"name": "S", "workers": 1, "tasks": [ident], **fields})
    with pytest.raises(StageValidationError) as info:
        stage.validate()
    assert phrase in str(info.value)
    assert str(info.value).startswith("stage 'S': ")


def test_the_first_stage_cannot_be_a_pull_stage() -> None:
    with pytest.raises(PipelineError) as info:
        Pipeline([Stage("A", 1, [ident], pull=True)])
    assert str(info.value) == (
        "stage 'A': the first stage cannot be a pull stage (nothing upstream hands items to it)"
    )
    assert isinstance(info.value, StageValidationError)


def test_feeding_an_unknown_stage_says_not_found() -> None:
    async def main() -> None:
        pipeline = Pipeline([Stage("A", 1, [ident])])
        with pytest.raises(ValueError, match="not found") as info:
            await pipeline.feed([1], target_stage="B")
        assert str(info.value) == "target_stage 'B' not found in pipeline: its stages are ['A']"

    run(main())


# --- pull stages -----------------------------------------------------------------------------


def _inside(pipeline: Pipeline, stage: str) -> int:
    stats = pipeline.get_stats().stage_stats[stage]
    return stats.pending_items + stats.in_progress_items


def test_a_pull_stage_takes_items_only_when_a_worker_is_free() -> None:
    """Upstream workers hold their items until a pull worker is free; with a queue instead,
    the items would wait in the middle stage's queue."""
    gate = asyncio.Event()
    seen: list[int] = []

    async def slow(x: int) -> int:
        await gate.wait()
        return x

    async def main() -> tuple[list[int], int, int]:
        pipeline = Pipeline(
            [
                Stage("Up", 4, [ident]),
                Stage("Pull", 2, [slow], pull=True),
                Stage("Down", 1, [ident]),
            ]
        )
        await pipeline.start()
        await pipeline.feed(range(10))
        await settle()
        inside = _inside(pipeline, "Pull")
        held = pipeline.get_stats().stage_stats["Up"].in_progress_items
        gate.set()
        await pipeline.join()
        seen.extend(sorted(r.value for r in pipeline.results))
        return seen, inside, held

    seen, inside, held = run(main())
    assert seen == list(range(10))
    assert inside == 2  # its two workers, nothing queued
    assert held == 4  # every upstream worker waits with its item in hand


@settings(max_examples=25, deadline=None)
@given(
    up=st.integers(1, 4),
    workers=st.integers(1, 4),
    down=st.integers(1, 3),
    n=st.integers(0, 30),
    fail=st.sets(st.integers(0, 29)),
)
def test_pull_stage_items_end_once_and_never_exceed_workers(
    up: int, workers: int, down: int, n: int, fail: set[int]
) -> None:
    peak = 0
    pipeline: Pipeline | None = None

    twice: list[tuple[int, int]] = []

    async def check(x: int) -> int:
        nonlocal peak
        assert pipeline is not None
        peak = max(peak, _inside(pipeline, "Pull"))
        stats = pipeline.get_stats()
        counted = sum(s.pending_items + s.in_progress_items for s in stats.stage_stats.values())
        if counted > stats.items_in_flight:  # an item seen in two places at once
            twice.append((counted, stats.items_in_flight))
        await asyncio.sleep(0)
        if x in fail:
            raise ValueError(x)
        return x

    async def main() -> list[int]:
        nonlocal pipeline
        pipeline = Pipeline(
            [
                Stage("Up", up, [check], task_attempts=1),
                Stage("Pull", workers, [check], pull=True, task_attempts=2, task_wait_seconds=0),
                Stage("Down", down, [check], task_attempts=1),
            ],
            clock=FakeClock(),
        )
        results = await asyncio.wait_for(pipeline.run(range(n)), 30)
        summary = pipeline.get_error_summary()
        ids = [r.id for r in results] + [f.item_id for f in summary.failed_items]
        assert sorted(ids) == list(range(n))  # every item ends exactly once
        assert summary.total_failed == len(fail & set(range(n)))
        assert pipeline.get_stats().items_in_flight == 0
        return ids

    run(main())
    assert peak <= workers
    assert twice == []


def test_shutdown_and_join_release_idle_pull_workers() -> None:
    gate = asyncio.Event()

    async def blocked(x: int) -> int:
        await gate.wait()
        return x

    async def main() -> None:
        # join with nothing fed: idle pull workers wake up and end
        idle = Pipeline([Stage("A", 1, [ident]), Stage("P", 3, [ident], pull=True)])
        await idle.start()
        await asyncio.wait_for(idle.join(), 10)
        # shutdown with upstream workers waiting to hand off: every item is recorded once
        busy = Pipeline([Stage("A", 2, [ident]), Stage("P", 1, [blocked], pull=True)])
        await busy.start()
        await busy.feed(range(6))  # all accepted: A's queue has room for them
        await settle()
        # P's worker holds one item; both A workers wait, items in hand, to hand theirs off
        assert busy.get_stats().stage_stats["A"].in_progress_items == 2
        assert _inside(busy, "P") == 1
        await asyncio.wait_for(busy.shutdown(), 10)
        summary = busy.get_error_summary()
        assert sorted(f.item_id for f in summary.failed_items) == list(range(6))  # each once
        assert summary.errors_by_stage == {"A": 5, "P": 1}  # the held ones are still A's
        assert busy.get_stats().items_in_flight == 0

    run(main())


# --- call limits and in-task helpers -----------------------------------------------------------


def test_concurrency_limit_holds_a_slot_only_around_the_block() -> None:
    both = threading.Barrier(6, timeout=10)
    inside = 0
    peak = 0

    async def poll(x: int) -> int:
        nonlocal inside, peak
        await asyncio.sleep(0)  # all six workers run at once outside the block
        async with concurrency_limit():
            inside += 1
            peak = max(peak, inside)
            await asyncio.sleep(0)
            inside -= 1
        return x

    def poll_sync(x: int) -> int:
        nonlocal inside, peak
        both.wait()  # six threads at once: the stage's workers are not limited
        with concurrency_limit():
            inside += 1
            peak = max(peak, inside)
            inside -= 1
        return x

    async def main() -> tuple[list[int], list[int]]:
        a = Pipeline([Stage("Poll", 6, [poll], call_concurrency=2)])
        b = Pipeline([Stage("Poll", 6, [poll_sync], call_concurrency=1)])
        ra = [r.value for r in await a.run(range(30))]
        rb = [r.value for r in await asyncio.wait_for(b.run(range(6)), 20)]
        return ra, rb

    ra, rb = run(main())
    assert ra == list(range(30)) and rb == list(range(6))
    assert peak <= 2


def test_rate_limit_follows_the_window_on_the_pipeline_clock() -> None:
    clock = FakeClock()
    starts: list[float] = []
    peeks: list[bool] = []

    async def call(x: int) -> int:
        peeks.append(call_rate_has_capacity())
        async with rate_limit():
            starts.append(clock.now())
        return x

    async def main() -> None:
        pipeline = Pipeline(
            [Stage("Api", 4, [call], call_rate=3, call_rate_period=2.0)], clock=clock
        )
        await pipeline.run(range(10))

    run(main())
    assert starts == [0.0] * 3 + [2.0] * 3 + [4.0] * 3 + [6.0]
    assert True in peeks and False in peeks


def test_limit_helpers_without_a_limit() -> None:
    messages: list[str] = []

    async def call(x: int) -> bool:
        for helper in (concurrency_limit, rate_limit):
            try:
                helper()
            except PipelineError as error:
                messages.append(str(error))
        return call_rate_has_capacity(5)

    async def main() -> list[bool]:
        return [r.value for r in await Pipeline([Stage("S", 1, [call])]).run([1])]

    assert run(main()) == [True]
    assert messages == [
        "concurrency_limit() called but no call_concurrency is configured on stage 'S'; "
        "set call_concurrency=N on the Stage to use concurrency_limit()",
        "rate_limit() called but no call_rate is configured on stage 'S'; "
        "set call_rate=N on the Stage to use rate_limit()",
    ]
    with pytest.raises(PipelineError, match=r"^concurrency_limit\(\) works inside a pipeline"):
        concurrency_limit()
    assert isinstance(PipelineError("x"), RuntimeError)
    assert call_rate_has_capacity() is True


# --- set_task_status / get_worker_state ------------------------------------------------------


@pytest.mark.parametrize("kind", ["async", "sync", "sync on a ThreadedExecutor"])
def test_task_status_shows_in_worker_states_and_snapshots(kind: str) -> None:
    ready = threading.Event()
    release = threading.Event()
    states: list[Any] = []

    async def task_async(x: int) -> int:
        assert set_task_status(f"polling batch {x}")
        states.append(get_worker_state())
        ready.set()
        assert await asyncio.to_thread(release.wait, 10)
        return x

    def task_sync(x: int) -> int:
        assert set_task_status(f"polling batch {x}")
        states.append(get_worker_state())
        ready.set()
        assert release.wait(10)
        return x

    async def main() -> None:
        task = task_async if kind == "async" else task_sync
        executor = ThreadedExecutor(max_workers=2) if "Threaded" in kind else None
        pipeline = Pipeline([Stage("Poll", 1, [task])], executor=executor)
        running = asyncio.ensure_future(pipeline.run([7]))
        assert await asyncio.to_thread(ready.wait, 10)
        state = pipeline.get_worker_states()["Poll-W0"]
        assert (state.status, state.current_task, state.current_item_id) == (
            WorkerStatus.BUSY,
            "polling batch 7",
            0,
        )
        snapshot = pipeline.get_dashboard_snapshot()
        assert snapshot.worker_states["Poll-W0"].current_task == "polling batch 7"
        release.set()
        await asyncio.wait_for(running, 10)
        assert pipeline.get_worker_states()["Poll-W0"].current_task is None

    run(main())
    assert states[0].worker_name == "Poll-W0" and states[0].current_task == "polling batch 7"


def test_task_status_min_interval_and_outside_a_stage() -> None:
    clock = FakeClock()
    answers: list[bool] = []

    async def chatty(x: int) -> int:
        answers.append(set_task_status("a", min_interval=1.0))
        answers.append(set_task_status("b", min_interval=1.0))  # too soon
        clock.t += 1.0
        answers.append(set_task_status("c", min_interval=1.0))
        return x

    async def main() -> None:
        await Pipeline([Stage("S", 1, [chatty])], clock=clock).run([1, 2])

    run(main())
    assert answers == [True, False, True] * 2  # a new item starts a fresh interval
    assert set_task_status("nobody listens") is False
    assert get_worker_state() is None


# --- on_skip -------------------------------------------------------------------------------------


def test_on_skip_hears_skipped_items_sync_or_async(caplog: pytest.LogCaptureFixture) -> None:
    heard: list[tuple[Any, Any, dict[str, Any]]] = []

    async def on_skip_async(item_id: Any, value: Any, meta: dict[str, Any]) -> None:
        heard.append((item_id, value, meta))

    def broken(item_id: Any, value: Any, meta: dict[str, Any]) -> None:
        raise RuntimeError("callback bug")

    async def main() -> tuple[list[Any], list[Any]]:
        a = Pipeline([Stage("S", 1, [ident], skip_if=lambda v: v % 2, on_skip=on_skip_async)])
        b = Pipeline([Stage("S", 1, [ident], skip_if=lambda v: True, on_skip=broken)])
        with caplog.at_level(logging.ERROR, logger="flowweaver"):
            rb = await b.run([1, 2])
        return [r.value for r in await a.run(range(5))], [r.value for r in rb]

    ra, rb = run(main())
    assert ra == [0, 1, 2, 3, 4] and rb == [1, 2]  # skipped items pass through unchanged
    assert [(i, v) for i, v, _ in heard] == [(1, 1), (3, 3)]
    assert "on_skip" in caplog.text and "callback bug" in caplog.text


# --- stream(buffer_size) -------------------------------------------------------------------------


@pytest.mark.parametrize("buffer_size", [0, 2])
def test_stream_buffer_size_pushes_back_on_a_slow_consumer(buffer_size: int) -> None:
    calls: list[int] = []

    async def work(x: int) -> int:
        calls.append(x)
        return x

    async def main() -> list[int]:
        pipeline = Pipeline([Stage("S", 1, [work])])
        out = []
        stream = pipeline.stream(range(20), buffer_size=buffer_size)
        async for result in stream:
            out.append(result.value)
            if len(out) == 1:
                await settle()
                # taken: 1; waiting for the consumer: buffer_size; the worker holds one more
                assert len(calls) <= 1 + buffer_size + 1
        return out

    assert run(main()) == list(range(20))


def test_stream_buffer_size_is_validated() -> None:
    async def main() -> None:
        pipeline = Pipeline([Stage("S", 1, [ident])])
        with pytest.raises(ConfigurationError) as info:
            async for _ in pipeline.stream([1], buffer_size=-1):
                pass
        assert str(info.value) == "stream(): buffer_size must be an int >= 0 or None, got -1"

    run(main())


# --- tracker queries ---------------------------------------------------------------------------


def test_tracker_queries_and_error_summaries_agree() -> None:
    async def picky(x: int) -> int:
        if x % 3 == 0:
            raise KeyError(x)
        if x == 4:
            raise ValueError(x)
        return x

    tracker = StatusTracker()

    async def main() -> Pipeline:
        pipeline = Pipeline(
            [Stage("A", 2, [ident]), Stage("B", 2, [picky], task_attempts=1)],
            status_tracker=tracker,
        )
        await pipeline.run(range(8))
        return pipeline

    pipeline = run(main())
    assert tracker.get_tracked_ids() == list(range(8))
    failed = tracker.get_failed_items()
    assert [f.item_id for f in failed] == [0, 3, 4, 6]
    assert [f.error_type for f in failed] == ["KeyError", "KeyError", "ValueError", "KeyError"]
    assert all(f.stage == "B" and f.attempts == 1 for f in failed)
    assert isinstance(failed[0].error, KeyError)
    ours, theirs = pipeline.get_error_summary(), tracker.get_error_summary()
    assert isinstance(ours.failed_items, list) and isinstance(theirs.failed_items, list)
    assert (theirs.total_failed, dict(theirs.errors_by_type), dict(theirs.errors_by_stage)) == (
        4,
        {"KeyError": 3, "ValueError": 1},
        {"B": 4},
    )
    assert (ours.total_failed, dict(ours.errors_by_type), dict(ours.errors_by_stage)) == (
        theirs.total_failed,
        dict(theirs.errors_by_type),
        dict(theirs.errors_by_stage),
    )
    assert sorted(f.item_id for f in ours.failed_items) == [0, 3, 4, 6]
    snapshot = pipeline.get_dashboard_snapshot()
    assert snapshot.error_summary.total_failed == 4
    assert [f.item_id for f in snapshot.error_summary.failed_items] == [
        f.item_id for f in snapshot.recent_failures
    ]


def test_a_refed_item_is_no_longer_failed_in_the_tracker() -> None:
    attempts: dict[int, int] = {}

    async def once(x: int) -> int:
        attempts[x] = attempts.get(x, 0) + 1
        if attempts[x] == 1:
            raise OSError(x)
        return x

    tracker = StatusTracker(max_history=1)

    async def main() -> None:
        pipeline = Pipeline([Stage("A", 1, [once], task_attempts=1)], status_tracker=tracker)
        await pipeline.run([5])
        assert [f.item_id for f in tracker.get_failed_items()] == [0]
        await pipeline.run([5])  # the same id again: completed now
        assert tracker.get_failed_items() == []

    run(main())
