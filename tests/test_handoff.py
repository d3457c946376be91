"""ThreadedExecutor's hand-off driver: workers settle their own outcomes (issue 18, item 2).

A worker that finishes a call reports it to the engine under the run's lock and runs the task
it made ready itself, so a chain never wakes a thread. These tests hold what that must not
cost: at most ``max_workers`` calls at once, timeouts that still fire, retries that still back
off through the clock, every task ending once, and observed runs calling back on one thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
import threading
from dataclasses import dataclass
from time import monotonic
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowweaver import (
    Task,
    TaskStatus,
    TaskTimeoutError,
    ThreadedExecutor,
    Workflow,
    WorkflowFailedError,
    _handoff,
)
from flowweaver._engine_factory import make_engine

from .conftest import WAIT, FakeClock, Recorder
from .conftest import run as run_coro

S = TaskStatus


def suits(wf: Workflow) -> bool:
    """Whether ThreadedExecutor runs ``wf`` through the hand-off driver."""
    return _handoff.handoff_suits(make_engine(wf, {}))


def chain(n: int, fn: Any, **options: Any) -> Workflow:
    wf = Workflow("chain")
    for i in range(n):
        wf.add_task(Task(name=f"t{i}", fn=fn, **options), depends_on=[f"t{i - 1}"] if i else [])
    return wf


def test_a_chain_runs_on_one_worker_thread_without_a_hand_off() -> None:
    threads = Recorder()
    run = ThreadedExecutor(max_workers=4).execute(
        chain(40, lambda *_: threads(threading.get_ident()))
    )
    assert len(run.results) == 40
    assert len(set(threads.items)) == 1  # the pool driver sent each call to the next free thread
    assert threads.items[0] != threading.get_ident()  # a worker, not the calling thread


def test_a_run_with_observers_calls_back_on_the_calling_thread() -> None:
    threads = Recorder()

    def on_status_change(name: str, status: TaskStatus) -> None:
        threads(threading.get_ident())

    wf = chain(5, lambda *_: None, on_status_change=on_status_change)
    assert not suits(wf)
    ThreadedExecutor(max_workers=4).execute(wf)
    assert len(threads.items) == 10  # running, completed: each on the driver thread
    assert set(threads.items) == {threading.get_ident()}


def test_a_timeout_in_a_chain_fires_and_its_retry_runs_on_a_fresh_thread() -> None:
    release = threading.Event()
    calls = Recorder()

    def hangs_once(*_: object) -> str:
        calls(threading.get_ident())
        if len(calls.items) == 1:
            release.wait(WAIT)  # abandoned: the test lets it go at the end
        return "b"

    wf = Workflow("w")
    wf.add_task(Task(name="a", fn=lambda: "a"))
    wf.add_task(Task(name="b", fn=hangs_once, timeout=0.05, retries=1, delay=0.0), ["a"])
    wf.add_task(Task(name="c", fn=lambda b: b + "c"), ["b"])
    try:
        run = ThreadedExecutor(max_workers=1).execute(wf)
    finally:
        release.set()
    assert run.results == {"a": "a", "b": "b", "c": "bc"}
    assert run.attempts("b") == 2
    assert calls.items[0] != calls.items[1]  # the abandoned thread was replaced: one worker


def test_a_timeout_that_is_final_fails_the_task_and_cancels_nothing_else() -> None:
    release = threading.Event()
    wf = Workflow("w")
    wf.add_task(Task(name="slow", fn=lambda: release.wait(WAIT), timeout=0.05))
    wf.add_task(Task(name="after", fn=lambda slow: 1), ["slow"])
    wf.add_task(Task(name="other", fn=lambda: 2))
    try:
        with pytest.raises(WorkflowFailedError) as info:
            ThreadedExecutor(max_workers=2).execute(wf, failure_policy="continue")
    finally:
        release.set()
    run = info.value.run
    assert run is not None
    assert run.statuses == {"slow": S.FAILED, "after": S.UPSTREAM_FAILED, "other": S.COMPLETED}
    assert isinstance(run.error("slow"), TaskTimeoutError)


def test_retry_back_off_goes_through_the_clock() -> None:
    clock = FakeClock()
    seen = Recorder()

    def flaky(*_: object) -> int:
        seen(clock.now())
        if len(seen.items) < 3:
            raise ConnectionError("down")
        return 1

    wf = chain(3, lambda *_: 0)
    wf.add_task(Task(name="flaky", fn=flaky, retries=2, delay=1.0, backoff=2.0, jitter=0.0), ["t2"])
    run = ThreadedExecutor(max_workers=2).execute(wf, clock=clock)
    assert run.result("flaky") == 1
    assert seen.items == [0.0, 1.0, 3.0]  # waited 1 s, then 2 s, on the run's clock


@dataclass(frozen=True)
class Shape:
    deps: list[list[int]]
    failing: list[int]  # attempts that fail before success
    hangs: list[bool]  # the first attempt outlives a 0.05 s timeout (then retried once)
    workers: int


@st.composite
def shapes(draw: st.DrawFn) -> Shape:
    n = draw(st.integers(1, 60))
    rng = random.Random(draw(st.integers(0, 2**32 - 1)))
    deps = [sorted(rng.sample(range(i), min(i, rng.randint(0, 3)))) for i in range(n)]
    failing = [rng.choice([0, 0, 0, 1, 2]) for _ in range(n)]
    hangs = [rng.random() < 0.04 for _ in range(n)]
    return Shape(deps, failing, hangs, draw(st.integers(1, 4)))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shape=shapes(), policy=st.sampled_from(["continue", "fail_fast"]))
def test_every_task_ends_once_and_never_more_than_max_workers_calls_run(
    shape: Shape, policy: str
) -> None:
    lock, release = threading.Lock(), threading.Event()
    calls = [0] * len(shape.deps)
    done: set[int] = set()
    early: list[int] = []
    live, peak = [0], [0]

    def body(i: int) -> int:
        with lock:
            calls[i] += 1
            attempt = calls[i]
            if not all(d in done for d in shape.deps[i]):
                early.append(i)
            hanging = shape.hangs[i] and attempt == 1
            if not hanging:  # an abandoned call holds a thread that was replaced
                live[0] += 1
                peak[0] = max(peak[0], live[0])
        try:
            if hanging:
                release.wait(WAIT)
            elif attempt <= shape.failing[i]:
                raise ConnectionError(f"n{i} attempt {attempt}")
        finally:
            if not hanging:
                with lock:
                    live[0] -= 1
        with lock:
            done.add(i)
        return i

    wf = Workflow("random")
    for i, deps in enumerate(shape.deps):
        wf.add_task(
            Task(
                name=f"n{i}",
                fn=lambda *_, i=i: body(i),
                retries=1,
                delay=0.5,
                timeout=0.05 if shape.hangs[i] else None,
            ),
            depends_on=[f"n{d}" for d in deps],
        )
    assert suits(wf)
    try:
        with contextlib.suppress(WorkflowFailedError):
            ThreadedExecutor(shape.workers).execute(wf, clock=FakeClock(), failure_policy=policy)
    finally:
        release.set()
    run = wf.last_run
    assert run is not None
    assert early == []
    assert peak[0] <= shape.workers
    assert all(c <= 2 for c in calls)
    statuses = [run.status(f"n{i}") for i in range(len(shape.deps))]
    assert all(s.is_terminal for s in statuses)
    doomed = {i for i, k in enumerate(shape.failing) if k > 1}
    assert {i for i, s in enumerate(statuses) if s is S.FAILED} <= doomed
    if policy == "continue":
        for i, s in enumerate(statuses):
            if s is S.COMPLETED:
                assert calls[i] == 1 + (shape.failing[i] > 0 or shape.hangs[i])
            if not any(statuses[d] is not S.COMPLETED for d in shape.deps[i]):
                assert s is (S.FAILED if i in doomed else S.COMPLETED)


@pytest.mark.parametrize("workers", [2, 4, 16])
def test_a_fan_out_reaches_max_workers_calls_at_once(workers: int) -> None:
    meet = threading.Barrier(workers, timeout=WAIT)  # all must run at once, or the run fails
    wf = Workflow("fan")
    wf.add_task(Task(name="src", fn=lambda: 0))
    for k in range(3 * workers):
        wf.add_task(Task(name=f"f{k}", fn=lambda src: meet.wait()), ["src"])
    run = ThreadedExecutor(max_workers=workers).execute(wf)
    assert len(run.results) == 1 + 3 * workers


@settings(max_examples=10, deadline=None)
@given(how=st.sampled_from(["cancel", "ctrl-c"]), after=st.integers(1, 6))
def test_a_run_stopped_anywhere_ends_every_task_once_and_promptly(how: str, after: int) -> None:
    reached = threading.Event()
    stopped: list[float] = []

    def step(k: int) -> int:
        if k == after - 1:
            if how == "ctrl-c":
                stopped.append(monotonic())
                signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)
            else:
                reached.set()
        return k

    wf = Workflow("w")  # src -> t0..t3 -> end: step(k) runs as the k-th task
    wf.add_task(Task(name="src", fn=lambda: step(0)))
    for i in range(4):
        wf.add_task(Task(name=f"t{i}", fn=lambda src, i=i: step(i + 1)), ["src"])
    wf.add_task(Task(name="end", fn=lambda *_: step(5)), [f"t{i}" for i in range(4)])
    assert suits(wf)
    executor = ThreadedExecutor(max_workers=2)
    if how == "cancel":

        async def main() -> None:
            running = asyncio.ensure_future(executor.execute_async(wf))
            assert await asyncio.to_thread(reached.wait, WAIT)
            stopped.append(monotonic())
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running

        run_coro(main())
    else:
        with pytest.raises(KeyboardInterrupt):
            executor.execute(wf)
    assert monotonic() - stopped[0] < 1.0  # a bound, generous on a loaded machine
    assert wf.last_run is not None
    assert all(status.is_terminal for status in wf.last_run.statuses.values())


def test_a_mapped_task_runs_on_the_hand_off_with_retries_and_a_timeout() -> None:
    release = threading.Event()
    attempts = Recorder()

    def each(x: int) -> int:
        attempts(x)
        if x == 3 and attempts.count(3) == 1:
            raise ConnectionError("once")
        if x == 5 and attempts.count(5) == 1:
            release.wait(WAIT)  # abandoned after its timeout; retried
        return 10 * x

    wf = Workflow("m")
    wf.add_task(Task(name="items", fn=lambda: iter(range(8))))  # streamed, pulled under the lock
    wf.add_task(
        Task(name="each", fn=each, map_over="items", retries=1, delay=1.0, timeout=0.2),
        ["items"],
    )
    wf.add_task(Task(name="total", fn=lambda each: sum(each)), ["each"])
    assert suits(wf)
    try:
        run = ThreadedExecutor(max_workers=2).execute(wf, clock=FakeClock())
    finally:
        release.set()
    assert run.result("each") == [10 * x for x in range(8)]
    assert run.result("total") == 280
    assert [attempts.count(x) for x in range(8)] == [1, 1, 1, 2, 1, 2, 1, 1]
