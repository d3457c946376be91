"""Sync calls made from an event loop (``_offload``): a call's timeout starts when it can run.

The same component serves AsyncExecutor workflows, the AsyncExecutor pool and a pipeline's
sync tasks; a pipeline given an executor holds one of its slots per call until the call ends.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import threading
import time
from typing import TYPE_CHECKING, ParamSpec, TypeVar

import pytest

from flowweaver import (
    AsyncExecutor,
    Pipeline,
    PoolExecutor,
    SequentialExecutor,
    Stage,
    Task,
    TaskStatus,
    TaskTimeoutError,
    ThreadedExecutor,
    Workflow,
    WorkflowFailedError,
)

from .conftest import WAIT, run, settle

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

P = ParamSpec("P")
R = TypeVar("R")

#: Short enough to keep the suite fast; the calls that must beat it return at once.
TIMEOUT = 0.2


@pytest.fixture
def gate() -> Iterator[threading.Event]:
    """Holds the stuck call; always opened at the end, so no thread outlives the test."""
    event = threading.Event()
    yield event
    event.set()


def stuck_first(gate: threading.Event) -> Callable[[int], int]:
    """Item 0 blocks until ``gate`` opens; every other item returns at once."""

    def work(x: int) -> int:
        if x == 0:
            gate.wait(WAIT)
        return x

    return work


def test_a_timed_out_sync_task_on_async_executor_gives_up_its_thread(
    gate: threading.Event,
) -> None:
    work = stuck_first(gate)
    wf = Workflow("w")
    for i in range(3):  # independent; one thread, so they run one after another
        wf.add_task(Task(name=f"t{i}", fn=lambda i=i: work(i), timeout=TIMEOUT))
    with pytest.raises(WorkflowFailedError):
        AsyncExecutor(max_workers=1).execute(wf, failure_policy="continue")
    statuses = {name: wf.get_task_status(name) for name in ("t0", "t1", "t2")}
    assert statuses == {
        "t0": TaskStatus.FAILED,
        "t1": TaskStatus.COMPLETED,  # on the thread that replaced t0's stuck one
        "t2": TaskStatus.COMPLETED,
    }
    assert isinstance(wf.last_run.failures[0].__cause__, TaskTimeoutError)  # type: ignore[union-attr]


def test_a_timed_out_sync_task_does_not_hold_up_the_next_items(gate: threading.Event) -> None:
    stage = Stage("S", 1, [stuck_first(gate)], task_timeout=TIMEOUT, task_attempts=1)
    pipeline = Pipeline([stage])
    results = run(pipeline.run([0, 1, 2]))
    assert [r.value for r in results] == [1, 2]
    (failure,) = pipeline.get_error_summary().failed_items
    assert failure.item_id == 0
    assert isinstance(failure.error, TaskTimeoutError)


class RecordingThreads(ThreadedExecutor):
    """A ThreadedExecutor that records which items were submitted to it."""

    def __init__(self, max_workers: int) -> None:
        super().__init__(max_workers)
        self.submitted: list[object] = []

    def submit(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> cf.Future[R]:
        self.submitted.append(args[0])
        return super().submit(fn, *args, **kwargs)


def test_a_given_executor_gets_a_call_only_when_it_has_a_free_worker(
    gate: threading.Event,
) -> None:
    executor = RecordingThreads(max_workers=1)

    async def main() -> None:
        failed = asyncio.Event()
        stage = Stage(
            "S", 2, [stuck_first(gate)], task_timeout=TIMEOUT, task_attempts=1,
            on_failure=lambda *_: failed.set(),
        )  # fmt: skip
        pipeline = Pipeline([stage], executor=executor)
        await pipeline.start()
        await pipeline.feed([0, 1])
        await failed.wait()  # item 0 timed out, but its call still holds the only thread...
        await settle()
        assert executor.submitted == [0]  # ...and its slot: item 1 waits, untimed
        gate.set()  # the stuck call returns: its slot goes to item 1, which gets a full timeout
        await pipeline.join()
        assert [r.value for r in pipeline.results] == [1]
        (failure,) = pipeline.get_error_summary().failed_items
        assert (failure.item_id, type(failure.error)) == (0, TaskTimeoutError)

    try:
        run(main())
    finally:
        executor.shutdown(wait=False)
    assert executor.submitted == [0, 1]


def test_a_sync_task_overrunning_on_the_sequential_executor_times_out() -> None:
    def slow(x: int) -> int:
        time.sleep(TIMEOUT * 1.5)  # the work itself: inline, nothing can interrupt it
        return x

    stage = Stage("S", 1, [slow], task_timeout=TIMEOUT, task_attempts=1)
    pipeline = Pipeline([stage], executor=SequentialExecutor())
    assert run(pipeline.run([1])) == []
    (failure,) = pipeline.get_error_summary().failed_items
    assert str(failure.error) == f"task 'slow' timed out after {TIMEOUT!r} s"


def test_capacity_is_read_from_the_executor() -> None:
    from flowweaver._offload import capacity_of

    with cf.ThreadPoolExecutor(3) as pool:
        assert capacity_of(pool) == 3  # concurrent.futures: its _max_workers
        assert capacity_of(PoolExecutor(pool)) == 3
        assert capacity_of(PoolExecutor(pool, max_workers=2)) == 2
    assert capacity_of(ThreadedExecutor(5)) == 5
    assert capacity_of(SequentialExecutor()) == 1
    assert capacity_of(AsyncExecutor(max_workers=4)) == 4
    unset = AsyncExecutor()
    assert capacity_of(unset) == unset._pool().limit  # its pool's default size

    class Bare:
        def submit(self, fn: Callable[..., object], /, *args: object) -> object:
            raise NotImplementedError

    assert capacity_of(Bare()) is None  # it does not say: no limit


def test_a_call_the_executor_cannot_take_frees_its_slot() -> None:
    class Refusing(ThreadedExecutor):
        def submit(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> cf.Future[R]:
            if args[0] == 0:
                raise RuntimeError("refused 0")
            return super().submit(fn, *args, **kwargs)

    def same(x: int) -> int:
        return x

    executor = Refusing(max_workers=1)
    try:
        pipeline = Pipeline([Stage("S", 2, [same], task_attempts=1)], executor=executor)
        assert [r.value for r in run(pipeline.run([0, 1, 2]))] == [1, 2]
    finally:
        executor.shutdown()
    (failure,) = pipeline.get_error_summary().failed_items
    assert str(failure.error) == "refused 0"


def test_on_async_executor_a_timed_out_call_frees_its_slot_and_thread(
    gate: threading.Event,
) -> None:
    async def main() -> list[int]:
        async with AsyncExecutor(max_workers=1) as executor:
            stage = Stage("S", 2, [stuck_first(gate)], task_timeout=TIMEOUT, task_attempts=1)
            pipeline = Pipeline([stage], executor=executor)
            results = [r.value for r in await pipeline.run([0, 1])]
            gate.set()  # let the abandoned thread go before the pool shuts down
            return results

    # Item 1 waited for the pool's one slot, untimed; item 0's call was cancelled on its
    # timeout (its thread replaced), so item 1 then ran at once, with its full timeout.
    assert run(main()) == [1]
