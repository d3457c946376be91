"""AsyncExecutor as a concurrent.futures-style pool: submit, map, as_completed, shutdown."""

from __future__ import annotations

import asyncio
import itertools
import threading
from typing import TYPE_CHECKING, Any

import pytest

from flowweaver import (
    AsyncExecutor,
    ConfigurationError,
    EventLoopError,
    ExecutorShutdownError,
    Task,
    Workflow,
)

from .conftest import WAIT, Recorder, run, settle

if TYPE_CHECKING:
    from collections.abc import Iterator


class Gated:
    """An async function whose calls wait for the test to open their gate."""

    def __init__(self) -> None:
        self.gates: dict[Any, asyncio.Event] = {}
        self.running: set[Any] = set()
        self.peak = 0
        self.started = Recorder()
        self.cancelled = Recorder()

    def open(self, *keys: Any) -> None:
        for key in keys:
            self.gates.setdefault(key, asyncio.Event()).set()

    async def __call__(self, key: Any) -> Any:
        self.started(key)
        self.running.add(key)
        self.peak = max(self.peak, len(self.running))
        try:
            await self.gates.setdefault(key, asyncio.Event()).wait()
        except asyncio.CancelledError:
            self.cancelled(key)
            raise
        finally:
            self.running.discard(key)
        return key * 10


def test_submit_and_await_the_result() -> None:
    def blocking(x: int) -> tuple[int, bool]:
        return x + 1, threading.current_thread() is threading.main_thread()

    async def fetch(x: int) -> str:
        await asyncio.sleep(0)
        return f"page {x}"

    async def main() -> None:
        async with AsyncExecutor(max_workers=2) as executor:
            future = executor.submit(fetch, 1)
            assert await future.result() == "page 1"
            assert await executor.submit(fetch, 2) == "page 2"  # awaiting the future itself
            assert await executor.submit(blocking, 1) == (2, False)  # sync: on a thread
            assert await executor.submit(lambda: fetch(3)) == "page 3"  # awaitable result
            assert future.done() and not future.cancelled() and future.exception() is None
            assert future.sequence_id == 0
            assert repr(future) == "<AsyncFuture #0 done>"

    run(main())


def test_at_most_max_workers_calls_run_at_once() -> None:
    gated = Gated()

    async def main() -> None:
        async with AsyncExecutor(max_workers=3) as executor:
            futures = [executor.submit(gated, i) for i in range(10)]
            await settle()
            assert gated.started.items == [0, 1, 2]
            gated.open(*range(10))
            assert [await f for f in futures] == [i * 10 for i in range(10)]
        assert gated.peak == 3

    run(main())


def test_a_failure_is_raised_by_result() -> None:
    async def boom(x: int) -> int:
        raise ValueError(f"bad {x}")

    async def main() -> None:
        async with AsyncExecutor() as executor:
            future = executor.submit(boom, 4)
            with pytest.raises(ValueError, match="bad 4"):
                await future.result()
            assert isinstance(future.exception(), ValueError)

    run(main())


def test_result_timeout_does_not_cancel_the_call() -> None:
    gated = Gated()

    async def main() -> None:
        async with AsyncExecutor() as executor:
            future = executor.submit(gated, 1)
            with pytest.raises(TimeoutError):
                await future.result(timeout=0.001)
            assert not future.done()
            gated.open(1)
            assert await future.result() == 10

    run(main())


def test_cancel_a_queued_or_running_call() -> None:
    gated = Gated()

    async def main() -> None:
        async with AsyncExecutor(max_workers=1) as executor:
            running = executor.submit(gated, 1)
            queued = executor.submit(gated, 2)
            await settle()
            assert queued.cancel() and running.cancel()
            await settle()
            assert running.cancelled() and queued.cancelled()
            with pytest.raises(asyncio.CancelledError):
                await queued
        assert gated.started.items == [1]  # the queued call never started
        assert gated.cancelled.items == [1]

    run(main())


def test_map_yields_in_input_order() -> None:
    gated = Gated()

    async def main() -> list[int]:
        async with AsyncExecutor(max_workers=5) as executor:
            results = executor.map(gated, range(5))
            await settle()
            gated.open(4, 3, 2, 1)  # all but the first finish
            await settle()
            gated.open(0)
            return [value async for value in results]

    assert run(main()) == [0, 10, 20, 30, 40]


def test_map_zips_several_iterables() -> None:
    async def add(a: int, b: int) -> int:
        return a + b

    async def main() -> list[int]:
        async with AsyncExecutor() as executor:
            return [v async for v in executor.map(add, [1, 2, 3], [10, 20])]

    assert run(main()) == [11, 22]


def test_map_over_an_endless_iterable_keeps_a_bounded_number_in_flight() -> None:
    submitted = Recorder()

    def numbers() -> Iterator[int]:
        for i in itertools.count():
            submitted(i)
            yield i

    async def square(x: int) -> int:
        await asyncio.sleep(0)
        return x * x

    async def main() -> list[int]:
        values = []
        async with AsyncExecutor(max_workers=4) as executor:
            async for value in executor.map(square, numbers()):
                values.append(value)
                assert len(submitted.items) <= len(values) + 8  # 2 * max_workers ahead
                if len(values) == 100:
                    break
            await settle()
        return values

    assert run(main()) == [i * i for i in range(100)]
    assert len(submitted.items) <= 100 + 8


