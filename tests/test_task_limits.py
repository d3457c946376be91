"""``Task(limits=[...])``: the engine takes permits before dispatch; waiting tasks stay pending."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowweaver import (
    AsyncExecutor,
    ConfigurationError,
    Limiter,
    LimiterStatistics,
    SequentialExecutor,
    Task,
    TaskStatus,
    ThreadedExecutor,
    Workflow,
    WorkflowFailedError,
)

from .conftest import WAIT, FakeClock

EXECUTORS = [
    pytest.param(lambda: ThreadedExecutor(max_workers=2), id="threaded"),
    pytest.param(lambda: AsyncExecutor(max_workers=2), id="async"),
]


@pytest.mark.parametrize("make", EXECUTORS)
def test_a_waiting_task_holds_no_worker_and_stays_pending(make: Any) -> None:
    api = Limiter(concurrency=1, name="api")
    first_in, let_go = threading.Event(), threading.Event()
    seen: dict[str, TaskStatus] = {}

    def first() -> str:
        first_in.set()
        assert let_go.wait(WAIT)
        return "first"

    def free() -> str:  # no limiter: runs while `second` waits, on a worker `second` does not hold
        assert first_in.wait(WAIT)
        run = wf.last_run
        assert run is not None
        seen["second"] = run.status("second")
        let_go.set()
        return "free"

    wf = Workflow("w")
    wf.add_task(Task(name="first", fn=first, limits=[api]))
    wf.add_task(Task(name="second", fn=lambda: "second", limits=[api]))
    wf.add_task(Task(name="free", fn=free))
    run = make().execute(wf)
    assert run.results == {"first": "first", "second": "second", "free": "free"}
    assert seen == {"second": TaskStatus.PENDING}
    assert api.statistics().holders == 0


@pytest.mark.parametrize("make", EXECUTORS)
def test_never_more_holders_than_the_concurrency(make: Any) -> None:
    api = Limiter(concurrency=2)
    lock = threading.Lock()
    now = most = 0

    def call() -> None:
        nonlocal now, most
        with lock:
            now += 1
            most = max(most, now)
        for _ in range(2000):
            pass
        with lock:
            now -= 1

    wf = Workflow("w")
    for k in range(12):
        wf.add_task(Task(name=f"t{k}", fn=call, limits=[api]))
    make().execute(wf)
    assert most <= 2 and api.statistics().granted == 12


def test_a_release_by_another_thread_wakes_a_sequential_run() -> None:
    api = Limiter(concurrency=1)
    api.acquire()  # held by "another workflow"
    wf = Workflow("w")
    wf.add_task(Task(name="t", fn=lambda: "done", limits=[api]))
    outcome: list[object] = []
    thread = threading.Thread(target=lambda: outcome.append(SequentialExecutor().execute(wf)))
    thread.start()
    thread.join(0.05)
    assert thread.is_alive()  # waiting for the permit, not running
    api.release()
    thread.join(WAIT)
    assert not thread.is_alive()
    assert wf.last_run is not None and wf.last_run.result("t") == "done"


def test_a_rate_limit_spaces_the_starts() -> None:
    api = Limiter(rate=2, per=0.05)
    wf = Workflow("w")
    for k in range(5):
        wf.add_task(Task(name=f"t{k}", fn=lambda: None, limits=[api]))
    run = ThreadedExecutor(max_workers=4).execute(wf)
    assert api.statistics().granted == 5
    assert all(run.status(f"t{k}") is TaskStatus.COMPLETED for k in range(5))


def test_a_retry_takes_a_new_permit_and_gives_the_old_back() -> None:
    api = Limiter(concurrency=1)
    calls = []

    def flaky() -> str:
        calls.append(api.statistics().holders)
        if len(calls) == 1:
            raise OSError("once")
        return "ok"

    wf = Workflow("w")
    wf.add_task(Task(name="t", fn=flaky, retries=1, delay=0.0, limits=[api]))
    assert SequentialExecutor().execute(wf).result("t") == "ok"
    assert (calls, api.statistics().granted, api.statistics().holders) == ([1, 1], 2, 0)


@pytest.mark.parametrize("bad", [[1], "api", [Limiter(), None]])
def test_limits_that_are_not_limiters_are_named(bad: Any) -> None:
    with pytest.raises(ConfigurationError) as caught:
        Task(name="t", fn=lambda: 1, limits=bad)
    shown = tuple(bad) if isinstance(bad, list) else bad
    assert str(caught.value) == f"task 't': limits must be a sequence of Limiter, got {shown!r}"


def test_a_blocking_wait_on_an_event_loop_is_refused() -> None:
    api = Limiter(concurrency=1, name="api")

    async def task() -> None:
        with api, api:  # would wait for itself, and freeze the loop meanwhile
            pass

    wf = Workflow("w")
    wf.add_task(Task(name="t", fn=task))
    with pytest.raises(WorkflowFailedError) as caught:
        AsyncExecutor().execute(wf)
    (failure,) = caught.value.failures
    assert str(failure.__cause__) == (
        "Limiter(name='api', concurrency=1): acquire() (with) cannot wait on an event loop's "
        "thread: it would block every coroutine; use acquire_async() (async with)"
    )
    assert api.statistics().holders == 0


@settings(max_examples=15, deadline=None)
@given(
    concurrency=st.integers(1, 3),
    tasks=st.integers(1, 10),
    workers=st.integers(1, 4),
    on_loop=st.booleans(),
)
def test_every_limited_task_runs_once_within_the_concurrency(
    concurrency: int, tasks: int, workers: int, on_loop: bool
) -> None:
    api = Limiter(concurrency=concurrency)
    lock = threading.Lock()
    now = most = 0

    def call() -> None:
        nonlocal now, most
        with lock:
            now += 1
            most = max(most, now)
        with lock:
            now -= 1

    wf = Workflow("w")
    for k in range(tasks):
        wf.add_task(Task(name=f"t{k}", fn=call, limits=[api], priority=k % 3))
    executor = AsyncExecutor(max_workers=workers) if on_loop else ThreadedExecutor(workers)
    run = executor.execute(wf)
    assert all(run.status(f"t{k}") is TaskStatus.COMPLETED for k in range(tasks))
    assert most <= concurrency
    assert api.statistics() == LimiterStatistics(holders=0, waiting=0, granted=tasks)


def test_a_call_waiting_for_a_worker_holds_no_permit(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two runs share one limiter: the call of one that waits for a busy worker must not hold
    the permit the other needs (it would starve it for as long as the worker stays busy)."""
    from flowweaver._lanes import WorkerThreads

    api = Limiter(concurrency=1, name="api")
    burst_sent = threading.Event()
    flush = WorkerThreads.flush

    def flush_and_tell(lane: WorkerThreads) -> None:
        flush(lane)
        burst_sent.set()  # the driver sent what it could; `later` waits for the busy worker

    monkeypatch.setattr(WorkerThreads, "flush", flush_and_tell)

    def busy() -> object:
        assert burst_sent.wait(WAIT)
        assert api.has_capacity()  # `later` is not running: the permit is free for others
        other = Workflow("other")
        other.add_task(Task(name="m", fn=lambda: "other run", limits=[api]))
        return SequentialExecutor().execute(other).result("m")

    wf = Workflow("w")
    wf.add_task(Task(name="busy", fn=busy))
    wf.add_task(Task(name="later", fn=lambda: "later", limits=[api]))
    run = ThreadedExecutor(max_workers=1).execute(wf)
    assert run.results == {"busy": "other run", "later": "later"}
    assert api.statistics() == LimiterStatistics(holders=0, waiting=0, granted=2)


