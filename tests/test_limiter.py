"""The shared limiter core: slots, exact rate windows, FIFO waiters on threads and loops."""

from __future__ import annotations

import asyncio
import math
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowweaver import ConfigurationError, Limiter, Rate

from .conftest import FakeClock


class ManualClock:
    """A clock that only moves when the test says so; sleepers block until then."""

    def __init__(self) -> None:
        self.t = 0.0
        self.now_calls = 0
        self.sleepers = 0
        self.deadlines: list[float] = []
        self._cond = threading.Condition()

    def now(self) -> float:
        with self._cond:
            self.now_calls += 1
            return self.t

    def sleep(self, seconds: float) -> None:
        with self._cond:
            until = self.t + seconds
            self.sleepers += 1
            self.deadlines.append(until)
            self._cond.notify_all()
            self._cond.wait_for(lambda: self.t >= until, timeout=10)
            self.sleepers -= 1

    async def sleep_async(self, seconds: float) -> None:
        await asyncio.to_thread(self.sleep, seconds)

    def advance(self, seconds: float) -> None:
        with self._cond:
            self.t += seconds
            self._cond.notify_all()

    def wait_for_sleep_until(self, deadline: float) -> None:
        with self._cond:
            assert self._cond.wait_for(lambda: deadline in self.deadlines, timeout=10)


def window_sums_ok(grants: list[tuple[float, float]], rate: Rate) -> bool:
    """In every half-open interval [g, g + per) starting at a grant, at most rate.limit."""
    return all(
        sum(a for t, a in grants if g <= t < g + rate.per) <= rate.limit + 1e-9 for g, _ in grants
    )


# --- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"concurrency": 0}, "Limiter: concurrency must be an int >= 1, got 0"),
        ({"concurrency": 2.5}, "Limiter: concurrency must be an int >= 1, got 2.5"),
        ({"rate": 0}, "Limiter: rate must be a finite number > 0, got 0"),
        ({"rate": -1.0}, "Limiter: rate must be a finite number > 0, got -1.0"),
        ({"rate": 5, "per": 0}, "Limiter: per must be a finite number > 0, got 0"),
        ({"rate": True}, "Limiter: rate must be a positive number or a sequence of Rate, got True"),
        (
            {"rate": [(10, 1)]},
            "Limiter: rate must be a positive number or a sequence of Rate, got [(10, 1)]",
        ),
        ({"rate": []}, "Limiter: rate must be a positive number or a sequence of Rate, got []"),
        ({"name": 3}, "Limiter: name must be a str, got 3"),
        (
            {"name": "api", "concurrency": -1},
            "Limiter 'api': concurrency must be an int >= 1, got -1",
        ),
        ({"clock": object()}, "Limiter: clock must implement Clock, got <object"),
    ],
)
def test_bad_arguments_name_the_culprit(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        Limiter(**kwargs)  # type: ignore[arg-type]
    assert str(info.value).startswith(message)
    assert isinstance(info.value, ValueError)


def test_rate_and_amount_validation() -> None:
    with pytest.raises(
        ConfigurationError, match=r"^Rate: per must be a finite number > 0, got -2$"
    ):
        Rate(3, per=-2)
    lim = Limiter(rate=3, name="api")
    with pytest.raises(
        ConfigurationError,
        match=r"^Limiter\(name='api', rate=3/1s\): amount 4 can never fit a window of 3 per 1s$",
    ):
        lim.acquire(4)
    assert lim.has_capacity(4) is False
    with pytest.raises(ConfigurationError, match="amount must be a finite number >= 0, got -1"):
        lim.has_capacity(-1)


def test_repr_and_statistics() -> None:
    lim = Limiter(concurrency=2, rate=[Rate(10), Rate(500, per=60)], name="api")
    assert repr(lim) == "Limiter(name='api', concurrency=2, rate=10/1s, rate=500/60s)"
    with lim:
        assert lim.statistics().holders == 1
    stats = lim.statistics()
    assert (stats.holders, stats.waiting, stats.granted) == (0, 0, 1)


def test_release_without_acquire_is_an_error() -> None:
    lim = Limiter(concurrency=1)
    with pytest.raises(RuntimeError, match=r"release\(\) without a matching acquire"):
        lim.release()
    Limiter(rate=1).release()  # nothing is held by a rate-only permit


# --- peeks and non-blocking twins ------------------------------------------------------------


def test_has_capacity_peeks_without_taking() -> None:
    clock = FakeClock()
    lim = Limiter(rate=2, per=1.0, clock=clock)
    assert lim.has_capacity(2) and lim.has_capacity(2)
    assert lim.acquire_nowait() and lim.acquire_nowait()
    assert not lim.has_capacity() and not lim.acquire_nowait()
    assert lim.try_acquire() == pytest.approx(1.0)
    clock.t = 0.999
    assert not lim.has_capacity()
    clock.t = 1.0  # the first two tokens expire exactly one period after their grant
    assert lim.has_capacity(2)


def test_concurrency_slot_is_held_until_release() -> None:
    lim = Limiter(concurrency=1)
    assert lim.acquire_nowait()
    assert not lim.has_capacity()
    assert lim.try_acquire() == math.inf
    lim.release()
    assert lim.has_capacity()


# --- the properties, on the injected clock ---------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    limit=st.integers(1, 5),
    per=st.sampled_from([0.5, 1.0, 3.0]),
    steps=st.lists(st.tuples(st.floats(0, 2.0), st.integers(1, 5)), min_size=1, max_size=40),
)
def test_never_more_than_rate_in_any_window_sync(
    limit: int, per: float, steps: list[tuple[float, int]]
) -> None:
    clock = FakeClock()
    lim = Limiter(rate=[Rate(limit, per=per), Rate(limit * 2, per=per * 4)], clock=clock)
    grants: list[tuple[float, float]] = []
    for gap, amount in steps:
        clock.t += gap
        lim.acquire(min(amount, limit))
        grants.append((clock.t, min(amount, limit)))
    assert window_sums_ok(grants, Rate(limit, per=per))
    assert window_sums_ok(grants, Rate(limit * 2, per=per * 4))
    # and it never waited longer than needed: every wait ended on an expiry instant
    assert all(s > 0 for s in clock.sleeps)


