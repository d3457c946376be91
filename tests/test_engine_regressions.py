"""Regression tests for bugs found in review of the engine, drivers and lanes.

Each test would fail (or hang until the suite's timeout) without its fix.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import dataclasses
import logging
import subprocess
import sys
import textwrap
import threading
from typing import Any

import pytest

from flowweaver import (
    AsyncExecutor,
    Monitor,
    PoolExecutor,
    SequentialExecutor,
    Task,
    TaskStatus,
    TaskTimeoutError,
    ThreadedExecutor,
    Workflow,
    WorkflowFailedError,
    WorkflowRun,
)

from .conftest import WAIT, FakeClock, Recorder

S = TaskStatus


def test_ready_tasks_still_run_when_every_worker_is_stuck_in_an_abandoned_call() -> None:
    # One worker thread; the first task hangs past its timeout. The thread is replaced, so the
    # retry and an independent task still run instead of the run ending them "cancelled".
    release = threading.Event()
    calls = Recorder()

    def hang_once() -> str:
        calls("hang")
        if calls.count("hang") == 1:
            release.wait(WAIT)
        return "second attempt"

    wf = Workflow("w")
    wf.add_task(Task(name="hang", fn=hang_once, timeout=0.05, retries=1, delay=0))
    wf.add_task(Task(name="independent", fn=lambda: "ran"))
    try:
        run = ThreadedExecutor(max_workers=1).execute(wf)
    finally:
        release.set()
    assert run.results == {"hang": "second attempt", "independent": "ran"}
    assert run.attempts("hang") == 2


def test_a_foreign_pool_with_stuck_workers_waits_instead_of_dropping_ready_work() -> None:
    # A pool of one: its worker is stuck in a timed-out call and cannot be replaced. The ready
    # task must wait for the worker, not end "cancelled" while nobody asked the run to stop.
    release = threading.Event()
    wf = Workflow("w")
    wf.add_task(Task(name="hang", fn=lambda: release.wait(WAIT), timeout=0.05,
                     on_status_change=lambda n, s: release.set() if s is S.FAILED else None))  # fmt: skip
    wf.add_task(Task(name="independent", fn=lambda: "ran"))
    with cf.ThreadPoolExecutor(1) as pool, pytest.raises(WorkflowFailedError):
        PoolExecutor(pool).execute(wf, failure_policy="continue")
    assert wf.last_run is not None
    assert wf.last_run.statuses == {"hang": S.FAILED, "independent": S.COMPLETED}


def test_fail_fast_cancels_calls_that_were_queued_but_not_started() -> None:
    started = Recorder()
    first_failed = threading.Event()

    def boom() -> None:
        raise ValueError("boom")

    def later(i: int) -> None:
        first_failed.wait(WAIT)
        started(i)

    wf = Workflow("w")
    wf.add_task(Task(name="boom", fn=boom,
                     on_status_change=lambda n, s: first_failed.set() if s is S.FAILED else None))  # fmt: skip
    for i in range(20):
        wf.add_task(Task(name=f"t{i}", fn=lambda i=i: later(i)))
    with pytest.raises(WorkflowFailedError):
        ThreadedExecutor(max_workers=1).execute(wf)
    statuses = wf.last_run.statuses  # type: ignore[union-attr]
    # With one thread, at most the call already running when the failure arrived may finish.
    assert len(started.items) <= 1
    assert sum(s is S.CANCELLED for s in statuses.values()) >= 19


@pytest.mark.parametrize("make", [ThreadedExecutor, AsyncExecutor])
def test_a_second_cancellation_still_leaves_the_run_settled(make: Any) -> None:
    gate, started = threading.Event(), threading.Event()

    def blocked() -> bool:
        started.set()
        return gate.wait(WAIT)

    wf = Workflow("w")
    wf.add_task(Task(name="blocked", fn=blocked))
    wf.add_task(Task(name="after", fn=lambda: 1), depends_on=["blocked"])

    async def main() -> None:
        running = asyncio.ensure_future(make().execute_async(wf))
        assert await asyncio.to_thread(started.wait, WAIT)
        running.cancel()
        await asyncio.sleep(0)
        running.cancel()  # e.g. anyio re-delivering cancellation
        gate.set()
        with pytest.raises(asyncio.CancelledError):
            await running

    asyncio.run(main())
    run = wf.last_run
    assert run is not None
    assert run.finished_at is not None
    assert all(s.is_terminal for s in run.statuses.values())


def test_an_async_run_starts_a_sync_timeout_only_when_a_thread_takes_the_call() -> None:
    # Two threads, both busy for longer than the third task's timeout. The third task waits
    # for a thread, then runs within its timeout: waiting must not count.
    wf = Workflow("w")
    for k in range(2):
        wf.add_task(Task(name=f"busy{k}", fn=lambda: threading.Event().wait(0.3)))
    wf.add_task(Task(name="quick", fn=lambda: "fine", timeout=0.1))
    run = AsyncExecutor(max_workers=2).execute(wf)
    assert run.result("quick") == "fine"


def test_a_hung_sync_call_on_the_async_executor_does_not_block_interpreter_exit() -> None:
    code = textwrap.dedent(
        """
        import threading
        from flowweaver import AsyncExecutor, Task, Workflow
        wf = Workflow("w")
        wf.add_task(Task(name="hang", fn=lambda: threading.Event().wait(120), timeout=0.05))
        try:
            AsyncExecutor().execute(wf)
        except RuntimeError:
            print("failed as expected")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=False
    )
    assert done.stdout == "failed as expected\n"
    assert done.returncode == 0