@pytest.mark.parametrize("make", [pytest.param(SequentialExecutor, id="sequential"), *EXECUTORS])
def test_the_tasks_of_a_workflow_a_task_returns_keep_their_limits(make: Any) -> None:
    # The run's own tasks have no limits: the limiters arrive with the child run. The builder
    # takes the limiter, so both limited child tasks are parked when `free` (ready after
    # them) gives it back: they must be woken, and run one at a time.
    api = Limiter(concurrency=1, name="api")
    held: list[int] = []

    def call(n: int) -> int:
        held.append(api.statistics().holders)  # this call's permit, and no other
        return n

    def build() -> Workflow:
        api.acquire_nowait()
        child = Workflow("child")
        for n in (1, 2):
            child.add_task(Task(name=f"c{n}", fn=lambda n=n: call(n), limits=[api]))
        child.add_task(Task(name="free", fn=api.release))
        return child

    wf = Workflow("w")
    wf.add_task(Task(name="opener", fn=build))
    run = make().execute(wf)
    assert run.result("opener") == {"c1": 1, "c2": 2, "free": None}
    assert held == [1, 1]
    assert api.statistics() == LimiterStatistics(holders=0, waiting=0, granted=3)


def test_an_async_run_wakes_for_a_release_from_another_thread_of_a_child_tasks_limiter() -> None:
    # The run starts without limits; its child's task parks behind a permit a thread of the
    # test's holds, and the loop has nothing else to do when that thread gives it back.
    refused = threading.Event()

    class Watched(Limiter):
        def _take_for(self, waiter: Any, queued: bool) -> Any:
            delay, grant = super()._take_for(waiter, queued)
            if grant is None:
                refused.set()
            return delay, grant

    api = Watched(concurrency=1, name="api")
    api.acquire_nowait()

    def release_once_parked() -> None:
        assert refused.wait(WAIT)
        api.release()

    helper = threading.Thread(target=release_once_parked)
    helper.start()

    def build() -> Workflow:
        child = Workflow("child")
        child.add_task(Task(name="c", fn=lambda: "c", limits=[api]))
        return child

    wf = Workflow("w")
    wf.add_task(Task(name="opener", fn=build))
    try:
        run = AsyncExecutor(max_workers=2).execute(wf)
    finally:
        helper.join(WAIT)
    assert run.result("opener") == {"c": "c"}
    assert api.statistics() == LimiterStatistics(holders=0, waiting=0, granted=2)


