"""One rule for what user code raises, everywhere it runs (``_calls.INTERRUPTS``).

``KeyboardInterrupt`` and ``SystemExit`` propagate; the worker's own cancellation stops it;
anything else — ``BaseException`` subclasses and a call's own ``CancelledError`` included — is
the failure of the task, item, pool call or observer that raised it. Never a hang.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import TYPE_CHECKING, Any

import pytest

from flowweaver import (
    AsyncExecutor,
    ConfigurationError,
    ItemCancelledError,
    Monitor,
    Pipeline,
    SequentialExecutor,
    Stage,
    StatusTracker,
    Task,
    ThreadedExecutor,
    Workflow,
    WorkflowFailedError,
)

from .conftest import WAIT, run

if TYPE_CHECKING:
    from flowweaver import TaskStatus, WorkflowRun


class Abort(BaseException):
    """Not an Exception, not an interrupt: a failure like any other."""


def abort_sync(x: int) -> int:
    if x == 0:
        raise Abort(f"abort {x}")
    return x


async def abort_async(x: int) -> int:
    return abort_sync(x)


# -- pipeline tasks ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("task", "executor"),
    [
        (abort_async, None),
        (abort_sync, None),  # the pipeline's own threads
        (abort_sync, "threaded"),  # a given executor
    ],
    ids=["async", "sync", "sync-on-executor"],
)
def test_a_base_exception_from_a_task_fails_only_that_item(task: Any, executor: Any) -> None:
    threads = ThreadedExecutor(2) if executor else None
    pipeline = Pipeline([Stage("S", 2, [task], task_attempts=2)], executor=threads)
    try:
        results = run(pipeline.run([0, 1, 2]))
    finally:
        if threads is not None:
            threads.shutdown()
    assert [r.value for r in results] == [1, 2]
    (failure,) = pipeline.get_error_summary().failed_items
    # A failure, not retried: the default retry_on is (Exception,), as for workflow tasks.
    assert (failure.item_id, failure.attempts, repr(failure.error)) == (0, 1, "Abort('abort 0')")


def test_a_tasks_own_cancelled_error_fails_only_that_item() -> None:
    async def cancels(x: int) -> int:
        raise asyncio.CancelledError  # not a cancellation of the worker

    pipeline = Pipeline([Stage("S", 1, [cancels, lambda x: x], task_attempts=1)])
    assert run(pipeline.run([1])) == []
    (failure,) = pipeline.get_error_summary().failed_items
    assert isinstance(failure.error, asyncio.CancelledError)


@pytest.mark.parametrize("interrupt", [KeyboardInterrupt, SystemExit])
def test_an_interrupt_from_a_task_stops_the_pipeline(interrupt: type[BaseException]) -> None:
    async def stop(x: int) -> int:
        raise interrupt

    pipeline = Pipeline([Stage("S", 1, [stop])])
    with pytest.raises(interrupt):
        asyncio.run(pipeline.run([1]))
    (failure,) = pipeline.get_error_summary().failed_items  # the item still ended, once
    assert isinstance(failure.error, ItemCancelledError)


# -- observers ---------------------------------------------------------------------------------


def test_a_base_exception_from_a_stage_callback_never_fails_the_item(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def on_success(item_id: Any, value: Any, meta: Any) -> None:
        raise Abort("hook")

    async def status(event: Any) -> None:
        raise Abort("tracker")

    tracker = StatusTracker(on_status_change=status)
    stage = Stage("S", 1, [abort_async], on_success=on_success)
    pipeline = Pipeline([stage], status_tracker=tracker)
    with caplog.at_level(logging.ERROR, logger="flowweaver"):
        results = run(pipeline.run([1, 2]))
    assert [r.value for r in results] == [1, 2]
    assert [r.getMessage() for r in caplog.records] == [
        "status tracker callback on_status_change raised; it is disabled for the rest of this run",
        "on_success of stage 'S' raised; it is disabled for the rest of this run",
    ]


def test_a_base_exception_from_a_dashboard_never_stops_the_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[str] = []

    class Board:
        async def on_start(self, pipeline: Any, total: int | None) -> None:
            raise Abort("start")

        def on_update(self, snapshot: Any) -> None:
            calls.append("update")

        def on_finish(self, results: Any, summary: Any) -> None:
            calls.append("finish")

    pipeline = Pipeline([Stage("S", 1, [abort_async])])
    with caplog.at_level(logging.ERROR, logger="flowweaver"):
        results = run(pipeline.run([1], custom_dashboard=Board()))
    assert [r.value for r in results] == [1]
    assert calls == ["update", "finish"]
    assert [r.getMessage() for r in caplog.records] == [
        "dashboard on_start raised; it is disabled for the rest of this run"
    ]


class Aborting(Monitor):
    def on_status_change(self, run: WorkflowRun, task_name: str, status: TaskStatus) -> None:
        raise Abort("monitor")


def test_a_base_exception_from_an_observer_never_changes_a_workflows_outcome(
    executor: Any, caplog: pytest.LogCaptureFixture
) -> None:
    async def on_change(name: str, status: TaskStatus) -> None:
        raise Abort("async callback")

    wf = Workflow("w")
    wf.add_task(Task(name="a", fn=lambda: 1, on_status_change=on_change))
    monitor = Aborting()
    with caplog.at_level(logging.ERROR, logger="flowweaver"):
        run_ = wf.execute(executor, monitors=[monitor])
    assert run_.results == {"a": 1}
    messages = sorted(r.getMessage() for r in caplog.records)
    assert messages == [
        f"monitor {monitor!r}.on_status_change raised; it is disabled for the rest of this run",
        "on_status_change of task 'a' raised; it is disabled for the rest of this run",
    ]


def test_await_safely_lets_its_own_cancellation_through() -> None:
    from flowweaver._events import await_safely

    disabled: list[str] = []
    started = asyncio.Event()

    async def slow() -> None:
        started.set()
        await asyncio.sleep(WAIT * 10)

    async def main() -> None:
        waiter = asyncio.ensure_future(
            await_safely(slow(), "observer %s", "x", on_error=lambda: disabled.append("x"))
        )
        await started.wait()
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter

    run(main())
    assert disabled == []  # being cancelled is not the observer's failure


# -- the AsyncExecutor pool ----------------------------------------------------------------------


def test_a_base_exception_from_a_pool_call_settles_its_future() -> None:
    async def main() -> None:
        async with AsyncExecutor(max_workers=2) as executor:
            for fn in (abort_sync, abort_async):
                future = executor.submit(fn, 0)
                with pytest.raises(Abort, match="abort 0"):
                    await future
                assert isinstance(future.exception(), Abort) and not future.cancelled()
            with pytest.raises(Abort, match="abort 0"):
                async for _ in executor.map(abort_sync, [1, 0, 2]):
                    pass

    run(main())


def first_of_nothing(*_: object) -> object:
    return next(iter([]))  # StopIteration: an asyncio future refuses to hold it


def test_stop_iteration_from_a_sync_call_on_the_event_loop_is_a_failure_not_a_hang() -> None:
    wf = Workflow("w")
    wf.add_task(Task(name="a", fn=first_of_nothing))
    with pytest.raises(WorkflowFailedError):
        run(AsyncExecutor(max_workers=2).execute_async(wf))
    assert wf.last_run is not None
    error = wf.last_run.error("a")
    # As PEP 479 does for a coroutine: a RuntimeError caused by the StopIteration.
    assert isinstance(error, RuntimeError) and isinstance(error.__cause__, StopIteration)

    async def pool() -> None:
        async with AsyncExecutor(max_workers=2) as executor:
            with pytest.raises(RuntimeError, match="task raised StopIteration"):
                await executor.submit(first_of_nothing)

    run(pool())
    pipeline = Pipeline([Stage("S", 1, [first_of_nothing], task_attempts=1)])
    assert run(pipeline.run([1])) == []
    (failure,) = pipeline.get_error_summary().failed_items
    assert isinstance(failure.error, RuntimeError)


def test_a_pool_calls_own_cancelled_error_is_its_failure() -> None:
    async def cancels() -> None:
        raise asyncio.CancelledError  # not a cancellation of the call

    async def main() -> None:
        async with AsyncExecutor() as executor:
            future = executor.submit(cancels)
            with pytest.raises(asyncio.CancelledError):
                await future
            assert not future.cancelled()
            assert isinstance(future.exception(), asyncio.CancelledError)

    run(main())


def test_an_interrupt_from_a_pool_call_propagates_and_cancels_its_future() -> None:
    futures: list[Any] = []
    release = threading.Event()

    def interrupt() -> None:
        raise KeyboardInterrupt

    async def main() -> None:
        executor = AsyncExecutor()
        futures.append(executor.submit(interrupt))
        await asyncio.sleep(WAIT)  # the interrupt ends the loop long before
        release.set()

    with pytest.raises(KeyboardInterrupt):
        asyncio.run(main())
    assert not release.is_set()
    assert futures[0].cancelled()


def test_a_raising_done_callback_is_logged_not_handed_to_the_loop(
    caplog: pytest.LogCaptureFixture,
) -> None:
    handled: list[object] = []
    seen: list[object] = []

    def broken(future: Any) -> None:
        raise Abort("callback")

    async def main() -> int:
        asyncio.get_running_loop().set_exception_handler(lambda loop, context: handled.append(1))
        async with AsyncExecutor() as executor:
            future = executor.submit(abort_async, 5)
            future.add_done_callback(broken)
            future.add_done_callback(seen.append)
            value: int = await future
            await asyncio.sleep(0)  # done callbacks run one loop iteration later
            return value

    with caplog.at_level(logging.ERROR, logger="flowweaver"):
        assert run(main()) == 5
    assert handled == []
    assert len(seen) == 1
    (record,) = caplog.records
    assert record.getMessage().startswith(f"done callback {broken!r} of <AsyncFuture #0 done>")


def test_the_pool_refuses_what_is_not_a_callable_or_a_future() -> None:
    async def main() -> None:
        async with AsyncExecutor() as executor:
            with pytest.raises(ConfigurationError) as not_callable:
                executor.submit(42)  # type: ignore[call-overload]
            with pytest.raises(ConfigurationError) as not_future:
                async for _ in executor.as_completed([42]):  # type: ignore[list-item]
                    pass
        assert str(not_callable.value) == "submit() needs a callable, got 42"
        assert str(not_future.value) == "as_completed() needs AsyncFutures, got 42"

    run(main())


def exits_on_three(x: int) -> int:
    if x == 3:
        raise GeneratorExit("closed")  # thrown into a coroutine, it would close the worker
    return x


@pytest.mark.parametrize("executor", [None, "threaded", "sequential"])
def test_generator_exit_from_a_sync_pipeline_task_fails_only_its_item(executor: Any) -> None:
    chosen = {None: None, "threaded": ThreadedExecutor(2), "sequential": SequentialExecutor()}
    where = chosen[executor]
    pipeline = Pipeline([Stage("S", 2, [exits_on_three], task_attempts=1)], executor=where)
    try:
        results = run(pipeline.run(range(10)))
    finally:
        if isinstance(where, ThreadedExecutor):
            where.shutdown()
    assert [r.id for r in results] == [0, 1, 2, 4, 5, 6, 7, 8, 9]
    (failure,) = pipeline.get_error_summary().failed_items
    # As for StopIteration: a RuntimeError caused by it, the same on every executor.
    assert (failure.item_id, repr(failure.error)) == (
        3,
        "RuntimeError('task raised GeneratorExit: closed')",
    )
    assert isinstance(failure.error.__cause__, GeneratorExit)


def test_generator_exit_from_a_sync_call_on_the_event_loop_fails_only_that_call() -> None:
    wf = Workflow("w")
    wf.add_task(Task(name="a", fn=lambda: exits_on_three(3)))
    for i in range(4):
        wf.add_task(Task(name=f"b{i}", fn=lambda: 1))
    with pytest.raises(WorkflowFailedError):
        run(AsyncExecutor(max_workers=2).execute_async(wf, failure_policy="continue"))
    assert wf.last_run is not None
    assert [name for name, s in wf.last_run.statuses.items() if s.value != "completed"] == ["a"]

    async def pool() -> list[int]:
        async with AsyncExecutor(max_workers=2) as executor:
            with pytest.raises(RuntimeError, match=r"^task raised GeneratorExit: closed$"):
                await executor.submit(exits_on_three, 3)
            return [x async for x in executor.map(exits_on_three, [1, 2, 4])]

    assert run(pool()) == [1, 2, 4]