def test_async_fail_fast_lets_a_running_sync_call_finish() -> None:
    failed = threading.Event()
    log = Recorder()

    def slow_sync() -> str:
        failed.wait(WAIT)
        log("finished")
        return "done"

    async def bad() -> None:
        await asyncio.sleep(0)
        raise ValueError("boom")

    wf = Workflow("w")
    wf.add_task(Task(name="slow_sync", fn=slow_sync))
    wf.add_task(Task(name="bad", fn=bad,
                     on_status_change=lambda n, s: failed.set() if s is S.FAILED else None))  # fmt: skip
    with pytest.raises(WorkflowFailedError):
        AsyncExecutor().execute(wf)
    assert log.items == ["finished"]  # it finished before the run returned
    assert wf.get_task_status("slow_sync") is S.COMPLETED


def test_a_thread_call_that_returns_late_counts_as_timed_out() -> None:
    # 0.12 s against a 0.1 s timeout: back before the driver's deadline (timeout + grace), but
    # over time all the same.
    wf = Workflow("w")
    wf.add_task(Task(name="late", fn=lambda: threading.Event().wait(0.12), timeout=0.1))
    with pytest.raises(WorkflowFailedError) as info:
        ThreadedExecutor(max_workers=2).execute(wf)
    assert isinstance(info.value.failures[0].__cause__, TaskTimeoutError)


def test_a_fake_clock_retry_happens_while_other_calls_are_in_flight(clock: FakeClock) -> None:
    retried = threading.Event()
    calls = Recorder()

    def flaky() -> str:
        calls("x")
        if calls.count("x") == 1:
            raise ConnectionError("again")
        retried.set()
        return "ok"

    def peer() -> bool:  # in flight until the retry has happened
        return retried.wait(WAIT)

    wf = Workflow("w")
    wf.add_task(Task(name="flaky", fn=flaky, retries=1, delay=30.0))
    wf.add_task(Task(name="peer", fn=peer))
    run = ThreadedExecutor(max_workers=2).execute(wf, clock=clock)
    assert run.results == {"flaky": "ok", "peer": True}
    assert clock.sleeps == [pytest.approx(30.0, rel=0.11)]


def test_cancelling_a_thread_run_during_a_long_back_off_returns_promptly() -> None:
    wf = Workflow("w")
    wf.add_task(Task(name="flaky", fn=lambda: 1 / 0, retries=1, delay=30.0, jitter=0.0))

    async def main() -> None:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(ThreadedExecutor().execute_async(wf), timeout=0.2)

    asyncio.run(main())  # would wait out the 30 s back-off (and hit the test timeout) before
    assert wf.get_task_status("flaky") is S.CANCELLED


def test_a_raising_async_callback_is_logged_and_disabled(
    executor: Any, caplog: pytest.LogCaptureFixture
) -> None:
    seen = Recorder()

    async def on_status(name: str, status: TaskStatus) -> None:
        await asyncio.sleep(0)
        seen(status)
        raise ValueError("callback bug")

    wf = Workflow("w")
    wf.add_task(Task(name="a", fn=lambda: 1, on_status_change=on_status))
    wf.add_task(Task(name="b", fn=lambda a: a + 1), depends_on=["a"])
    with caplog.at_level(logging.ERROR, logger="flowweaver"):
        run = executor.execute(wf)
    assert run.results == {"a": 1, "b": 2}
    assert seen.items == [S.RUNNING]
    assert "on_status_change of task 'a' raised; it is disabled for the rest of this run" in [
        r.getMessage() for r in caplog.records
    ]


class Abort(BaseException):
    pass


def test_a_base_exception_from_a_task_is_that_task_s_failure(executor: Any) -> None:
    def bad() -> None:
        raise Abort("stop")

    async def abad() -> None:
        raise Abort("stop")

    for fn in (bad, abad):
        wf = Workflow("w")
        wf.add_task(Task(name="bad", fn=fn))
        wf.add_task(Task(name="after", fn=lambda: 1), depends_on=["bad"])
        with pytest.raises(WorkflowFailedError) as info:
            executor.execute(wf)
        assert isinstance(info.value.failures[0].__cause__, Abort)
        assert wf.last_run is not None
        assert wf.last_run.statuses == {"bad": S.FAILED, "after": S.UPSTREAM_FAILED}