def test_an_async_runs_sync_call_waiting_for_a_thread_holds_no_permit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """AsyncExecutor without max_workers, and fewer threads than sync calls: a limited sync
    call that waits for a thread must not hold the permit another run sharing the limiter
    needs (it would starve it for as long as the threads stay busy)."""
    import flowweaver._async

    monkeypatch.setattr(flowweaver._async, "default_workers", lambda: 1)  # one thread
    api = Limiter(concurrency=1, name="api")
    later_waits = threading.Event()

    async def mark() -> None:
        # Its worker starts after `later`'s, which has got as far as it can: waiting for the
        # one thread, which `busy` holds.
        later_waits.set()

    def busy() -> object:
        assert later_waits.wait(WAIT)
        assert api.has_capacity()  # `later` is not running: the permit is free for others
        other = Workflow("other")
        other.add_task(Task(name="m", fn=lambda: "other run", limits=[api]))
        return SequentialExecutor().execute(other).result("m")

    wf = Workflow("w")
    wf.add_task(Task(name="busy", fn=busy))
    wf.add_task(Task(name="later", fn=lambda: "later", limits=[api]))
    wf.add_task(Task(name="mark", fn=mark))
    run = AsyncExecutor().execute(wf)
    assert run.results == {"busy": "other run", "later": "later", "mark": None}
    assert api.statistics() == LimiterStatistics(holders=0, waiting=0, granted=2)


@pytest.mark.parametrize(
    "make",
    [pytest.param(lambda: SequentialExecutor(), id="sequential"), *EXECUTORS],
)
def test_a_rate_wait_follows_the_limiters_clock(make: Any) -> None:
    """A task parked for its rate tries again when the *limiter's* clock says so: on a test
    clock the wait advances that clock and takes no real time (an hour a start, here)."""
    clock = FakeClock()
    api = Limiter(rate=1, per=3600.0, clock=clock, name="api")
    starts: list[float] = []
    wf = Workflow("w")
    for k in range(3):
        wf.add_task(Task(name=f"t{k}", fn=lambda: starts.append(clock.now()), limits=[api]))
    done: list[Any] = []
    runner = threading.Thread(target=lambda: done.append(make().execute(wf)), daemon=True)
    runner.start()
    runner.join(WAIT)  # before the fix: the driver waited an hour of real time
    assert done, "the rate wait took real time"
    assert all(done[0].status(f"t{k}") is TaskStatus.COMPLETED for k in range(3))
    assert sorted(starts) == [0.0, 3600.0, 7200.0]  # spaced by the limiter's clock
    assert api.statistics() == LimiterStatistics(holders=0, waiting=0, granted=3)
