"""``Task(limits=...)`` on mapped tasks (each element takes a permit), and on Dask."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from flowweaver import (
    ConfigurationError,
    Limiter,
    LimiterStatistics,
    Task,
    TaskStatus,
    ThreadedExecutor,
    Workflow,
)

from .conftest import HAVE_DASK, WAIT, execute


def spans(x: int) -> tuple[float, float]:
    """An element's call: when it ran (the monotonic clock is one clock for every process)."""
    start = time.monotonic()
    time.sleep(0.01)  # the remote call
    return start, time.monotonic()


def numbers() -> list[int]:
    return list(range(6))


def most_at_once(intervals: list[tuple[float, float]]) -> int:
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    now = most = 0
    for _, step in events:
        now += step
        most = max(most, now)
    return most


def _limited_map(api: Limiter) -> Workflow:
    wf = Workflow("w")
    wf.add_task(Task(name="numbers", fn=numbers))
    wf.add_task(Task(name="spans", fn=spans, limits=[api]).map(), depends_on=["numbers"])
    return wf


def test_each_element_takes_a_permit_on_every_executor(any_executor: Any) -> None:
    api = Limiter(concurrency=2, name="api")
    run = execute(any_executor, _limited_map(api))
    intervals = run.result("spans")
    assert len(intervals) == 6
    assert most_at_once(intervals) <= 2
    assert api.statistics() == LimiterStatistics(holders=0, waiting=0, granted=6)


def test_a_waiting_element_holds_no_worker_and_stays_pending() -> None:
    api = Limiter(concurrency=1, name="api")
    first_in, let_go = threading.Event(), threading.Event()
    seen: dict[str, object] = {}

    def each(x: int) -> int:
        if x == 0:
            first_in.set()
            assert let_go.wait(WAIT)
        return x * 10

    def free() -> str:  # runs beside element 0, on the worker element 1 does not hold
        assert first_in.wait(WAIT)
        run = wf.last_run
        assert run is not None
        record = run.elements("each")
        assert record is not None
        seen["element 1"] = record.status(1)
        let_go.set()
        return "free"

    wf = Workflow("w")
    wf.add_task(Task(name="xs", fn=lambda: [0, 1]))
    wf.add_task(Task(name="each", fn=each, map_over="xs", depends_on=["xs"], limits=[api]))
    wf.add_task(Task(name="free", fn=free, depends_on=["xs"]))
    run = ThreadedExecutor(max_workers=2).execute(wf)
    assert run.results == {"xs": [0, 1], "each": [0, 10], "free": "free"}
    assert seen == {"element 1": TaskStatus.PENDING}
    assert api.statistics() == LimiterStatistics(holders=0, waiting=0, granted=2)


def test_a_retried_element_gives_its_permit_back_between_attempts() -> None:
    api = Limiter(concurrency=1, name="api")
    holders: list[int] = []

    def each(x: int) -> int:
        holders.append(api.statistics().holders)
        if len(holders) == 1:
            raise OSError("once")
        return x

    wf = Workflow("w")
    wf.add_task(Task(name="xs", fn=lambda: [7]))
    wf.add_task(Task(name="each", fn=each, map_over="xs", depends_on=["xs"], retries=1,
                     delay=0.0, limits=[api]))  # fmt: skip
    assert wf.execute().result("each") == [7]
    assert (holders, api.statistics()) == ([1, 1], LimiterStatistics(0, 0, 2))


def test_limits_on_a_mapped_task_are_still_checked() -> None:
    with pytest.raises(ConfigurationError) as caught:
        Task(name="t", fn=abs, map_over="xs", limits=[3])  # type: ignore[list-item]
    assert str(caught.value) == "task 't': limits must be a sequence of Limiter, got (3,)"


@pytest.mark.skipif(not HAVE_DASK, reason="needs the dask extra")
@pytest.mark.parametrize("cluster", ["dask_threads", "dask_processes"])
def test_a_dask_run_keeps_the_limit(cluster: str, request: pytest.FixtureRequest) -> None:
    """The limiter lives with the client-side engine, which takes the permits before it
    sends a call to the cluster: plain tasks and elements keep it across processes."""
    dask = request.getfixturevalue(cluster)
    api = Limiter(concurrency=2, name="api")
    wf = _limited_map(api)
    for k in range(4):
        wf.add_task(Task(name=f"plain{k}", fn=spans, limits=[api], depends_on=["numbers"]))
    run = execute(dask, wf)
    intervals = [*run.result("spans"), *(run.result(f"plain{k}") for k in range(4))]
    assert most_at_once(intervals) <= 2
    assert api.statistics() == LimiterStatistics(holders=0, waiting=0, granted=10)
