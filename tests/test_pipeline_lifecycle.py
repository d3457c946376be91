"""How a pipeline run ends: join, shutdown, cancellation, Ctrl-C, stream(), async with.

The rule under test everywhere: every item fed ends exactly once, as a result or as a recorded
failure; nothing hangs; nothing is left running.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
from typing import TYPE_CHECKING, Any

import pytest

from flowweaver import (
    ItemCancelledError,
    Pipeline,
    PipelineError,
    PipelineResult,
    Stage,
    StatusTracker,
    _pipeline_run,
)

from .conftest import WAIT, Recorder, run, settle

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator


def others() -> set[asyncio.Task[Any]]:
    """Tasks on the loop besides the current one (none should be left by a pipeline)."""
    return asyncio.all_tasks() - {asyncio.current_task()}  # type: ignore[operator,unused-ignore]


async def inc(x: int) -> int:
    return x + 1


def accounted(pipeline: Pipeline, fed: int) -> tuple[int, int]:
    stats = pipeline.get_stats()
    summary = pipeline.get_error_summary()
    assert stats.items_processed + stats.items_failed == fed
    assert stats.items_in_flight == 0
    ids = [f.item_id for f in summary.failed_items]
    assert len(ids) == len(set(ids)) == summary.total_failed
    per_stage = {name: s.failed_items for name, s in stats.stage_stats.items() if s.failed_items}
    assert per_stage == dict(summary.errors_by_stage)
    assert {s.status for s in pipeline.get_worker_states().values()} == {"idle"}
    return stats.items_processed, stats.items_failed


class Forever:
    """An async task that never finishes on its own and records being cancelled."""

    def __init__(self) -> None:
        self.started = Recorder()
        self.cancelled = Recorder()

    async def __call__(self, x: int) -> int:
        self.started(x)
        try:
            await asyncio.sleep(WAIT * 100)
        except asyncio.CancelledError:
            self.cancelled(x)
            raise
        return x


# -- idle ------------------------------------------------------------------------------------


def test_an_idle_pipeline_has_nothing_scheduled() -> None:
    # Workers wait on futures, not on timeouts: an idle loop has no timer and nothing ready.
    async def main() -> None:
        pipeline = Pipeline([Stage("A", 5, [inc]), Stage("B", 5, [inc])])
        await pipeline.start()
        await pipeline.feed([1, 2])
        await settle()
        loop = asyncio.get_running_loop()
        assert not loop._ready  # type: ignore[attr-defined]
        assert not loop._scheduled  # type: ignore[attr-defined]
        assert len(others()) == 10  # the workers, all waiting
        await pipeline.join()
        assert others() == set()

    asyncio.run(main())  # no run(): its deadline would be a timer (pytest-timeout guards this)


# -- shutdown -------------------------------------------------------------------------------


def test_shutdown_never_hangs_with_full_downstream_queues() -> None:
    blocked = Forever()
    pipeline = Pipeline([Stage("A", 3, [inc]), Stage("B", 1, [blocked], queue_capacity=1)])

    async def main() -> None:
        await pipeline.start()
        feeding = asyncio.ensure_future(pipeline.feed(range(100)))
        await settle()  # B runs one, B's queue is full, A's workers wait for room, A is full
        assert not feeding.done()
        await pipeline.shutdown()
        with pytest.raises(PipelineError) as stopped:
            await feeding
        assert str(stopped.value).startswith("the pipeline was shut down while feeding stage 'A': ")
        assert others() == set()
        await pipeline.shutdown()  # idempotent

    run(main())
    assert blocked.cancelled.items == [1]
    # Every item the feeder took from range(100) ended: 3 waiting for room in B, A's queue of
    # 30 and the one the feeder held waiting for room in A; B's 2.
    processed, failed = accounted(pipeline, 3 + 30 + 1 + 2)
    assert processed == 0
    errors = pipeline.get_error_summary()
    assert dict(errors.errors_by_type) == {"ItemCancelledError": failed}
    assert dict(errors.errors_by_stage) == {"A": 3 + 30 + 1, "B": 2}
    assert pipeline.get_stats().items_in_flight == 0


def test_shutdown_reports_cancelled_items_everywhere() -> None:
    blocked = Forever()
    failures = Recorder()

    def on_failure(item_id: Any, error: BaseException, meta: Any) -> None:
        failures(item_id, type(error).__name__)

    tracker = StatusTracker()
    stage = Stage("S", 1, [blocked], on_failure=on_failure)
    pipeline = Pipeline([stage], status_tracker=tracker)

    async def main() -> None:
        await pipeline.feed([1, 2, 3])
        await settle()
        await pipeline.shutdown()

    run(main())
    assert sorted(failures.items) == [  # type: ignore[type-var]
        (0, "ItemCancelledError"),
        (1, "ItemCancelledError"),
        (2, "ItemCancelledError"),
    ]
    assert tracker.get_stats()["failed"] == 3
    (first, *_) = pipeline.get_error_summary().failed_items
    assert str(first.error) == (
        "item 0 was cancelled in stage 'S': the pipeline stopped before it finished"
    )


def test_items_a_shutdown_cancels_count_as_failures_of_their_stage_and_worker() -> None:
    blocked = Forever()
    pipeline = Pipeline([Stage("S", 2, [blocked])])

    async def main() -> None:
        await pipeline.feed(range(5))
        await settle()  # two running, three queued
        await pipeline.shutdown()

    run(main())
    assert accounted(pipeline, 5) == (0, 5)  # the stage's failed count agrees too
    assert pipeline.get_stats().stage_stats["S"].failed_items == 5
    metrics = pipeline.get_worker_metrics()
    assert (metrics["S-W0"].items_failed, metrics["S-W1"].items_failed) == (1, 1)


def test_an_item_passed_on_is_the_next_stages_even_while_a_callback_hears_of_it() -> None:
    # A's worker waits in the tracker's callback for "queued in B" while B already runs the
    # item: a shutdown then must record it in B, not in A (where it succeeded).
    blocked = Forever()

    async def on_status_change(event: Any) -> None:
        if (event.stage, event.status) == ("B", "queued"):
            await asyncio.Event().wait()  # until the shutdown cancels A's worker

    tracker = StatusTracker(on_status_change=on_status_change)
    pipeline = Pipeline([Stage("A", 1, [inc]), Stage("B", 1, [blocked])], status_tracker=tracker)

    async def main() -> None:
        await pipeline.feed([1])
        await settle()
        assert blocked.started.items == [2]
        await pipeline.shutdown()

    run(main())
    assert accounted(pipeline, 1) == (0, 1)
    [failure] = pipeline.get_error_summary().failed_items
    assert (failure.stage, type(failure.error)) == ("B", ItemCancelledError)
    stages = pipeline.get_stats().stage_stats
    assert (stages["A"].completed_items, stages["A"].failed_items) == (1, 0)
    metrics = pipeline.get_worker_metrics()
    assert (metrics["A-W0"].items_failed, metrics["B-W0"].items_failed) == (0, 1)


def test_a_cancelled_item_counts_the_attempts_it_had_started() -> None:
    calls = Recorder()
    blocked = Forever()

    async def second_try_hangs(x: int) -> int:
        calls(x)
        if calls.count(x) == 1:
            raise OSError("down")
        return await blocked(x)

    stage = Stage("S", 1, [second_try_hangs], task_attempts=3, task_wait_seconds=0)
    pipeline = Pipeline([stage])

    async def main() -> None:
        await pipeline.feed([1, 2])
        await settle()
        assert blocked.started.items == [1]  # its second attempt; the other item is queued
        await pipeline.shutdown()

    run(main())
    assert accounted(pipeline, 2) == (0, 2)
    failures = pipeline.get_error_summary().failed_items
    assert sorted((f.item_id, f.attempts) for f in failures) == [(0, 2), (1, 0)]


def test_per_stage_retry_timers_are_cancelled_and_their_items_recorded() -> None:
    from .conftest import FakeClock

    class NeverClock(FakeClock):
        async def sleep_async(self, seconds: float) -> None:
            await asyncio.sleep(WAIT * 100)

    async def broken(x: int) -> int:
        raise OSError("down")

    from flowweaver import RetryPolicy

    policy = RetryPolicy(retries=3, delay=5.0, jitter=0.0)
    stage = Stage("S", 1, [broken], retry="per_stage", retry_policy=policy)
    pipeline = Pipeline([stage], clock=NeverClock())

    async def main() -> None:
        await pipeline.feed([1, 2])
        await settle()  # both failed once and wait for their retry
        assert pipeline.get_stats().items_in_flight == 2
        await pipeline.shutdown()
        assert others() == set()

    run(main())
    assert accounted(pipeline, 2) == (0, 2)
    # Each had made one attempt of the stage before the shutdown caught it waiting.
    assert [f.attempts for f in pipeline.get_error_summary().failed_items] == [1, 1]


def test_a_join_in_progress_ends_quietly_when_another_task_shuts_down() -> None:
    blocked = Forever()
    pipeline = Pipeline([Stage("S", 2, [blocked])])

    async def main() -> None:
        await pipeline.feed([1, 2, 3])
        joining = asyncio.ensure_future(pipeline.join())
        await settle()
        await pipeline.shutdown()
        await joining  # no CancelledError: the shutdown settled the run
        assert others() == set()

    run(main())
    assert accounted(pipeline, 3) == (0, 3)


def test_shutdown_abandons_a_task_that_ignores_cancellation(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(_pipeline_run, "_GRACE", 0.01)
    release: list[asyncio.Event] = []

    async def stubborn(x: int) -> int:
        while True:
            try:
                await release[0].wait()
                return x
            except asyncio.CancelledError:
                continue  # ignores every cancellation

    pipeline = Pipeline([Stage("S", 1, [stubborn])])

    async def main() -> None:
        release.append(asyncio.Event())
        await pipeline.feed([1])
        await settle()
        with caplog.at_level("WARNING", logger="flowweaver"):
            await pipeline.shutdown()
        assert accounted(pipeline, 1) == (0, 1)
        release[0].set()  # let the abandoned call end; its result is discarded
        await settle()
        assert accounted(pipeline, 1) == (0, 1)

    run(main())
    assert caplog.records[0].getMessage() == (
        "1 pipeline worker(s) ignored cancellation for 0.0 s; abandoning them"
    )


# -- cancellation ------------------------------------------------------------------------------


def test_cancelling_run_cancels_tasks_in_flight_and_records_every_item() -> None:
    blocked = Forever()
    pipeline = Pipeline([Stage("A", 4, [inc]), Stage("B", 2, [blocked])])

    async def main() -> None:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(pipeline.run(range(50)), timeout=0.05)
        assert others() == set()

    run(main())
    assert sorted(blocked.cancelled.items) == sorted(blocked.started.items) == [1, 2]  # type: ignore[type-var]
    assert accounted(pipeline, 50) == (0, 50)


def test_cancelling_run_abandons_sync_calls_in_threads() -> None:
    gate = threading.Event()
    started = threading.Event()

    def stuck(x: int) -> int:
        started.set()
        gate.wait(WAIT)
        return x

    pipeline = Pipeline([Stage("S", 1, [stuck])])

    async def main() -> None:
        running = asyncio.ensure_future(pipeline.run(range(3)))
        await asyncio.to_thread(started.wait, WAIT)
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running
        assert others() == set()

    try:
        run(main())
    finally:
        gate.set()
    assert accounted(pipeline, 3) == (0, 3)


def test_cancelling_join_shuts_the_pipeline_down() -> None:
    blocked = Forever()
    pipeline = Pipeline([Stage("S", 1, [blocked])])

    async def main() -> None:
        await pipeline.feed([1, 2])
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(pipeline.join(), 0.01)
        assert others() == set()

    run(main())
    assert accounted(pipeline, 2) == (0, 2)


def test_ctrl_c_stops_the_run_and_propagates() -> None:
    def ctrl_c(x: int) -> int:
        if x == 3:
            os.kill(os.getpid(), signal.SIGINT)  # a real Ctrl-C, from a worker thread
        return x

    blocked = Forever()
    pipeline = Pipeline([Stage("A", 1, [ctrl_c]), Stage("B", 1, [blocked])])
    with pytest.raises(KeyboardInterrupt):
        asyncio.run(pipeline.run(range(10)))
    assert accounted(pipeline, 10) == (0, 10)


def test_a_worker_survives_a_failure_of_our_own(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    original = _pipeline_run.PipelineRun.complete
    broke: list[bool] = []

    def complete_once_broken(self: Any, item: Any) -> Any:
        if not broke:
            broke.append(True)
            raise AssertionError("a bug")
        return original(self, item)

    monkeypatch.setattr(_pipeline_run.PipelineRun, "complete", complete_once_broken)
    pipeline = Pipeline([Stage("S", 1, [inc])])
    with caplog.at_level("ERROR", logger="flowweaver"):
        results = run(pipeline.run([1, 2, 3]))
    assert [r.value for r in results] == [3, 4]  # the worker carried on
    assert [f.item_id for f in pipeline.get_error_summary().failed_items] == [0]
    assert pipeline.get_stats().stage_stats["S"].failed_items == 1
    assert pipeline.get_worker_metrics()["S-W0"].items_failed == 1
    assert (
        caplog.records[0].getMessage() == "pipeline worker S-W0 failed unexpectedly; it carries on"
    )


# -- stream() --------------------------------------------------------------------------------


def test_stream_yields_in_completion_order_including_failures() -> None:
    gates: dict[int, asyncio.Event] = {}

    async def wait_for_gate(x: int) -> int:
        await gates[x].wait()
        if x == 1:
            raise ValueError("one is bad")
        return x

    pipeline = Pipeline([Stage("S", 3, [wait_for_gate], task_attempts=1)])

    async def main() -> list[tuple[int, Any, str | None]]:
        for i in range(3):
            gates[i] = asyncio.Event()
        seen = []
        stream = pipeline.stream(range(3))
        for i in (2, 0, 1):  # open the gates in this order: results follow it
            gates[i].set()
            result = await anext(stream)
            seen.append(
                (result.id, result.value, type(result.error).__name__ if result.error else None)
            )
        with pytest.raises(StopAsyncIteration):
            await anext(stream)
        return seen

    assert run(main()) == [(2, 2, None), (0, 0, None), (1, 1, "ValueError")]
    assert pipeline.results == []  # stream() keeps nothing
    failed = pipeline.get_error_summary().failed_items
    assert [(f.item_id, f.stage) for f in failed] == [(1, "S")]


def test_stream_yields_while_items_are_still_being_fed() -> None:
    produced = Recorder()
    consumed: list[asyncio.Event] = []

    async def source() -> AsyncIterator[int]:
        for i in range(3):
            if i:  # the next item exists only after the previous result was received
                await consumed[i - 1].wait()
            produced(i)
            yield i

    async def main() -> list[int]:
        consumed.extend(asyncio.Event() for _ in range(3))
        values = []
        async for result in Pipeline([Stage("S", 1, [inc])]).stream(source()):
            values.append(result.value)
            consumed[result.id].set()
        return values

    assert run(main()) == [1, 2, 3]
    assert produced.items == [0, 1, 2]


def test_breaking_out_of_stream_stops_the_pipeline_cleanly() -> None:
    blocked = Forever()

    async def fast_then_stuck(x: int) -> int:
        if x >= 5:
            return await blocked(x)
        return x

    pipeline = Pipeline([Stage("S", 3, [fast_then_stuck])])

    async def main() -> list[int]:
        seen = []
        async with contextlib.aclosing(pipeline.stream(range(1000))) as stream:
            async for result in stream:
                seen.append(result.value)
                if len(seen) == 5:
                    break
        assert others() == set()
        return seen

    assert sorted(run(main())) == [0, 1, 2, 3, 4]
    processed, failed = accounted(pipeline, pipeline.get_stats().items_failed + 5)
    assert processed == 5 and failed > 0
    assert {type(f.error) for f in pipeline.get_error_summary().failed_items} == {
        ItemCancelledError
    }


def test_breaking_out_of_stream_without_aclosing_also_stops_it() -> None:
    pipeline = Pipeline([Stage("S", 2, [inc])])

    async def main() -> None:
        async for _ in pipeline.stream(range(100)):
            break
        await settle()  # the generator is closed by the loop once it is garbage
        assert others() == set()

    run(main())
    accounted(pipeline, pipeline.get_stats().items_processed + pipeline.get_stats().items_failed)


def test_stream_raises_what_stopped_the_feeding() -> None:
    def items() -> Iterator[int]:
        yield 1
        raise LookupError("source broke")

    async def main() -> list[PipelineResult]:
        return [r async for r in Pipeline([Stage("S", 1, [inc])]).stream(items())]

    with pytest.raises(LookupError, match="source broke"):
        run(main())


# -- async with ----------------------------------------------------------------------------------


def test_async_with_joins_on_a_clean_exit() -> None:
    async def main() -> list[PipelineResult]:
        async with Pipeline([Stage("S", 2, [inc])]) as pipeline:
            await pipeline.feed([1, 2, 3])
        return pipeline.results

    assert [r.value for r in run(main())] == [2, 3, 4]


def test_async_with_shuts_down_on_an_error() -> None:
    blocked = Forever()
    pipeline = Pipeline([Stage("S", 2, [blocked])])

    async def body() -> None:
        async with pipeline:
            await pipeline.feed([1, 2, 3])
            await settle()
            1 / 0  # noqa: B018

    async def main() -> None:
        with pytest.raises(ZeroDivisionError):
            await body()
        assert others() == set()

    run(main())
    assert accounted(pipeline, 3) == (0, 3)
    assert sorted(blocked.cancelled.items) == [1, 2]  # type: ignore[type-var]


def test_cancelling_a_stream_consumer_stops_the_pipeline() -> None:
    blocked = Forever()
    pipeline = Pipeline([Stage("S", 2, [blocked])])

    async def consume() -> None:
        async for _ in pipeline.stream(range(10)):
            pass

    async def main() -> None:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(consume(), 0.01)
        assert others() == set()

    run(main())
    assert accounted(pipeline, 10) == (0, 10)
    assert sorted(blocked.cancelled.items) == [0, 1]  # type: ignore[type-var]


def test_abort_after_join_finished_the_run_returns_at_once() -> None:
    # Two tasks join; the first, once joined, cancels the second before it resumes: the
    # second's join() then aborts a run that join() has already finished.
    pipeline = Pipeline([Stage("S", 1, [inc])])

    async def main() -> None:
        await pipeline.feed([1, 2])
        tasks: list[asyncio.Future[None]] = []

        async def first() -> None:
            await pipeline.join()
            tasks[1].cancel()

        tasks.append(asyncio.ensure_future(first()))
        tasks.append(asyncio.ensure_future(pipeline.join()))
        await tasks[0]
        # Awaited through wait(): a hang must fail the test, not be mistaken for the
        # cancellation that run()'s deadline delivers.
        done, _ = await asyncio.wait([tasks[1]], timeout=WAIT / 2)
        assert done == {tasks[1]} and tasks[1].cancelled()
        assert others() == set()

    run(main())
    assert accounted(pipeline, 2) == (2, 0)


def test_a_second_shutdown_waits_for_the_first_to_settle_every_item() -> None:
    blocked = Forever()
    pipeline = Pipeline([Stage("S", 1, [blocked])])

    async def main() -> None:
        await pipeline.feed([1, 2, 3])
        await settle()
        first = asyncio.ensure_future(pipeline.shutdown())
        await asyncio.sleep(0)  # the first shutdown is under way: it waits for the worker
        await pipeline.shutdown()
        assert accounted(pipeline, 3) == (0, 3)  # settled when the second one returns
        await first

    run(main())