@settings(max_examples=40, deadline=None)
@given(
    limit=st.integers(1, 4),
    per=st.sampled_from([0.5, 1.0, 2.0]),
    callers=st.lists(st.tuples(st.floats(0, 1.0), st.integers(1, 4)), min_size=1, max_size=25),
)
def test_never_more_than_rate_in_any_window_many_coroutines(
    limit: int, per: float, callers: list[tuple[float, int]]
) -> None:
    clock = FakeClock()
    lim = Limiter(rate=limit, per=per, clock=clock)
    grants: list[tuple[float, float]] = []

    async def caller(start: float, amount: int) -> None:
        await clock.sleep_async(start)
        await lim.acquire_async(amount)
        grants.append((clock.now(), amount))  # no await in between: the grant instant

    async def main() -> None:
        await asyncio.gather(*(caller(s, min(a, limit)) for s, a in callers))

    asyncio.run(asyncio.wait_for(main(), 30))
    assert len(grants) == len(callers)
    assert window_sums_ok(grants, Rate(limit, per=per))


@settings(max_examples=15, deadline=None)
@given(concurrency=st.integers(1, 4), threads=st.integers(1, 8), tasks=st.integers(0, 6))
def test_never_more_than_concurrency_holders_threads_and_loop(
    concurrency: int, threads: int, tasks: int
) -> None:
    lim = Limiter(concurrency=concurrency)
    guard = threading.Lock()
    inside = 0
    peak = 0
    done = 0

    def enter() -> None:
        nonlocal inside, peak
        with guard:
            inside += 1
            peak = max(peak, inside)

    def leave() -> None:
        nonlocal inside, done
        with guard:
            inside -= 1
            done += 1

    def thread_body() -> None:
        for _ in range(20):
            with lim:
                enter()
                leave()

    async def loop_body() -> None:
        async def one() -> None:
            for _ in range(20):
                async with lim:
                    enter()
                    await asyncio.sleep(0)
                    leave()

        await asyncio.gather(*(one() for _ in range(tasks)))

    workers = [threading.Thread(target=thread_body) for _ in range(threads)]
    for w in workers:
        w.start()
    asyncio.run(asyncio.wait_for(loop_body(), 30))
    for w in workers:
        w.join(30)
    assert done == 20 * (threads + tasks)
    assert peak <= concurrency
    assert lim.statistics() == type(lim.statistics())(0, 0, done)