def test_map_max_concurrency_bounds_what_runs() -> None:
    gated = Gated()

    async def main() -> None:
        async with AsyncExecutor(max_workers=10) as executor:
            results = executor.map(gated, range(6), max_concurrency=2)
            first = asyncio.ensure_future(anext(results))
            await settle()
            assert gated.started.items == [0, 1]
            gated.open(*range(6))
            assert await first == 0
            assert [v async for v in results] == [10, 20, 30, 40, 50]
        assert gated.peak == 2
        with pytest.raises(ConfigurationError) as bad:
            executor.map(gated, [1], max_concurrency=0)
        assert str(bad.value) == "map(): max_concurrency must be an int >= 1 or None, got 0"

    run(main())


def test_map_raises_the_first_failure_in_order_and_cancels_the_rest() -> None:
    gated = Gated()

    async def picky(x: int) -> int:
        if x == 1:
            raise KeyError("one")
        return await gated(x)  # type: ignore[no-any-return]

    async def main() -> None:
        async with AsyncExecutor(max_workers=4) as executor:
            results = executor.map(picky, range(4))
            gated.open(0)
            assert await anext(results) == 0
            with pytest.raises(KeyError):
                await anext(results)
            await settle()
        assert sorted(gated.cancelled.items) == [2, 3]  # type: ignore[type-var]

    run(main())


def test_map_timeout_counts_from_the_call() -> None:
    gated = Gated()

    async def main() -> None:
        async with AsyncExecutor() as executor:
            with pytest.raises(TimeoutError):
                async for _ in executor.map(gated, [1, 2], timeout=0.001):
                    pass
            await settle()
        assert sorted(gated.cancelled.items) == [1, 2]  # type: ignore[type-var]

    run(main())


def test_as_completed_yields_in_completion_order() -> None:
    gated = Gated()

    async def main() -> list[Any]:
        order = []
        async with AsyncExecutor() as executor:
            futures = [executor.submit(gated, i) for i in range(3)]
            completed = executor.as_completed([*futures, futures[0]])  # each future once
            for key in (2, 0, 1):
                gated.open(key)
                future = await anext(completed)
                order.append(await future.result())
            with pytest.raises(StopAsyncIteration):
                await anext(completed)
        return order

    assert run(main()) == [20, 0, 10]


def test_as_completed_timeout() -> None:
    gated = Gated()

    async def main() -> None:
        async with AsyncExecutor() as executor:
            future = executor.submit(gated, 1)
            with pytest.raises(TimeoutError):
                async for _ in executor.as_completed([future], timeout=0.001):
                    pass
            gated.open(1)

    run(main())


def test_shutdown_refuses_new_calls_and_waits_for_running_ones() -> None:
    gated = Gated()

    async def main() -> None:
        executor = AsyncExecutor(max_workers=1)
        running = executor.submit(gated, 1)
        queued = executor.submit(gated, 2)
        await settle()
        closing = asyncio.ensure_future(executor.shutdown(cancel_futures=True))
        await settle()
        assert queued.cancelled() and not closing.done()
        with pytest.raises(ExecutorShutdownError) as refused:
            executor.submit(gated, 3)
        assert str(refused.value) == "cannot submit to an AsyncExecutor that was shut down"
        gated.open(1)
        await closing
        assert await running == 10

    run(main())


def test_shutdown_without_waiting_frees_the_threads_once_the_last_call_ends() -> None:
    release = threading.Event()

    def blocked(x: int) -> int:
        release.wait(WAIT)
        return x

    def pool_threads() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t.name.startswith("flowweaver-async-pool")]

    async def main() -> None:
        executor = AsyncExecutor(max_workers=2)
        futures = [executor.submit(blocked, i) for i in range(2)]
        await settle()
        threads = pool_threads()
        assert len(threads) == 2
        executor.shutdown(wait=False)
        release.set()
        assert [await f for f in futures] == [0, 1]
        for thread in threads:  # told to stop when the pool went idle; they end on their own
            await asyncio.to_thread(thread.join, WAIT)
        assert not any(t.is_alive() for t in threads)

    run(main())


def test_shutdown_need_not_be_awaited_and_workflows_still_run() -> None:
    executor = AsyncExecutor()
    executor.shutdown()  # nothing in flight: nothing to wait for, and no warning
    wf = Workflow("w")
    wf.add_task(Task(name="a", fn=lambda: 5))
    assert executor.execute(wf).result("a") == 5


def test_leaving_async_with_on_an_error_cancels_the_calls() -> None:
    gated = Gated()

    async def body() -> None:
        async with AsyncExecutor(max_workers=2) as executor:
            executor.submit(gated, 1)
            executor.submit(gated, 2)
            executor.submit(gated, 3)
            await settle()
            1 / 0  # noqa: B018

    async def main() -> None:
        with pytest.raises(ZeroDivisionError):
            await body()
        assert asyncio.all_tasks() == {asyncio.current_task()}

    run(main())
    assert gated.started.items == [1, 2]
    assert sorted(gated.cancelled.items) == [1, 2]  # type: ignore[type-var]


def test_submit_needs_a_running_loop() -> None:
    with pytest.raises(EventLoopError) as info:
        AsyncExecutor().submit(print, 1)
    assert str(info.value) == (
        "AsyncExecutor.submit() needs a running event loop: call it from a coroutine "
        "(use execute() to run a workflow from sync code)"
    )


def test_a_second_async_with_opens_a_fresh_pool() -> None:
    async def inc(x: int) -> int:
        return x + 1

    async def main() -> list[int]:
        executor = AsyncExecutor(max_workers=2)
        async with executor:
            first = await executor.submit(inc, 1)
        with pytest.raises(ExecutorShutdownError):
            executor.submit(inc, 1)  # shut down between blocks
        async with executor:
            second = await executor.submit(inc, 2)
        return [first, second]

    assert run(main()) == [2, 3]
