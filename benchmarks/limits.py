"""Pull stages and call limits: what a hand-off costs, and how exact a call rate is.

* Pull stage — 3 stages x 10 workers, the middle stage ``pull=True``, against the same
  pipeline with an ordinary bounded queue in the middle, interleaved, best of several. With
  tasks that wait 0.5 ms (a short I/O call) the target is at least 0.9 of the queue
  pipeline's throughput, shown as time per item (ratio at most 1/0.9 = 1.11). With no-op
  tasks the figure is shown without a target: a hand-off costs at least one task switch per
  item (an upstream worker waits until a pull worker takes its item), where a queue lets a
  worker run up to 64 items between switches; that is the price of the guarantee.
* Call rate — a stage with ``call_rate=1000`` (per second) and 10 workers whose task enters
  ``rate_limit()``. The first window's 1,000 calls start at once (the window is empty); the
  next 5,000 calls must then take 5 s: measured from the grant of call 1,000 to the grant of
  call 6,000, on the injected clock (target within 2 %) and on the real one (within 10 %). The
  window's invariant means it can never be faster; the ratio shows how much slower.
* Limiter — one uncontended ``acquire()`` + ``release()`` of a limiter with a slot and a rate
  window, beside the same pair on a ``threading.Semaphore`` (a baseline, not a target); and of
  a slot-only limiter (issue 16's target: under 2 µs).
* Adaptive throttling — a simulated service that accepts 100 calls a second (on an injected
  clock, its capacity unknown to the limiter), called through a limiter of 500 a second for
  200 simulated seconds: the share of calls rejected after the first 10 % of the run with
  ``adaptive=True`` beside the same run without it (target: under 5 %), and the goodput as a
  share of the capacity (target: at least 90 %).
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from typing import TYPE_CHECKING

from flowweaver import Limiter, Pipeline, Stage, SystemClock, rate_limit

from ._harness import Row, best_of

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

WORKERS = 10
IO_SECONDS = 0.0005
RATE = 1000
BURST = RATE  # the first window's calls, granted at once
CALLS = 5000


async def step(x: int) -> int:
    return x + 1


async def io_step(x: int) -> int:
    await asyncio.sleep(IO_SECONDS)  # a short I/O call
    return x + 1


async def _pipeline(n: int, pull: bool, task: Callable[[int], Awaitable[int]]) -> int:
    pipeline = Pipeline(
        [
            Stage("A", WORKERS, [task]),
            Stage("B", WORKERS, [task], pull=pull),
            Stage("C", WORKERS, [task]),
        ]
    )
    return len(await pipeline.run(range(n)))


def pull_stage(n: int, repeat: int) -> list[Row]:
    rows = []
    io = f"{IO_SECONDS * 1e3:g} ms I/O tasks"
    for task, label, target in ((io_step, io, 1 / 0.9), (step, "no-op tasks", None)):

        def queue(task: Callable[[int], Awaitable[int]] = task) -> None:
            assert asyncio.run(_pipeline(n, False, task)) == n

        def pull(task: Callable[[int], Awaitable[int]] = task) -> None:
            assert asyncio.run(_pipeline(n, True, task)) == n

        base, ours = best_of(repeat, queue, pull)
        per = 1e6 / n
        note = f"vs the same pipeline with a queue ({n / base:,.0f} items/s)"
        rows.append(
            Row("limits", f"3×10 workers, pull middle stage, {label}, {n:,} items", ours * per,
                base * per, "µs/item", target,
                note + ("; ≥ 0.9 of it" if target else ": one task switch per hand-off")),
        )  # fmt: skip
    return rows


class VirtualClock:
    """An injected clock: sleeping moves time on at once."""

    def __init__(self) -> None:
        self.t = 0.0

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += seconds

    async def sleep_async(self, seconds: float) -> None:
        self.t += seconds
        await asyncio.sleep(0)


async def _rated(clock: VirtualClock | SystemClock) -> float:
    grants: list[float] = []

    async def call(x: int) -> int:
        async with rate_limit():
            grants.append(clock.now())
        return x

    stage = Stage("Api", WORKERS, [call], call_rate=RATE, call_rate_period=1.0)
    await Pipeline([stage], clock=clock).run(range(BURST + CALLS))
    return grants[BURST + CALLS - 1] - grants[BURST - 1]


def call_rate(real: bool) -> list[Row]:
    injected = asyncio.run(_rated(VirtualClock()))
    rows = [
        Row("limits", f"call_rate {RATE}/s, {CALLS:,} calls, injected clock", injected,
            CALLS / RATE, "s", 1.02, "after the first window's burst; never faster"),
    ]  # fmt: skip
    if real:
        measured = asyncio.run(_rated(SystemClock()))
        rows.append(
            Row("limits", f"call_rate {RATE}/s, {CALLS:,} calls, real clock", measured,
                CALLS / RATE, "s", 1.10, "after the first window's burst; never faster"),
        )  # fmt: skip
    return rows


def limiter_cost(n: int) -> list[Row]:
    limiter = Limiter(concurrency=10, rate=1e12, per=1.0)
    semaphore = threading.Semaphore(10)

    def ours() -> None:
        for _ in range(n):
            limiter.acquire()
            limiter.release()

    def base() -> None:
        for _ in range(n):
            semaphore.acquire()
            semaphore.release()

    slot_only = Limiter(concurrency=10)

    def slot() -> None:
        for _ in range(n):
            slot_only.acquire()
            slot_only.release()

    ours_s, base_s, slot_s = best_of(3, ours, base, slot)
    return [
        Row("limits", "Limiter(concurrency=10) acquire+release, uncontended", slot_s / n * 1e6,
            base_s / n * 1e6, "µs", None, "target under 2 µs; vs threading.Semaphore"),
        Row("limits", "Limiter acquire+release, uncontended", ours_s / n * 1e6,
            base_s / n * 1e6, "µs", None,
            "vs threading.Semaphore (a baseline, not a target)"),
    ]  # fmt: skip


class _SimClock:
    """Simulated time: sleeps return at once, having moved the clock."""

    def __init__(self) -> None:
        self.t = 0.0

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += seconds

    async def sleep_async(self, seconds: float) -> None:
        self.t += seconds


class _Throttled(Exception):
    pass


def _simulate(adaptive: bool, capacity: int = 100, seconds: float = 200.0) -> tuple[float, float]:
    """(goodput / capacity, share rejected) after the first 10 % of a simulated run."""
    clock = _SimClock()
    throttle: tuple[type[BaseException], ...] = (_Throttled,) if adaptive else ()
    api = Limiter(rate=5 * capacity, adaptive=adaptive, throttle_on=throttle, clock=clock)
    accepted: deque[float] = deque()
    late_ok = late_rejected = 0
    while clock.t < seconds:
        try:
            with api:
                now = clock.t
                while accepted and accepted[0] + 1.0 <= now:
                    accepted.popleft()
                ok = len(accepted) < capacity
                if now >= seconds * 0.1:
                    late_ok += ok
                    late_rejected += not ok
                if not ok:
                    raise _Throttled
                accepted.append(now)
        except _Throttled:
            pass
    return late_ok / (seconds * 0.9) / capacity, late_rejected / (late_ok + late_rejected)


def throttling() -> list[Row]:
    goodput, rejected = _simulate(adaptive=True)
    _, plain_rejected = _simulate(adaptive=False)
    return [
        Row("limits", "adaptive: share of calls rejected (vs not adaptive)", rejected * 100,
            plain_rejected * 100, "%", None, "target under 5 %, after the first 10 % of the run"),
        Row("limits", "adaptive: goodput, % of the service's capacity", goodput * 100, 100.0,
            "%", None, "target at least 90 %"),
    ]  # fmt: skip


def run(quick: bool) -> list[Row]:
    n = 10_000 if quick else 50_000
    return (
        pull_stage(n, 2 if quick else 5)
        + call_rate(real=not quick)
        + limiter_cost(100_000)
        + throttling()
    )