def test_waiters_use_no_cpu_and_are_served_in_order() -> None:
    """Blocked callers sleep on events and the head sleeps on the clock until the exact expiry;
    nothing polls: the clock is not read while they wait."""
    clock = ManualClock()
    lim = Limiter(concurrency=2, rate=2, per=10.0, clock=clock)
    order: list[int] = []
    lim.acquire()
    lim.acquire()  # both tokens of the window spent at t=0, both slots held
    lim.release()  # one slot free: only the rate blocks now

    def waiter(i: int) -> None:
        lim.acquire()
        order.append(i)
        lim.release()

    first = threading.Thread(target=waiter, args=(0,))
    first.start()
    clock.wait_for_sleep_until(10.0)  # the head sleeps until the window's first expiry
    rest = [threading.Thread(target=waiter, args=(i,)) for i in (1, 2)]
    for queued, t in enumerate(rest, start=2):
        t.start()
        for _ in range(10_000):  # observing the queue form (bounded), not synchronising
            if lim.statistics().waiting >= queued:
                break
            threading.Event().wait(0.001)
        assert lim.statistics().waiting == queued
    calls = clock.now_calls
    threading.Event().wait(0.05)  # give a polling implementation the chance to show itself
    assert clock.now_calls == calls
    assert clock.sleepers == 1 and clock.deadlines == [10.0] and order == []
    clock.advance(10.0)  # both tokens expire: the head and the next one pass
    clock.wait_for_sleep_until(20.0)  # the third waits for the next expiry (t=20)
    assert sorted(order) == [0, 1]
    clock.advance(10.0)
    for t in [first, *rest]:
        t.join(10)
    assert order == [0, 1, 2]
    assert clock.deadlines == [10.0, 20.0]  # one sleep per expiry instant, nothing else


def test_a_big_request_is_not_starved_by_small_ones() -> None:
    clock = FakeClock()
    lim = Limiter(rate=4, per=1.0, clock=clock)
    log: list[tuple[str, float]] = []

    async def ask(tag: str, amount: int) -> None:
        await lim.acquire_async(amount)
        log.append((tag, clock.now()))

    async def main() -> None:
        await lim.acquire_async(3)
        big = asyncio.ensure_future(ask("big", 4))
        await asyncio.sleep(0)
        small = [asyncio.ensure_future(ask(f"s{i}", 1)) for i in range(3)]
        await asyncio.gather(big, *small)

    asyncio.run(asyncio.wait_for(main(), 10))
    assert log[0] == ("big", 1.0)  # the small ones could have fit at t=0 but queued behind it
    assert [t for _, t in log[1:]] == [2.0, 2.0, 2.0]


def test_cancelled_waiter_leaves_the_queue_and_wakes_the_next() -> None:
    lim = Limiter(concurrency=1)

    async def main() -> list[str]:
        got: list[str] = []
        await lim.acquire_async()

        async def ask(tag: str) -> None:
            async with lim:
                got.append(tag)

        a = asyncio.ensure_future(ask("a"))
        b = asyncio.ensure_future(ask("b"))
        await asyncio.sleep(0)
        assert lim.statistics().waiting == 2
        a.cancel()
        await asyncio.sleep(0)
        assert lim.statistics().waiting == 1
        lim.release()
        await b
        assert a.cancelled()
        return got

    assert asyncio.run(asyncio.wait_for(main(), 10)) == ["b"]
    assert lim.statistics().holders == 0


def test_shared_by_two_event_loops_and_a_thread() -> None:
    lim = Limiter(concurrency=1)
    guard = threading.Lock()
    inside = 0
    peak = 0

    async def use(n: int) -> None:
        nonlocal inside, peak
        for _ in range(n):
            async with lim:
                with guard:
                    inside += 1
                    peak = max(peak, inside)
                await asyncio.sleep(0)
                with guard:
                    inside -= 1

    def run_loop() -> None:
        asyncio.run(asyncio.wait_for(use(50), 30))

    loops = [threading.Thread(target=run_loop) for _ in range(2)]
    for t in loops:
        t.start()
    for _ in range(50):
        with lim, guard:
            inside += 1
            peak = max(peak, inside)
            inside -= 1
    for t in loops:
        t.join(30)
    assert peak == 1
    assert lim.statistics().granted == 150


def test_rate_waits_go_through_the_clock() -> None:
    clock = FakeClock()
    lim = Limiter(rate=1000, per=1.0, clock=clock)
    for _ in range(5000):
        lim.acquire()
    assert clock.t == pytest.approx(4.0, rel=0.02)  # 5,000 calls at 1,000/s: 4 s of waits
