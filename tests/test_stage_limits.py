"""``Stage(limits=[...])``: shared limiters taken by every call of a stage's tasks."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from flowweaver import (
    Limiter,
    LimiterStatistics,
    Pipeline,
    SequentialExecutor,
    Stage,
    StageValidationError,
    Task,
    Workflow,
)

from .conftest import WAIT, FakeClock, run, settle


def test_a_shared_limiter_bounds_the_calls_of_several_stages_and_workers() -> None:
    api = Limiter(concurrency=2, name="api")
    now = most = 0

    async def call(x: int) -> int:
        nonlocal now, most
        now += 1
        most = max(most, now)
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        now -= 1
        return x

    pipeline = Pipeline([Stage("A", 4, [call], limits=[api]), Stage("B", 4, [call], limits=[api])])
    results = run(pipeline.run(range(20)))
    assert sorted(r.value for r in results) == list(range(20))
    assert most == 2  # four workers a stage, two stages: never more than the limiter's two
    assert api.statistics().granted == 40 and api.statistics().holders == 0


def test_every_attempt_takes_a_token() -> None:
    clock = FakeClock()
    api = Limiter(rate=1, per=10.0, clock=clock)
    calls = 0

    async def flaky(x: int) -> int:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise OSError("once")
        return x

    stage = Stage("S", 1, [flaky], task_wait_seconds=0.0, limits=[api])
    assert [r.value for r in run(Pipeline([stage], clock=clock).run([1]))] == [1]
    assert (api.statistics().granted, clock.t) == (2, 10.0)  # the retry waited for its token


def test_one_limiter_shared_by_a_workflow_and_a_pipeline_at_the_same_time() -> None:
    api = Limiter(concurrency=1, name="api")
    inside = threading.Lock()
    overlaps: list[str] = []

    def hold(who: str) -> None:
        if not inside.acquire(blocking=False):
            overlaps.append(who)
            return
        try:
            for _ in range(200):
                pass
        finally:
            inside.release()

    def workflow_task() -> None:
        for _ in range(20):
            with api:
                hold("workflow")

    def stage_task(x: int) -> int:
        hold("pipeline")
        return x

    wf = Workflow("w")
    wf.add_task(Task(name="t", fn=workflow_task))
    thread = threading.Thread(target=wf.execute)
    thread.start()
    results = run(Pipeline([Stage("S", 3, [stage_task], limits=[api])]).run(range(30)))
    thread.join(10)
    assert not thread.is_alive()
    assert (len(results), overlaps) == (30, [])


@pytest.mark.parametrize("bad", [[1], "api", [Limiter(), None]])
def test_limits_that_are_not_limiters_are_named(bad: object) -> None:
    with pytest.raises(StageValidationError) as caught:
        Stage("S", 1, [abs], limits=bad).validate()  # type: ignore[arg-type]
    shown = tuple(bad) if isinstance(bad, list) else bad
    assert str(caught.value) == f"stage 'S': limits must be a sequence of Limiter, got {shown!r}"


def test_a_sync_call_waiting_for_a_thread_holds_no_permit() -> None:
    """Fewer threads than sync calls (an executor= with one worker): a limited call that
    waits for the thread must not hold the permit another run sharing the limiter needs
    (it would starve it for as long as the thread stays busy)."""
    api = Limiter(concurrency=1, name="api")
    busy_runs, later_waits = threading.Event(), threading.Event()
    seen: list[object] = []

    def busy(x: int) -> int:  # holds the one thread while `later` waits for it
        busy_runs.set()
        assert later_waits.wait(WAIT)
        seen.append(api.has_capacity())  # `later` is not running: the permit is free
        if seen[0]:  # else another run waiting for it would deadlock with `later`
            other = Workflow("other")
            other.add_task(Task(name="m", fn=lambda: "other run", limits=[api]))
            seen.append(SequentialExecutor().execute(other).result("m"))
        return x

    def later(x: int) -> int:
        return x

    async def main() -> list[object]:
        with ThreadPoolExecutor(max_workers=1) as pool:
            pipeline = Pipeline(
                [Stage("free", 1, [busy]), Stage("limited", 1, [later], limits=[api])],
                executor=pool,
            )
            await pipeline.feed([0])
            assert await asyncio.to_thread(busy_runs.wait, WAIT)
            await pipeline.feed([1], target_stage="limited")
            await settle()  # `later` got as far as it can: waiting for the thread
            later_waits.set()
            await pipeline.join()
            return sorted(r.value for r in pipeline.results)

    assert run(main()) == [0, 1]
    assert seen == [True, "other run"]
    # `later` of both items, and the other run's task
    assert api.statistics() == LimiterStatistics(holders=0, waiting=0, granted=3)


@pytest.mark.parametrize("end", ["release", "shutdown"])
def test_a_sync_call_refused_by_one_limiter_holds_none_and_keeps_its_place(end: str) -> None:
    first, second = Limiter(concurrency=1, name="first"), Limiter(concurrency=1, name="second")
    assert second.acquire_nowait()  # someone else holds it

    def call(x: int) -> int:
        return x

    async def main() -> list[object]:
        pipeline = Pipeline([Stage("S", 1, [call], limits=[first, second])])
        await pipeline.feed([7])
        await settle()
        # Waiting for `second` in its queue, holding neither `first` nor a thread.
        assert first.has_capacity() and second.statistics().waiting == 1
        if end == "shutdown":
            await pipeline.shutdown()
            assert second.statistics().waiting == 0  # it left the queue
        else:
            second.release()
            await pipeline.join()
        return [r.value for r in pipeline.results if r.error is None]

    assert run(main()) == ([7] if end == "release" else [])
    assert first.statistics().holders == 0
