"""``running`` means running: a task waiting for a worker is ``pending`` and its duration
leaves the wait out (issue 13); a clock says how the driver waits for a retry (issue 12)."""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import functools
import threading
import time
from typing import TYPE_CHECKING, Any

import pytest

from flowweaver import (
    AsyncExecutor,
    PoolExecutor,
    Task,
    TaskStatus,
    ThreadedExecutor,
    Workflow,
    WorkflowRun,
)
from flowweaver.testing import FakeClock

from . import authoring_tasks as at
from .conftest import WAIT

if TYPE_CHECKING:
    from collections.abc import Iterator

    from flowweaver import ProcessExecutor

S = TaskStatus


class Running:
    """An ``on_status_change`` callback that tracks how many tasks are running at once."""

    def __init__(self) -> None:
        self.now: set[str] = set()
        self.most = 0
        self.events: list[tuple[str, TaskStatus]] = []

    def __call__(self, name: str, status: TaskStatus) -> None:  # on the driver's thread
        self.events.append((name, status))
        if status is S.RUNNING:
            self.now.add(name)
            self.most = max(self.most, len(self.now))
        else:
            self.now.discard(name)


def wide(count: int, fn: Any, seen: Running) -> Workflow:
    wf = Workflow("wide")
    for k in range(count):
        wf.add_task(Task(name=f"t{k}", fn=fn, on_status_change=seen))
    return wf


@pytest.fixture(params=["threaded", "process", "pool", "async"])
def two_workers(request: pytest.FixtureRequest) -> Iterator[tuple[object, int]]:
    """An executor and how many calls it runs at once."""
    kind = request.param
    if kind == "threaded":
        with ThreadedExecutor(max_workers=2) as threaded:
            yield threaded, 2
    elif kind == "process":
        processes: ProcessExecutor = request.getfixturevalue("process_executor")
        yield processes, processes.max_workers
    elif kind == "pool":
        with cf.ThreadPoolExecutor(2) as pool:
            yield PoolExecutor(pool), 2
    else:  # no max_workers: any number of coroutines, sync calls on a few threads
        executor = AsyncExecutor()
        yield executor, ThreadedExecutor().max_workers


def test_status_callbacks_never_see_more_tasks_running_than_workers(
    two_workers: tuple[Any, int],
) -> None:
    executor, workers = two_workers
    seen = Running()
    run = executor.execute(wide(4 * workers, at.one.fn, seen))
    assert set(run.statuses.values()) == {S.COMPLETED}
    assert 1 <= seen.most <= workers
    for name in run.statuses:  # each task: pending -> running -> completed, nothing else
        assert [s for n, s in seen.events if n == name] == [S.RUNNING, S.COMPLETED]


def test_a_queued_task_is_pending_and_its_duration_leaves_the_queue_out() -> None:
    """The issue's case: six tasks on two workers. The sleep is the tasks' work, not a way to
    wait for something. Before, each task counted from when it was sent, so the later ones
    counted the earlier ones' time as theirs: durations summed to about four times the run's
    length. Two workers can only fill twice the run's length, however loaded the machine."""
    seen = Running()
    with ThreadedExecutor(max_workers=2) as threaded:
        started = time.perf_counter()
        run = threaded.execute(wide(6, functools.partial(time.sleep, 0.2), seen))
        elapsed = time.perf_counter() - started
    durations = [run.duration(f"t{k}") or 0.0 for k in range(6)]
    assert seen.most == 2
    assert all(d > 0 for d in durations)
    assert sum(durations) <= 2 * elapsed, (durations, elapsed)


class WallClock:
    """A real clock that is not SystemClock, and says so (``sleep_time``)."""

    def now(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    async def sleep_async(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    def sleep_time(self, seconds: float) -> float:
        return seconds


def test_a_real_clock_of_ones_own_lets_the_driver_handle_outcomes_during_a_retry_wait() -> None:
    """Before, any clock but SystemClock was slept through: ``other`` finished during the
    retry wait but was only seen once the wait was over, after the retry had started."""
    retrying = threading.Event()
    seen = Running()
    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise ConnectionError("down")
        return "up"

    wf = Workflow("w")
    wf.add_task(Task(name="flaky", fn=flaky, retries=1, delay=0.3, jitter=0.0,
                     on_retry=lambda name, n: retrying.set(), on_status_change=seen))  # fmt: skip
    wf.add_task(Task(name="other", fn=lambda: retrying.wait(WAIT), on_status_change=seen))
    with ThreadedExecutor(max_workers=2) as threaded:
        run = threaded.execute(wf, clock=WallClock())
    assert run.results == {"flaky": "up", "other": True}
    done = seen.events.index(("other", S.COMPLETED))
    second_attempt = [k for k, e in enumerate(seen.events) if e == ("flaky", S.RUNNING)][1]
    assert done < second_attempt


@pytest.mark.parametrize("kind", ["sequential", "threaded", "async"])
def test_the_public_fake_clock_makes_retry_waits_instant_and_records_them(kind: str) -> None:
    from flowweaver import SequentialExecutor

    executor: Any = {"sequential": SequentialExecutor, "threaded": ThreadedExecutor,
                     "async": AsyncExecutor}[kind]()  # fmt: skip
    calls: list[int] = []

    def flaky() -> int:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError("down")
        return len(calls)

    wf = Workflow("w")
    wf.add_task(Task(name="f", fn=flaky, retries=2, delay=30.0, backoff=2.0, jitter=0.0))
    clock = FakeClock(start=100.0)
    started = time.monotonic()
    run = executor.execute(wf, clock=clock)
    assert run.result("f") == 3
    assert (clock.sleeps, clock.now()) == ([30.0, 60.0], 190.0)
    assert time.monotonic() - started < 30.0  # no real wait: the test would time out first


def test_two_concurrent_runs_of_one_task_keep_their_own_results() -> None:
    """The seed accessors read the run that began last; each run's record is its own."""
    both_running = threading.Barrier(2, timeout=WAIT)
    shared = Task(name="shared", fn=lambda which: (both_running.wait(), which)[1])
    workflows = []
    for which in ("first", "second"):
        wf = Workflow(which)
        wf.add_task(Task(name="which", fn=lambda which=which: which))
        wf.add_task(shared, depends_on=["which"])
        workflows.append(wf)
    with cf.ThreadPoolExecutor(2) as threads:
        first = threads.submit(workflows[0].execute, "thread")
        second = threads.submit(workflows[1].execute, "thread")
        runs = [first.result(WAIT), second.result(WAIT)]
    assert [run.result("shared") for run in runs] == ["first", "second"]
    latest = shared._latest  # an own task of its run: the run itself (found there by name)
    assert isinstance(latest, WorkflowRun) and latest in runs  # whichever began last
    assert shared.result == latest.result("shared")
