"""The Pipeline's rules: order, ids, retries, limits, backpressure, executors, results."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import threading
from typing import Any

import pytest

from flowweaver import (
    AsyncExecutor,
    ConfigurationError,
    DetailedDashboard,
    ItemCancelledError,
    Pipeline,
    PipelineError,
    PipelineResult,
    RetryPolicy,
    SequentialExecutor,
    Stage,
    StageValidationError,
    StatusTracker,
    TaskTimeoutError,
    _stage_plain,
    _stage_run,
)
from flowweaver._pipeline_types import EMPTY, success

from .conftest import WAIT, FakeClock, Recorder, run, settle


async def double(x: int) -> int:
    return 2 * x


async def inc(x: int) -> int:
    return x + 1


def accounted(pipeline: Pipeline, fed: int) -> None:
    """Every item fed ended exactly once: as a result or as a recorded failure."""
    stats = pipeline.get_stats()
    summary = pipeline.get_error_summary()
    assert stats.items_processed + stats.items_failed == fed
    assert stats.items_in_flight == 0
    assert summary.total_failed == stats.items_failed == len(summary.failed_items)
    failed = [f.item_id for f in summary.failed_items]
    assert len(set(failed)) == len(failed)
    per_stage = {name: s.failed_items for name, s in stats.stage_stats.items() if s.failed_items}
    assert per_stage == dict(summary.errors_by_stage)


# -- results, ids, order -------------------------------------------------------------------


def test_results_come_in_input_order_with_input_indexes_as_ids() -> None:
    async def slow_first(x: int) -> int:
        await asyncio.sleep(0.001 * (20 - x))  # early items finish last
        return x

    pipeline = Pipeline([Stage("A", 20, [slow_first]), Stage("B", 7, [double])])
    results = run(pipeline.run(range(20)))
    assert [(r.id, r.sequence_id, r.value) for r in results] == [(i, i, 2 * i) for i in range(20)]
    assert pipeline.results == results
    assert all(r.is_success and not r.is_failure for r in results)


def test_dict_items_keep_their_id_value_and_metadata() -> None:
    pipeline = Pipeline([Stage("S", 2, [lambda v: v])])
    results = run(
        pipeline.run(
            [
                {"id": "a", "value": 1, "source": "db"},
                {"id": "b", "other": 2},  # no "value": the whole dict is the value
                {"no_id": 3},  # no "id": a plain value
            ]
        )
    )
    assert [(r.id, r.value, dict(r.metadata)) for r in results] == [
        ("a", 1, {"source": "db"}),
        ("b", {"id": "b", "other": 2}, {"other": 2}),
        (2, {"no_id": 3}, {}),
    ]


def test_repeated_runs_do_not_mix_results_or_counts() -> None:
    pipeline = Pipeline([Stage("S", 3, [double])])
    first = run(pipeline.run([1, 2, 3]))
    second = run(pipeline.run([10, 20]))
    assert [r.value for r in first] == [2, 4, 6]
    assert [(r.id, r.value) for r in second] == [(0, 20), (1, 40)]
    assert [r.value for r in pipeline.results] == [20, 40]
    assert pipeline.get_stats().items_processed == 2
    assert sum(m.items_processed for m in pipeline.get_worker_metrics().values()) == 2


def test_collect_results_false_keeps_nothing() -> None:
    pipeline = Pipeline([Stage("S", 1, [double])], collect_results=False)
    assert run(pipeline.run([1, 2])) == []
    assert pipeline.results == []
    assert pipeline.get_stats().items_processed == 2


def test_failures_are_recorded_not_returned() -> None:
    failures = Recorder()

    async def picky(x: int) -> int:
        if x % 3 == 0:
            raise ValueError(f"no {x}")
        return x

    def on_failure(item_id: Any, error: BaseException, meta: dict[str, Any]) -> None:
        failures(item_id, str(error), meta["stage"], meta["sequence_id"])

    pipeline = Pipeline([Stage("Pick", 2, [picky], task_attempts=1, on_failure=on_failure)])
    results = run(pipeline.run(range(7)))
    assert [r.value for r in results] == [1, 2, 4, 5]
    summary = pipeline.get_error_summary()
    assert summary.total_failed == 3
    assert dict(summary.errors_by_type) == {"ValueError": 3}
    assert dict(summary.errors_by_stage) == {"Pick": 3}
    assert [(f.item_id, f.stage, str(f.error), f.attempts) for f in summary.failed_items] == [
        (0, "Pick", "no 0", 1), (3, "Pick", "no 3", 1), (6, "Pick", "no 6", 1),
    ]  # fmt: skip
    assert str(summary) == "3 failed (ValueError: 3)"
    assert sorted(failures.items) == [  # type: ignore[type-var]
        (0, "no 0", "Pick", 0),
        (3, "no 3", "Pick", 3),
        (6, "no 6", "Pick", 6),
    ]
    accounted(pipeline, 7)


# -- retries --------------------------------------------------------------------------------


def test_per_task_retry_waits_task_wait_seconds_through_the_clock() -> None:
    clock = FakeClock()
    calls = Recorder()

    async def flaky(x: int) -> int:
        calls(x)
        if calls.count(x) < 3:
            raise ConnectionError("later")
        return x

    stage = Stage("S", 1, [flaky], task_attempts=3, task_wait_seconds=1.5)
    results = run(Pipeline([stage], clock=clock).run([7]))
    assert [r.value for r in results] == [7]
    assert calls.items == [7, 7, 7]
    assert clock.sleeps == [1.5, 1.5]


def test_per_task_retry_gives_up_after_task_attempts() -> None:
    clock = FakeClock()

    async def broken(x: int) -> int:
        raise OSError("down")

    pipeline = Pipeline(
        [Stage("S", 1, [broken], task_attempts=4, task_wait_seconds=0.5)], clock=clock
    )
    assert run(pipeline.run([1])) == []
    (failure,) = pipeline.get_error_summary().failed_items
    assert (failure.attempts, type(failure.error), clock.sleeps) == (4, OSError, [0.5, 0.5, 0.5])


def test_retry_policy_gives_exponential_backoff() -> None:
    clock = FakeClock()

    async def broken(x: int) -> int:
        raise OSError("down")

    policy = RetryPolicy(retries=3, delay=1.0, backoff=2.0, jitter=0.0)
    run(Pipeline([Stage("S", 1, [broken], retry_policy=policy)], clock=clock).run([1]))
    assert clock.sleeps == [1.0, 2.0, 4.0]


def test_retry_policy_retry_on_limits_what_is_retried() -> None:
    calls = Recorder()

    async def broken(x: int) -> int:
        calls(x)
        raise KeyError(x)

    policy = RetryPolicy(retries=3, delay=0.0, retry_on=(OSError,))
    pipeline = Pipeline([Stage("S", 1, [broken], retry_policy=policy)], clock=FakeClock())
    run(pipeline.run([1]))
    assert calls.items == [1]
    assert pipeline.get_error_summary().failed_items[0].attempts == 1


def test_per_stage_retry_reruns_the_whole_task_list() -> None:
    calls = Recorder()
    events: list[Any] = []

    async def begin(x: int) -> int:
        calls("begin", x)
        return x

    async def update(x: int) -> int:
        calls("update", x)
        if calls.count(("update", x)) == 1:
            raise RuntimeError("conflict")
        return x + 100

    async def commit(x: int) -> int:
        calls("commit", x)
        return x

    tracker = StatusTracker(on_status_change=events.append)
    stage = Stage("Tx", 1, [begin, update, commit], retry="per_stage", stage_attempts=3)
    pipeline = Pipeline([stage], status_tracker=tracker)
    results = run(pipeline.run([1]))
    assert [r.value for r in results] == [101]
    (metrics,) = pipeline.get_worker_metrics().values()
    assert (metrics.items_processed, metrics.items_failed) == (1, 0)  # a retry is no failure
    assert calls.items == [
        ("begin", 1), ("update", 1), ("begin", 1), ("update", 1), ("commit", 101),
    ]  # fmt: skip
    retry = [e for e in events if e.status == "retrying"]
    assert [(e.metadata["attempt"], e.metadata["retry"], e.metadata["error"]) for e in retry] == [
        (2, True, "conflict")
    ]


def test_per_stage_retry_gives_up_after_stage_attempts() -> None:
    calls = Recorder()

    async def broken(x: int) -> int:
        calls(x)
        raise RuntimeError("always")

    pipeline = Pipeline([Stage("Tx", 2, [broken], retry="per_stage", stage_attempts=3)])
    assert run(pipeline.run([1, 2])) == []
    assert sorted(calls.items) == [1, 1, 1, 2, 2, 2]  # type: ignore[type-var]
    assert [f.attempts for f in pipeline.get_error_summary().failed_items] == [3, 3]
    accounted(pipeline, 2)


def test_per_stage_retry_into_a_full_queue_does_not_deadlock() -> None:
    # AntFlow puts the retried item back with a waiting put: with every worker doing that into
    # its own full queue, nobody is left to make room.
    seen = Recorder()

    async def fails_once(x: int) -> int:
        seen(x)
        if seen.count(x) == 1:
            raise RuntimeError("once")
        return x

    stage = Stage("S", 2, [fails_once], retry="per_stage", queue_capacity=2)
    results = run(Pipeline([stage]).run(range(20)))
    assert [r.value for r in results] == list(range(20))


def test_per_stage_retry_can_wait_between_attempts() -> None:
    clock = FakeClock()
    calls = Recorder()

    async def fails_twice(x: int) -> int:
        calls(x)
        if calls.count(x) < 3:
            raise RuntimeError("busy")
        return x

    policy = RetryPolicy(retries=2, delay=0.25, backoff=2.0, jitter=0.0)
    stage = Stage("S", 1, [fails_twice], retry="per_stage", retry_policy=policy)
    assert [r.value for r in run(Pipeline([stage], clock=clock).run([5]))] == [5]
    assert clock.sleeps == [0.25, 0.5]


def test_running_builds_no_retry_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    # Policies are made once per stage, when it is defined (AntFlow wraps every task call).
    stages = [
        Stage("A", 2, [inc, inc], task_attempts=3, task_wait_seconds=0.0),
        Stage("B", 2, [inc], retry="per_stage"),
    ]
    built = Recorder()
    original = RetryPolicy.__post_init__
    monkeypatch.setattr(RetryPolicy, "__post_init__", lambda self: (built(1), original(self)))  # type: ignore[func-returns-value]
    calls = Recorder()

    async def flaky(x: int) -> int:
        calls(x)
        if calls.count(x) == 1:
            raise OSError
        return x

    stages.append(Stage("C", 2, [flaky], task_wait_seconds=0.0))
    built.items.clear()
    assert len(run(Pipeline(stages).run(range(50)))) == 50
    assert built.items == []


# -- concurrency limits -------------------------------------------------------------------


def test_task_concurrency_limit_caps_one_task_not_the_stage() -> None:
    running = {"upload": 0}
    peak = {"upload": 0}
    barrier: list[asyncio.Barrier] = []

    async def prepare(x: int) -> int:
        # Passes only when all four workers are preparing at the same time.
        await barrier[0].wait()
        return x

    async def upload(x: int) -> int:
        running["upload"] += 1
        peak["upload"] = max(peak["upload"], running["upload"])
        await asyncio.sleep(0)
        running["upload"] -= 1
        return x

    stage = Stage("Batch", 4, [prepare, upload], task_concurrency_limits={"upload": 1})

    async def main() -> list[PipelineResult]:
        barrier.append(asyncio.Barrier(4))
        return await Pipeline([stage]).run(range(8))

    assert len(run(main())) == 8
    assert peak == {"upload": 1}


def test_a_limited_task_releases_its_permit_while_waiting_to_retry() -> None:
    gate = asyncio.Event
    waits: list[asyncio.Event] = []

    class GateClock(FakeClock):
        async def sleep_async(self, seconds: float) -> None:
            waits.append(gate())
            await waits[-1].wait()

    order = Recorder()

    async def api(x: int) -> int:
        order(x)
        if x == 0 and order.count(0) == 1:
            raise ConnectionError("flaky")
        return x

    stage = Stage("S", 2, [api], task_concurrency_limits={"api": 1}, task_wait_seconds=1.0)
    pipeline = Pipeline([stage], clock=GateClock())

    async def main() -> list[PipelineResult]:
        running = asyncio.ensure_future(pipeline.run([0, 1]))
        await settle()
        assert order.items == [0, 1]  # item 1 used the permit while item 0 waits to retry
        waits[0].set()
        return await running

    assert [r.value for r in run(main())] == [0, 1]


def test_tracker_limits_are_shared_across_stages() -> None:
    running = [0]
    peak = [0]

    async def api(x: int) -> int:
        running[0] += 1
        peak[0] = max(peak[0], running[0])
        await asyncio.sleep(0)
        running[0] -= 1
        return x

    tracker = StatusTracker(task_concurrency_limits={"api": 1})
    pipeline = Pipeline([Stage("A", 3, [api]), Stage("B", 3, [api])], status_tracker=tracker)
    assert len(run(pipeline.run(range(10)))) == 10
    assert peak == [1]


# -- backpressure, feeding, priorities ------------------------------------------------------------


def test_queues_are_bounded_and_feeding_waits_for_room() -> None:
    gate: list[asyncio.Event] = []

    async def blocked(x: int) -> int:
        await gate[0].wait()
        return x

    pipeline = Pipeline([Stage("S", 1, [blocked], queue_capacity=2)])

    async def main() -> None:
        gate.append(asyncio.Event())
        await pipeline.start()
        feeding = asyncio.ensure_future(pipeline.feed(range(10)))
        await settle()
        stats = pipeline.get_stats()
        assert not feeding.done()
        # 2 queued, 1 running, and 1 the feeder took and holds until there is room: in flight.
        assert (stats.queue_sizes["S"], stats.items_in_flight) == (2, 4)
        gate[0].set()
        await feeding
        await pipeline.join()

    run(main())
    assert [r.value for r in pipeline.results] == list(range(10))


def test_default_queue_capacity_is_ten_per_worker() -> None:
    assert Stage("S", 3, [inc]).plan.capacity == 30
    assert Stage("S", 3, [inc], queue_capacity=0).plan.capacity is None  # opt-in unbounded


def test_a_full_downstream_stage_holds_its_upstream_workers() -> None:
    gate: list[asyncio.Event] = []

    async def blocked(x: int) -> int:
        await gate[0].wait()
        return x

    pipeline = Pipeline([Stage("A", 2, [inc]), Stage("B", 1, [blocked], queue_capacity=1)])

    async def main() -> None:
        gate.append(asyncio.Event())
        running = asyncio.ensure_future(pipeline.run(range(10)))
        await settle()
        states = pipeline.get_worker_states()
        stats = pipeline.get_stats()
        # B-W0 runs one, B's queue holds one, both A workers hold one waiting for room.
        assert [states[n].status for n in ("A-W0", "A-W1", "B-W0")] == ["busy"] * 3
        assert stats.queue_sizes == {"A": 6, "B": 1}
        assert stats.items_in_flight == 10
        gate[0].set()
        await running

    run(main())
    assert [r.value for r in pipeline.results] == list(range(1, 11))


def test_feed_before_start_does_not_deadlock() -> None:
    pipeline = Pipeline([Stage("S", 1, [double], queue_capacity=1)])

    async def main() -> None:
        await pipeline.feed(range(25))  # far more than the queue holds
        await pipeline.start()  # confirms the workers feed() started
        await pipeline.join()

    run(main())
    assert [r.value for r in pipeline.results] == [2 * i for i in range(25)]


def test_start_twice_and_run_while_running_are_refused() -> None:
    pipeline = Pipeline([Stage("S", 1, [double])])

    async def main() -> None:
        await pipeline.start()
        with pytest.raises(PipelineError) as twice:
            await pipeline.start()
        with pytest.raises(PipelineError) as busy:
            await pipeline.run([1])
        await pipeline.join()
        assert (
            str(twice.value)
            == str(busy.value)
            == ("the pipeline is already running; join() or shutdown() it first")
        )
        assert [r.value for r in await pipeline.run([4])] == [8]

    run(main())


def test_lower_priority_numbers_are_taken_first() -> None:
    order = Recorder()
    gate: list[asyncio.Event] = []

    async def record(x: str) -> str:
        await gate[0].wait()
        order(x)
        return x

    pipeline = Pipeline([Stage("S", 1, [record], queue_capacity=0)])

    async def main() -> None:
        gate.append(asyncio.Event())
        await pipeline.start()
        await pipeline.feed(["first"])  # taken at once: the worker waits on the gate with it
        await settle()
        await pipeline.feed(["late-1", "late-2"], priority=100)
        await pipeline.feed(["urgent-1", "urgent-2"], priority=1)
        gate[0].set()
        await pipeline.join()

    run(main())
    assert order.items == ["first", "urgent-1", "urgent-2", "late-1", "late-2"]


def test_items_can_enter_at_a_target_stage() -> None:
    pipeline = Pipeline(
        [Stage("Fetch", 1, [lambda x: f"fetched {x}"]), Stage("Save", 1, [str.upper])]
    )

    async def main() -> None:
        await pipeline.start()
        await pipeline.feed(["a"])
        await pipeline.feed(["resumed"], target_stage="Save")
        with pytest.raises(ConfigurationError) as unknown:
            await pipeline.feed(["x"], target_stage="Nope")
        await pipeline.join()
        assert str(unknown.value) == (
            "target_stage 'Nope' not found in pipeline: its stages are ['Fetch', 'Save']"
        )
        assert isinstance(unknown.value, ValueError)

    run(main())
    assert [(r.id, r.value) for r in pipeline.results] == [(0, "FETCHED A"), (1, "RESUMED")]


# -- where calls run ---------------------------------------------------------------------------


def test_sync_tasks_run_on_the_given_executor(executor: Any) -> None:
    threads = Recorder()

    def blocking(x: int) -> int:
        threads(threading.get_ident())
        return x * 3

    async def main() -> list[PipelineResult]:
        threads("loop")
        threads(threading.get_ident())
        return await Pipeline([Stage("S", 2, [blocking, inc])], executor=executor).run(range(6))

    results = run(main())
    assert [r.value for r in results] == [3 * i + 1 for i in range(6)]
    loop_thread = threads.items[1]
    inline = [t == loop_thread for t in threads.items[2:]]
    if isinstance(executor, SequentialExecutor):
        assert all(inline)  # the debugging mode: inline, on the loop's thread
    else:
        assert not any(inline)


def test_sync_tasks_default_to_daemon_threads_made_for_the_run() -> None:
    seen: list[tuple[str, bool]] = []  # list.append is atomic: safe from the threads

    def blocking(x: int) -> int:
        thread = threading.current_thread()
        seen.append((thread.name, thread.daemon))
        return x

    run(Pipeline([Stage("S", 3, [blocking])]).run(range(5)))
    assert len(seen) == 5
    assert all(name.startswith("flowweaver-pipeline-") and daemon for name, daemon in seen)


def test_a_sync_task_returning_a_coroutine_is_awaited() -> None:
    async def fetch(x: int) -> str:
        await asyncio.sleep(0)
        return f"page {x}"

    results = run(Pipeline([Stage("S", 2, [lambda x: fetch(x)])]).run([1, 2]))
    assert [r.value for r in results] == ["page 1", "page 2"]


def test_async_executor_can_run_the_sync_tasks() -> None:
    def blocking(x: int) -> int:
        return x + 1

    async def main() -> list[PipelineResult]:
        async with AsyncExecutor(max_workers=2) as executor:
            return await Pipeline([Stage("S", 2, [blocking])], executor=executor).run([1, 2])

    assert [r.value for r in run(main())] == [2, 3]


def test_unpack_args_spreads_tuples_and_dicts() -> None:
    async def add(a: int, b: int) -> int:
        return a + b

    async def greet(name: str, greeting: str = "Hello") -> str:
        return f"{greeting}, {name}!"

    async def identity(x: Any) -> Any:
        return x

    pipeline = Pipeline([Stage("Add", 1, [add], unpack_args=True)])
    assert [r.value for r in run(pipeline.run([(1, 2), [3, 4]]))] == [3, 7]
    greeter = Pipeline([Stage("Greet", 1, [greet], unpack_args=True)])
    items = [
        {"id": 1, "value": {"name": "Alice"}},
        {"id": 2, "value": {"name": "Bob", "greeting": "Hi"}},
    ]
    assert [r.value for r in run(greeter.run(items))] == ["Hello, Alice!", "Hi, Bob!"]
    scalar = Pipeline([Stage("Id", 1, [identity], unpack_args=True)])
    assert [r.value for r in run(scalar.run([1, "test"]))] == [1, "test"]


def test_task_timeout_fails_the_attempt_and_is_retried() -> None:
    calls = Recorder()

    async def slow_once(x: int) -> int:
        calls(x)
        if calls.count(x) == 1:
            await asyncio.sleep(WAIT * 10)  # cancelled by the timeout
        return x

    stage = Stage("S", 1, [slow_once], task_timeout=0.01, task_attempts=2)
    results = run(Pipeline([stage], clock=FakeClock()).run([4]))
    assert [r.value for r in results] == [4]
    assert calls.items == [4, 4]

    async def always_slow(x: int) -> int:
        await asyncio.sleep(WAIT * 10)
        return x

    pipeline = Pipeline([Stage("S", 1, [always_slow], task_timeout=0.01, task_attempts=1)])
    run(pipeline.run([1]))
    (failure,) = pipeline.get_error_summary().failed_items
    assert isinstance(failure.error, TaskTimeoutError)
    assert str(failure.error) == "task 'always_slow' timed out after 0.01 s"


def test_a_timed_out_sync_task_is_abandoned() -> None:
    gate = threading.Event()

    def stuck(x: int) -> int:
        gate.wait(WAIT)
        return x

    pipeline = Pipeline([Stage("S", 1, [stuck], task_timeout=0.01, task_attempts=1)])
    try:
        assert run(pipeline.run([1])) == []
    finally:
        gate.set()
    assert isinstance(pipeline.get_error_summary().failed_items[0].error, TaskTimeoutError)


# -- skip_if -------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_skip_if_passes_items_through_unchanged(kind: str) -> None:
    def done(x: str) -> bool:
        return x.endswith("_processed")

    async def done_async(x: str) -> bool:
        return done(x)

    async def add_suffix(text: str) -> str:
        return text + "_processed"

    tracker = StatusTracker()
    predicate = done if kind == "sync" else done_async
    stage = Stage("Transform", 1, [add_suffix], skip_if=predicate)
    results = run(Pipeline([stage], status_tracker=tracker).run(["raw", "data_processed"]))
    assert [r.value for r in results] == ["raw_processed", "data_processed"]
    assert [e.status for e in tracker.get_history(1)] == ["queued", "skipped"]
    assert [e.status for e in tracker.get_history(0)] == ["queued", "in_progress", "completed"]


def test_a_raising_skip_if_fails_the_item() -> None:
    def predicate(x: int) -> bool:
        if x == 1:
            raise LookupError("cannot tell")
        return False

    pipeline = Pipeline([Stage("S", 1, [inc], skip_if=predicate)])
    assert [r.value for r in run(pipeline.run([0, 1, 2]))] == [1, 3]
    (failure,) = pipeline.get_error_summary().failed_items
    assert (failure.item_id, str(failure.error), failure.attempts) == (1, "cannot tell", 0)


# -- workers survive anything a task does ----------------------------------------------------


def test_task_errors_and_cancelled_errors_never_kill_a_worker() -> None:
    async def nasty(x: int) -> int:
        if x == 0:
            raise asyncio.CancelledError  # raised by the task itself, not by the pipeline
        if x == 1:
            raise SystemError("weird")
        return x

    pipeline = Pipeline([Stage("S", 1, [nasty], task_attempts=2)], clock=FakeClock())
    results = run(pipeline.run(range(5)))
    assert [r.value for r in results] == [2, 3, 4]  # the one worker went on
    errors = {f.item_id: type(f.error) for f in pipeline.get_error_summary().failed_items}
    assert errors == {0: asyncio.CancelledError, 1: SystemError}
    # CancelledError is not an Exception: the default retry_on does not retry it.
    attempts = {f.item_id: f.attempts for f in pipeline.get_error_summary().failed_items}
    assert attempts == {0: 1, 1: 2}


def test_raising_callbacks_are_logged_disabled_and_never_fail_items(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls = Recorder()

    def on_success(item_id: Any, value: Any, meta: Any) -> None:
        calls("success", item_id)
        raise RuntimeError("callback bug")

    async def on_status_change(event: Any) -> None:
        calls("status")
        raise RuntimeError("tracker bug")

    tracker = StatusTracker(on_status_change=on_status_change)
    stage = Stage("S", 1, [double], on_success=on_success)
    with caplog.at_level("ERROR", logger="flowweaver"):
        results = run(Pipeline([stage], status_tracker=tracker).run([1, 2, 3]))
    assert [r.value for r in results] == [2, 4, 6]
    assert calls.items == ["status", ("success", 0)]  # each was called once, then disabled
    assert sorted(r.getMessage() for r in caplog.records) == [
        "on_success of stage 'S' raised; it is disabled for the rest of this run",
        "status tracker callback on_status_change raised; it is disabled for the rest of this run",
    ]
    assert tracker.get_stats()["completed"] == 3  # the tracker still records everything


def test_callbacks_may_be_async_and_get_metadata() -> None:
    seen: list[Any] = []

    async def on_success(item_id: Any, value: Any, meta: dict[str, Any]) -> None:
        await asyncio.sleep(0)
        seen.append((item_id, value, meta))

    stage = Stage("S", 1, [double], on_success=on_success)
    run(Pipeline([stage]).run([{"id": "x", "value": 4, "tag": "t"}]))
    assert seen == [("x", 8, {"tag": "t", "id": "x", "value": 8, "sequence_id": 0, "stage": "S"})]


# -- observation -------------------------------------------------------------------------------


def test_worker_states_and_metrics() -> None:
    gate: list[asyncio.Event] = []

    async def wait(x: int) -> int:
        await gate[0].wait()
        return x

    pipeline = Pipeline([Stage("S", 2, [inc, wait])])
    before = pipeline.get_worker_states()
    assert [(s.worker_name, s.status, s.current_item_id) for s in before.values()] == [
        ("S-W0", "idle", None), ("S-W1", "idle", None),
    ]  # fmt: skip
    assert [m.items_processed for m in pipeline.get_worker_metrics().values()] == [0, 0]

    async def main() -> None:
        gate.append(asyncio.Event())
        running = asyncio.ensure_future(pipeline.run([10, 20, 30]))
        await settle()
        states = pipeline.get_worker_states()
        assert [(s.status, s.current_item_id, s.current_task) for s in states.values()] == [
            ("busy", 0, "wait"), ("busy", 1, "wait"),
        ]  # fmt: skip
        assert all(s.processing_since is not None for s in states.values())
        snapshot = pipeline.get_dashboard_snapshot()
        assert snapshot.pipeline_stats.stage_stats["S"].in_progress_items == 2
        assert snapshot.pipeline_stats.stage_stats["S"].pending_items == 1
        gate[0].set()
        await running

    run(main())
    metrics = pipeline.get_worker_metrics()
    assert sum(m.items_processed for m in metrics.values()) == 3
    assert all(
        m.avg_processing_time > 0 and m.last_active for m in metrics.values() if m.items_processed
    )
    assert {s.status for s in pipeline.get_worker_states().values()} == {"idle"}


def test_time_per_item_is_time_on_successful_items_per_success(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The workers' clock is driven by the tasks: a success takes 1 s, a failure 100 s (in
    # both worker loops: the plain stage's, and the general one with on_success).
    now = [0.0]
    monkeypatch.setattr(_stage_run, "perf_counter", lambda: now[0])
    monkeypatch.setattr(_stage_plain, "perf_counter", lambda: now[0])

    async def work(x: int) -> int:
        now[0] += 100.0 if x else 1.0
        if x:
            raise ValueError("bad")
        return x

    for on_success in (None, lambda *_: None):
        now[0] = 0.0
        pipeline = Pipeline([Stage("S", 1, [work], task_attempts=1, on_success=on_success)])
        run(pipeline.run([0, 1, 0]))
        metrics = pipeline.get_worker_metrics()["S-W0"]
        assert (metrics.items_processed, metrics.items_failed) == (2, 1)
        assert (metrics.total_processing_time, metrics.avg_processing_time) == (2.0, 1.0)
    board = DetailedDashboard(io.StringIO(), use_rich=False)
    board.on_start(pipeline, 3)
    assert board.render(pipeline.get_dashboard_snapshot()).splitlines()[-1].split() == [
        "S", "0/1", "0", "2", "1", "1.000", "s",
    ]  # fmt: skip


def test_quick_and_the_builder() -> None:
    calls = Recorder()

    async def flaky(x: int) -> int:
        calls(x)
        if calls.count(x) <= 2:
            raise ValueError("flaky")
        return x * 2

    async def main() -> None:
        quick = await Pipeline.quick(list(range(5)), [double, inc], workers=2)
        assert [r.value for r in quick] == [1, 3, 5, 7, 9]
        built = await Pipeline.create().add("Double", double, workers=2).add("Inc", inc).run([1, 2])
        assert [r.value for r in built] == [3, 5]
        pipeline = Pipeline.create().add("S", double).collect_results(False).build()
        assert (pipeline.collect_results, [s.name for s in pipeline.stages]) == (False, ["S"])
        same = await Pipeline.quick([1], [inc, inc, lambda x: x, lambda x: x])
        assert [r.value for r in same] == [3]

    run(main())


def test_quick_retries_mean_retries_after_the_first_attempt(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import flowweaver._pipeline

    monkeypatch.setattr(flowweaver._pipeline, "SystemClock", FakeClock)
    calls = Recorder()

    async def flaky(x: int) -> int:
        calls(x)
        if calls.count(x) <= 2:
            raise ValueError("flaky")
        return x * 2

    assert [r.value for r in run(Pipeline.quick([1], flaky, workers=1, retries=2))] == [2]
    calls.items.clear()
    assert run(Pipeline.quick([1], flaky, workers=1, retries=1)) == []


# -- definition errors ------------------------------------------------------------------------


def test_pipeline_definition_errors() -> None:
    with pytest.raises(PipelineError) as empty:
        Pipeline([])
    assert str(empty.value) == "a pipeline needs at least one stage, got none"
    with pytest.raises(StageValidationError) as duplicate:
        Pipeline([Stage("Fetch", 1, [inc]), Stage("Fetch", 2, [inc])])
    assert str(duplicate.value) == (
        "duplicate stage name 'Fetch': stage names must be unique in a pipeline"
    )
    assert (duplicate.value.stage, duplicate.value.field) == ("Fetch", "name")
    assert isinstance(duplicate.value, ValueError)
    with pytest.raises(StageValidationError) as not_a_stage:
        Pipeline([Stage("A", 1, [inc]), "B"])  # type: ignore[list-item]
    assert str(not_a_stage.value) == "stages[1] must be a Stage, got 'B'"
    with pytest.raises(ConfigurationError) as tracker:
        Pipeline([Stage("A", 1, [inc])], status_tracker="t")  # type: ignore[arg-type]
    assert str(tracker.value) == "status_tracker must be a StatusTracker or None, got 't'"
    with pytest.raises(ConfigurationError) as executor:
        Pipeline([Stage("A", 1, [inc])], executor=object)  # type: ignore[arg-type]
    assert str(executor.value).startswith("executor must have a submit() method, got ")


def test_feed_refuses_a_bad_priority() -> None:
    pipeline = Pipeline([Stage("A", 1, [inc])])
    with pytest.raises(ConfigurationError) as bad:
        run(pipeline.feed([1], priority="high"))  # type: ignore[arg-type]
    assert str(bad.value) == "priority must be an int, got 'high'"


def test_item_cancelled_error_names_the_item_and_stage() -> None:
    error = ItemCancelledError(7, "Save")
    assert (
        str(error)
        == "item 7 was cancelled in stage 'Save': the pipeline stopped before it finished"
    )
    assert (error.item_id, error.stage) == (7, "Save")
    assert isinstance(error, PipelineError) and isinstance(error, RuntimeError)


def _square(x: int) -> int:  # module level: it must pickle to reach a worker process
    return x * x


def test_sync_tasks_can_run_in_worker_processes() -> None:
    import concurrent.futures as cf

    with cf.ProcessPoolExecutor(2) as processes:
        pipeline = Pipeline(
            [Stage("Square", 2, [_square]), Stage("Inc", 2, [inc])], executor=processes
        )
        assert [r.value for r in run(pipeline.run(range(6)))] == [i * i + 1 for i in range(6)]


def test_results_made_on_the_fast_path_are_ordinary_results() -> None:
    # The last stage makes its results without the frozen __init__ (_pipeline_types.success):
    # every field must be set, and a result must equal, hash and copy like one made normally.
    made = success("a", 2, 3, EMPTY)
    assert made == PipelineResult("a", 2, 3) and hash(made) == hash(PipelineResult("a", 2, 3))
    assert dataclasses.astuple(made) == ("a", 2, 3, {}, None, None, False)
    assert dataclasses.replace(made, value=5) == PipelineResult("a", 5, 3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.value = 4  # type: ignore[misc]
    (result,) = run(Pipeline([Stage("S", 1, [inc])]).run([{"id": "x", "value": 1, "k": "v"}]))
    assert result == PipelineResult("x", 2, 0, {"k": "v"})