def test_a_base_exception_from_a_when_predicate_is_that_task_s_failure(executor: Any) -> None:
    def refuse() -> bool:
        raise Abort("no verdict")

    wf = Workflow("w")
    wf.add_task(Task(name="gated", fn=lambda: 1, when=refuse))
    wf.add_task(Task(name="after", fn=lambda gated: gated), depends_on=["gated"])
    with pytest.raises(WorkflowFailedError) as info:
        executor.execute(wf)
    assert isinstance(info.value.failures[0].__cause__, Abort)
    assert wf.last_run is not None
    assert wf.last_run.statuses == {"gated": S.FAILED, "after": S.UPSTREAM_FAILED}


def test_an_error_inside_the_async_driver_surfaces_instead_of_vanishing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from flowweaver import _engine

    def broken(self: Any, i: int, start: bool = True) -> None:
        raise RuntimeError("engine bug")

    monkeypatch.setattr(_engine.Engine, "begin", broken)
    wf = Workflow("w")
    wf.add_task(Task(name="a", fn=lambda: 1))
    with pytest.raises(RuntimeError, match="engine bug"):
        AsyncExecutor().execute(wf)
    assert wf.last_run is not None
    assert wf.last_run.statuses == {"a": S.CANCELLED}


@pytest.mark.not_on_dask("SystemExit in a task stops its Dask worker, as Dask decides")
def test_a_task_raising_system_exit_stops_the_run_and_it_propagates(executor: Any) -> None:
    wf = Workflow("w")
    wf.add_task(Task(name="exit", fn=lambda: sys.exit(3)))
    wf.add_task(Task(name="after", fn=lambda: 1), depends_on=["exit"])
    with pytest.raises(SystemExit):
        executor.execute(wf)
    assert wf.last_run is not None
    assert wf.last_run.statuses == {"exit": S.CANCELLED, "after": S.CANCELLED}


def test_an_async_on_run_end_is_awaited(executor: Any) -> None:
    ended = Recorder()

    class Ends(Monitor):
        async def on_run_end(self, run: WorkflowRun) -> None:  # type: ignore[override]
            await asyncio.sleep(0)
            ended(run.workflow)

    wf = Workflow("w")
    wf.add_task(Task(name="a", fn=lambda: 1))
    executor.execute(wf, monitors=[Ends()])
    assert ended.items == ["w"]


def test_an_unhashable_callable_is_a_fine_task_function(executor: Any) -> None:
    @dataclasses.dataclass
    class Fetch:  # eq=True without frozen: instances are unhashable
        url: str

        def __call__(self) -> str:
            return self.url

    wf = Workflow("w")
    wf.add_task(Task(name="fetch", fn=Fetch("http://x/data")))
    assert executor.execute(wf).result("fetch") == "http://x/data"


def test_worker_threads_cancel_only_a_call_that_has_not_started() -> None:
    from flowweaver._lanes import WorkerThreads

    lane = WorkerThreads(1)
    gate = threading.Event()
    try:
        lane.send(1, gate.wait, (WAIT,), None, "blocker", None)
        lane.send(2, lambda: 2, (), None, "queued", None)
        assert lane.cancel(2)  # still queued behind the blocker: it never runs
        gate.set()
        outcomes = {lane.outbox.get(timeout=WAIT)[:2] for _ in range(2)}  # type: ignore[index]
        assert outcomes == {(1, True), (2, False)}
        assert not lane.cancel(1)  # it ran: too late, and nothing is kept for it
        assert not lane._cancelled
    finally:
        lane.close(wait=True)


@pytest.mark.parametrize("executor", [SequentialExecutor(), ThreadedExecutor(max_workers=1)],
                         ids=["sequential", "threaded"])  # fmt: skip
def test_a_retry_wait_ends_on_its_due_time_in_one_wait(executor: Any) -> None:
    # Waiting due - now on a clock that adds it lands an ulp short of due when due > 2 * now
    # (here 8.9e-16 s): the driver used to wait a second time for that ulp.
    clock = FakeClock()
    failed = threading.Event()

    def flaky() -> str:
        if not failed.is_set():
            failed.set()
            raise ConnectionError("once")
        return "ok"

    wf = Workflow("due")
    wf.add_task(Task(name="flaky", fn=flaky, retries=1, delay=4.8970579087589785, jitter=0.0))
    wf.add_task(Task(name="nudge", fn=lambda: clock.advance(0.3442306984891652)))
    run = wf.execute(executor=executor, clock=clock)
    assert run.result("flaky") == "ok"
    assert len(clock.sleeps) == 1, clock.sleeps
