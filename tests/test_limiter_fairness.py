"""``Task(limits=...)`` among other callers: all or nothing, first come first served."""

from __future__ import annotations

import asyncio
import threading
import time

from hypothesis import given, settings
from hypothesis import strategies as st

from flowweaver import (
    Limiter,
    LimiterStatistics,
    SequentialExecutor,
    Task,
    TaskStatus,
    ThreadedExecutor,
    Workflow,
)
from flowweaver._gates import Gates

from .conftest import WAIT, FakeClock


def _gates(*limiters: Limiter) -> Gates:
    gates = Gates(set(limiters), time.monotonic)
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
