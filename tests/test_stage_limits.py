"""``Stage(limits=[...])``: shared limiters taken by every call of a stage's tasks."""

from __future__ import annotations

import asyncio
import threading

import pytest

from flowweaver import Limiter, Pipeline, Stage, StageValidationError, Task, Workflow

from .conftest import FakeClock, run


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
