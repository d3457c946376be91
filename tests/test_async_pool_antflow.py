"""AntFlow 0.10's pool API: awaitable map, map_iter, per-call retries and limits, wait()."""

from __future__ import annotations

import asyncio
import threading

import pytest

from flowweaver import (
    AsyncExecutor,
    ConfigurationError,
    ExecutionError,
    Limiter,
    MapResults,
    WaitStrategy,
)

from .conftest import FakeClock, run, settle
from .test_async_pool import Gated


class Flaky:
    """Fails ``failures`` times per key with a fresh error each time, then succeeds."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls: dict[int, int] = {}
        self.errors: list[BaseException] = []

    async def __call__(self, key: int) -> int:
        await asyncio.sleep(0)
        return self.sync(key)

    def sync(self, key: int) -> int:
        n = self.calls[key] = self.calls.get(key, 0) + 1
        if n <= self.failures:
            error = ValueError(f"{key} attempt {n}")
            self.errors.append(error)
            raise error
        return key * 2


# --- map: awaitable and async-iterable ---------------------------------------------------------


def test_map_can_be_awaited_for_a_list_or_iterated() -> None:
    async def double(x: int) -> int:
        await asyncio.sleep(0)
        return 2 * x

    async def main() -> tuple[list[int], list[int], list[int]]:
        async with AsyncExecutor(max_workers=3) as executor:
            results = executor.map(double, range(10))
            assert isinstance(results, MapResults)
            as_list = await results
            streamed = [v async for v in executor.map(double, range(5))]
            via_iter = [v async for v in executor.map_iter(double, range(3))]
            return as_list, streamed, via_iter

    assert run(main()) == ([2 * i for i in range(10)], [0, 2, 4, 6, 8], [0, 2, 4])


def test_map_is_single_use() -> None:
    async def ident(x: int) -> int:
        return x

    async def main() -> None:
        async with AsyncExecutor() as executor:
            results = executor.map(ident, [1, 2])
            assert await results == [1, 2]
            with pytest.raises(ExecutionError) as again:
                await results
            assert str(again.value) == (
                "the results of AsyncExecutor.map() can be consumed once (awaited, or "
                "iterated); call map() again for another pass"
            )
            with pytest.raises(ExecutionError):
                results.__aiter__()
            streamed = executor.map(ident, [1, 2, 3])
            assert await anext(streamed) == 1
            assert [v async for v in streamed] == [2, 3]  # the same pass, continued
            with pytest.raises(ExecutionError):
                await streamed
            assert isinstance(again.value, RuntimeError)

    run(main())


def test_map_timeout_is_per_result() -> None:
    """Each result gets ``timeout`` from when map starts waiting for it: time the consumer
    spends between results does not count (a deadline from the call would run out here)."""

    async def ident(x: int) -> int:
        return x

    async def main() -> list[int]:
        seen = []
        async with AsyncExecutor() as executor:
            async for value in executor.map(ident, range(3), timeout=0.05):
                seen.append(value)
                await asyncio.sleep(0.08)  # the consumer is slow, not the calls
        return seen

    assert run(main()) == [0, 1, 2]


def test_map_timeout_of_one_result_cancels_the_rest() -> None:
    gated = Gated()

    async def main() -> None:
        async with AsyncExecutor() as executor:
            gated.open(0)
            results = executor.map(gated, [0, 1, 2], timeout=0.01)
            with pytest.raises(TimeoutError):
                await results
            await settle()
        assert sorted(gated.cancelled.items) == [1, 2]  # type: ignore[type-var]

    run(main())


# --- per-call retries and semaphores -----------------------------------------------------------


def test_submit_retries_with_exponential_waits_on_the_clock() -> None:
    clock = FakeClock()
    flaky = Flaky(failures=3)

    async def main() -> int:
        async with AsyncExecutor(clock=clock) as executor:
            return await executor.submit(flaky, 5, retries=3, retry_delay=0.5)

    assert run(main()) == 10
    assert clock.sleeps == [0.5, 1.0, 2.0]  # retry_delay * 2 ** (n - 1)
    assert flaky.calls == {5: 4}


def test_submit_out_of_retries_raises_the_original_exception() -> None:
    clock = FakeClock()
    flaky = Flaky(failures=10)

    async def main() -> None:
        async with AsyncExecutor(clock=clock) as executor:
            future = executor.submit(flaky.sync, 1, retries=2)  # a sync function, on a thread
            with pytest.raises(ValueError) as info:
                await future
            assert info.value is flaky.errors[-1]  # the last attempt's own error, no wrapper
            assert future.exception() is flaky.errors[-1]

    run(main())
    assert clock.sleeps == [0.1, 0.2]
    assert flaky.calls == {1: 3}


def test_submit_without_retries_runs_once() -> None:
    clock = FakeClock()
    flaky = Flaky(failures=1)

    async def main() -> None:
        async with AsyncExecutor(clock=clock) as executor:
            with pytest.raises(ValueError, match="1 attempt 1"):
                await executor.submit(flaky, 1)

    run(main())
    assert clock.sleeps == [] and flaky.calls == {1: 1}


def test_map_retries_each_call() -> None:
    clock = FakeClock()
    flaky = Flaky(failures=1)

    async def main() -> list[int]:
        async with AsyncExecutor(max_workers=2, clock=clock) as executor:
            return await executor.map(flaky, range(4), retries=1, retry_delay=0.25)

    assert run(main()) == [0, 2, 4, 6]
    assert clock.sleeps == [0.25] * 4
    assert flaky.calls == dict.fromkeys(range(4), 2)


@pytest.mark.parametrize("kind", ["asyncio", "limiter"])
def test_semaphore_bounds_calls_and_is_not_held_while_waiting_to_retry(kind: str) -> None:
    gated = Gated()
    semaphore = asyncio.Semaphore(2) if kind == "asyncio" else Limiter(concurrency=2)
    held_during_wait: list[bool] = []

    class Clock(FakeClock):
        async def sleep_async(self, seconds: float) -> None:
            if isinstance(semaphore, Limiter):
                held_during_wait.append(semaphore.statistics().holders == 2)
            else:
                held_during_wait.append(semaphore.locked())
            await super().sleep_async(seconds)

    failed_once: set[int] = set()

    async def call(key: int) -> int:
        if key not in failed_once:
            failed_once.add(key)
            raise OSError(key)
        return await gated(key)  # type: ignore[no-any-return]

    async def main() -> list[int]:
        async with AsyncExecutor(max_workers=10, clock=Clock()) as executor:
            futures = [executor.submit(call, k, retries=1, semaphore=semaphore) for k in range(6)]
            await settle()
            assert len(gated.running) == 2  # six pool workers free, two semaphore slots
            gated.open(*range(6))
            return [await f for f in futures]

    assert run(main()) == [0, 10, 20, 30, 40, 50]
    assert gated.peak == 2
    assert len(held_during_wait) == 6 and not any(held_during_wait)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"retries": -1}, "submit(): retries must be an int >= 0, got -1"),
        ({"retries": 1.5}, "submit(): retries must be an int >= 0, got 1.5"),
        ({"retry_delay": "1"}, "submit(): retry_delay must be a finite number >= 0, got '1'"),
        (
            {"semaphore": 3},
            "submit(): semaphore must be an async context manager (an asyncio.Semaphore, a "
            "Limiter) or None, got 3",
        ),
    ],
)
def test_bad_retry_and_semaphore_arguments(kwargs: dict[str, object], message: str) -> None:
    async def ident(x: int) -> int:
        return x

    async def main() -> None:
        async with AsyncExecutor() as executor:
            with pytest.raises(ConfigurationError) as info:
                executor.submit(ident, 1, **kwargs)  # type: ignore[call-overload]
            assert str(info.value) == message
            with pytest.raises(ConfigurationError, match=r"^map\(\): retries must be"):
                executor.map(ident, [1], retries=-2)

    run(main())


# --- wait ----------------------------------------------------------------------------------


def test_wait_all_completed() -> None:
    gated = Gated()

    async def main() -> None:
        async with AsyncExecutor() as executor:
            futures = [executor.submit(gated, k) for k in range(3)]
            waiting = asyncio.ensure_future(executor.wait(futures))
            gated.open(0, 1)
            await settle()
            assert not waiting.done()
            gated.open(2)
            done, pending = await waiting
            assert done == set(futures) and pending == set()
            assert await executor.wait([]) == (set(), set())

    run(main())


@pytest.mark.parametrize(
    "strategy", [WaitStrategy.FIRST_COMPLETED, "FIRST_COMPLETED", asyncio.FIRST_COMPLETED]
)
def test_wait_first_completed_cancels_nothing(strategy: object) -> None:
    gated = Gated()

    async def main() -> None:
        async with AsyncExecutor() as executor:
            futures = [executor.submit(gated, k) for k in range(3)]
            await settle()
            gated.open(1)
            done, pending = await executor.wait(futures, return_when=strategy)  # type: ignore[arg-type]
            assert done == {futures[1]} and pending == {futures[0], futures[2]}
            assert not any(f.cancelled() for f in futures)
            gated.open(0, 2)

    run(main())


def test_wait_first_exception() -> None:
    gated = Gated()

    async def boom() -> None:
        await asyncio.sleep(0)
        raise KeyError("x")

    async def main() -> None:
        async with AsyncExecutor() as executor:
            ok = executor.submit(gated, 0)
            gated.open(0)
            await ok
            slow = executor.submit(gated, 1)
            bad = executor.submit(boom)
            done, pending = await executor.wait(
                [ok, slow, bad], return_when=WaitStrategy.FIRST_EXCEPTION
            )
            assert done == {ok, bad} and pending == {slow}
            gated.open(1)
            # no failure at all: FIRST_EXCEPTION waits for everything
            a, b = executor.submit(gated, 2), executor.submit(gated, 3)
            waiting = asyncio.ensure_future(
                executor.wait([a, b], return_when=WaitStrategy.FIRST_EXCEPTION)
            )
            gated.open(2)
            await settle()
            assert not waiting.done()
            gated.open(3)
            assert await waiting == ({a, b}, set())

    run(main())


def test_wait_timeouts_follow_antflow() -> None:
    """ALL_COMPLETED raises TimeoutError; the other strategies return what is done."""
    gated = Gated()

    async def main() -> None:
        async with AsyncExecutor() as executor:
            futures = [executor.submit(gated, k) for k in range(2)]
            gated.open(0)
            await settle()
            with pytest.raises(TimeoutError):
                await executor.wait(futures, timeout=0.01)
            for strategy in (WaitStrategy.FIRST_EXCEPTION, WaitStrategy.FIRST_COMPLETED):
                slow = [futures[1]]
                assert await executor.wait(slow, timeout=0.01, return_when=strategy) == (
                    set(),
                    set(slow),
                )
            assert not futures[1].cancelled()
            gated.open(1)
            done, _ = await executor.wait(futures, timeout=5)
            assert done == set(futures)

    run(main())


def test_wait_bad_arguments() -> None:
    async def main() -> None:
        async with AsyncExecutor() as executor:
            with pytest.raises(ConfigurationError) as bad:
                await executor.wait([], return_when="SOMETIME")
            assert str(bad.value) == "wait(): return_when must be a WaitStrategy, got 'SOMETIME'"
            with pytest.raises(ConfigurationError, match=r"wait\(\) needs AsyncFutures, got 3"):
                await executor.wait([3])  # type: ignore[arg-type]
            with pytest.raises(ConfigurationError, match="timeout must be a finite number"):
                await executor.wait([], timeout=-1)

    run(main())


def test_wait_from_another_thread_is_not_needed_but_results_still_come() -> None:
    """A sync call on the pool's threads finishing is seen by wait() on the loop."""
    release = threading.Event()

    def blocking() -> int:
        assert release.wait(10)
        return 1

    async def main() -> None:
        async with AsyncExecutor() as executor:
            future = executor.submit(blocking)
            waiting = asyncio.ensure_future(executor.wait([future]))
            await settle()
            release.set()
            done, pending = await asyncio.wait_for(waiting, 10)
            assert done == {future} and not pending

    run(main())
