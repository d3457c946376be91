"""``Task(limits=...)`` among other callers: all or nothing, first come first served."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowweaver import (
    AsyncExecutor,
    Limiter,
    LimiterStatistics,
    SequentialExecutor,
    Task,
    TaskStatus,
    ThreadedExecutor,
    Workflow,
    WorkflowFailedError,
)
from flowweaver._gates import Gates

from .conftest import WAIT, FakeClock


def _gates(*limiters: Limiter) -> Gates:
    gates = Gates(set(limiters))
    gates.open(lambda: None)
    return gates


def test_a_refusal_gives_back_what_the_other_limiters_granted() -> None:
    rate = Limiter(rate=2, per=60.0, clock=FakeClock(), name="rate")
    slots = Limiter(concurrency=1, name="slots")
    slots.acquire()  # someone else holds the only slot
    gates = _gates(rate, slots)
    assert not gates.take(0, (rate, slots))  # parked, holding nothing
    assert rate.statistics() == LimiterStatistics(holders=0, waiting=0, granted=0)
    assert rate.acquire_nowait() and rate.acquire_nowait()  # both tokens are still there
    assert not rate.acquire_nowait()  # and no more: the refund made no extra one
    gates.close()
    assert slots.statistics() == LimiterStatistics(holders=1, waiting=0, granted=1)


def test_tasks_that_need_two_limiters_spend_one_token_each() -> None:
    rate = Limiter(rate=1000, per=60.0, name="rate")
    slot = Limiter(concurrency=1, name="slot")
    lock = threading.Lock()
    now = most = 0

    def call() -> None:
        nonlocal now, most
        with lock:
            now += 1
            most = max(most, now)
        time.sleep(0.001)  # the remote call: others are refused by `slot` meanwhile
        with lock:
            now -= 1

    wf = Workflow("w")
    for k in range(8):
        wf.add_task(Task(name=f"t{k}", fn=call, limits=[rate, slot]))
    run = ThreadedExecutor(max_workers=4).execute(wf)
    assert all(run.status(f"t{k}") is TaskStatus.COMPLETED for k in range(8))
    assert most == 1
    assert rate.statistics().granted == 8  # a refused attempt spent nothing
    assert slot.statistics() == LimiterStatistics(holders=0, waiting=0, granted=8)


@settings(max_examples=30, deadline=None)
@given(kinds=st.lists(st.sampled_from(["task", "async with"]), min_size=1, max_size=8))
def test_waiting_tasks_and_blocked_callers_are_served_in_arrival_order(kinds: list[str]) -> None:
    """Parked tasks queue with ``async with`` callers (the same queue as ``with``): nobody
    overtakes anybody, so nobody starves; a newcomer goes to the back."""

    async def scenario() -> list[int]:
        api = Limiter(concurrency=1)
        api.acquire_nowait()  # held: everyone below has to queue
        gates = _gates(api)
        served: list[int] = []

        async def blocked(k: int) -> None:
            await api.acquire_async()
            served.append(k)
            await asyncio.sleep(0)
            api.release()

        callers = []
        for k, kind in enumerate(kinds):
            if kind == "task":
                assert not gates.take(k, (api,))
            else:
                callers.append(asyncio.create_task(blocked(k)))
                await asyncio.sleep(0)  # it is queued now
        api.release()
        late = len(kinds)
        assert not gates.take(late, (api,))  # arrives last, served last
        ready: list[int] = []
        for _ in range(50 * (late + 1)):  # the driver's loop, one step per loop iteration
            if len(served) == late + 1:
                break
            await asyncio.sleep(0)
            gates.reopen(ready.append)
            for i in ready:
                if gates.take(i, (api,)):
                    served.append(i)
                    gates.release(i, None)
            ready.clear()
        await asyncio.wait_for(asyncio.gather(*callers), WAIT)
        assert api.statistics() == LimiterStatistics(holders=0, waiting=0, granted=late + 2)
        return served

    assert asyncio.run(scenario()) == list(range(len(kinds) + 1))


def test_a_sequential_task_can_take_the_limiter_its_own_parked_tasks_wait_for() -> None:
    """A sequential run's tasks wait in the limiter's queue, and the run's own thread runs
    the task that then blocks in ``with limiter:``: it must not wait behind them."""
    api = Limiter(concurrency=1, name="api")
    holder_in, holder_out = threading.Event(), threading.Event()

    def hold() -> None:
        with api:
            holder_in.set()
            assert holder_out.wait(WAIT)

    holder = threading.Thread(target=hold)
    holder.start()
    assert holder_in.wait(WAIT)

    def inline() -> str:
        holder_out.set()  # the holder leaves once this task waits... in the queue's order
        with api:
            return "inline"

    wf = Workflow("w")
    wf.add_task(Task(name="parked", fn=lambda: "parked", limits=[api]))
    wf.add_task(Task(name="inline", fn=inline))
    run = SequentialExecutor().execute(wf)
    holder.join(WAIT)
    assert run.results == {"parked": "parked", "inline": "inline"}
    assert api.statistics() == LimiterStatistics(holders=0, waiting=0, granted=3)


@pytest.mark.parametrize("kind", ["rate", "slot"])
@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: ThreadedExecutor(max_workers=3), id="threaded"),
        pytest.param(lambda: AsyncExecutor(max_workers=3), id="async"),
    ],
)
def test_a_stopping_runs_parked_task_leaves_the_queue_at_once(kind: str, make: Any) -> None:
    """A run stops (fail-fast) while one of its tasks is parked at the head of a shared
    limiter's queue and another call of it still runs: the parked task will never start, so
    a caller behind it (another run's thread) is served now, not once the run has ended.

    ``rate``: the parked task waits for a token (spent by the task that fails), due a minute
    later on the limiter's injected clock; nobody releases anything to wake the queue.
    ``slot``: the failing task's release woke the parked task just before the run stopped;
    the slot is free, but a stopping run takes nothing more."""
    if kind == "rate":
        api = Limiter(rate=1, per=60.0, clock=FakeClock(), name="api")
    else:
        api = Limiter(concurrency=1, name="api")
    parked, let_go, served = threading.Event(), threading.Event(), threading.Event()

    def fails() -> None:
        raise ValueError("boom")

    def blocker() -> str:
        parked.set()  # sent after `parked` was refused (ready order): it waits at the head
        assert let_go.wait(WAIT)
        return "done"

    wf = Workflow("w")
    wf.add_task(Task(name="fails", fn=fails, limits=[api]))
    wf.add_task(Task(name="parked", fn=lambda: "never", limits=[api]))
    wf.add_task(Task(name="blocker", fn=blocker))
    errors: list[WorkflowFailedError] = []

    def execute() -> None:
        try:
            make().execute(wf)
        except WorkflowFailedError as error:
            errors.append(error)

    def other_caller() -> None:
        api.acquire()  # queued behind `parked`, unless it has left already
        served.set()
        api.release()

    run_thread = threading.Thread(target=execute)
    run_thread.start()
    try:
        assert parked.wait(WAIT)
        caller = threading.Thread(target=other_caller)
        caller.start()
        assert served.wait(WAIT)  # while the run still waits for `blocker`
        assert api.statistics().waiting == 0
    finally:
        let_go.set()
        run_thread.join(WAIT)
    caller.join(WAIT)
    assert len(errors) == 1
    run = errors[0].run
    assert run is not None
    assert run.status("parked") is TaskStatus.CANCELLED
    assert run.status("blocker") is TaskStatus.COMPLETED
    assert api.statistics() == LimiterStatistics(holders=0, waiting=0, granted=2)


@settings(max_examples=30, deadline=None)
@given(mine=st.lists(st.booleans(), min_size=1, max_size=10))
def test_a_stopping_run_leaves_the_queue_and_the_others_keep_their_order(
    mine: list[bool],
) -> None:
    """Two runs' tasks queue in any interleaving; one run stops: all its tasks leave the
    queue at once, and the other's are still served first come, first served."""
    api = Limiter(concurrency=1, name="api")
    api.acquire_nowait()  # held: everyone below has to queue
    stopping = [False]
    stopped = Gates({api}, lambda: stopping[0])
    stopped.open(lambda: None)
    other = _gates(api)
    for k, is_mine in enumerate(mine):
        assert not (stopped if is_mine else other).take(k, (api,))
    stopping[0] = True
    stopped.stop()
    assert api.statistics().waiting == mine.count(False)
    api.release()
    expected = [k for k, is_mine in enumerate(mine) if not is_mine]
    served: list[int] = []
    ready: list[int] = []
    for _ in range(2 * len(mine)):  # the other run's driver, one step at a time
        other.reopen(ready.append)
        for i in ready:
            if other.take(i, (api,)):
                served.append(i)
                other.release(i, None)
        ready.clear()
    assert served == expected
    assert api.statistics() == LimiterStatistics(holders=0, waiting=0, granted=len(expected) + 1)
