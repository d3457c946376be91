"""Drivers: how a run waits. Each one feeds the engine's ready tasks to an executor and reports
outcomes back; none of them decides what runs next, when to retry, or what a failure means.

* :func:`drive_inline` — every call runs on the calling thread, one at a time (the sequential
  executor's deterministic mode). A sync call cannot be interrupted here: an overrun is detected
  when the call returns and counts as a timed-out attempt.
* :func:`drive_pool` — calls go to a lane (``_lanes``: flowweaver's worker threads, or any
  ``submit -> Future`` executor); outcomes come back on a queue that only this thread reads.
  A call past its deadline is abandoned (its late result discarded); a lane that can stop it
  for real (processes) does.
* :func:`drive_async` — on an event loop: coroutines run as tasks, sync calls in a thread
  pool; completions arrive as done-callbacks on the loop, so there is no queue at all. Timeouts
  cancel coroutines; fail-fast and cancellation cancel what is in flight.

In a pool, the worker enforces a timeout on an awaitable itself (the coroutine is cancelled
exactly on time); the driver's deadline, ``_TIMEOUT_GRACE`` later, is the backstop for sync
calls, which cannot be interrupted and are abandoned instead.

Retry waits go through the run's :class:`Clock`. With a fake clock, a driver that has nothing
in flight sleeps through the clock (instant), so tests of back-off never wait.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import queue
from concurrent.futures import CancelledError
from functools import partial
from time import monotonic, perf_counter
from typing import TYPE_CHECKING, Any

from ._calls import AwaitRunner, bounded, run_awaitable
from ._errors import TaskTimeoutError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from ._engine import Engine
    from ._lanes import Lane, Outcome

__all__ = ["RetryTimers", "drive_async", "drive_inline", "drive_pool"]

#: How long after a task's timeout a pool driver gives up on the call (see module docstring).
_TIMEOUT_GRACE = 0.05


class RetryTimers:
    """Tasks waiting out a retry delay, ordered by due time on the run's clock."""

    __slots__ = ("_clock", "_heap", "_seq")

    def __init__(self, engine: Engine) -> None:
        self._clock = engine.clock
        self._heap: list[tuple[float, int, int]] = []
        self._seq = itertools.count()

    def __bool__(self) -> bool:
        return bool(self._heap)

    def add(self, engine: Engine, i: int, delay: float | None) -> None:
        """Schedule task ``i``'s retry after ``delay`` (None: it will not be retried)."""
        if delay is None:
            return
        if delay <= 0:
            engine.requeue(i)
        else:
            heapq.heappush(self._heap, (self._clock.now() + delay, next(self._seq), i))

    def wait(self) -> float:
        """Seconds until the earliest timer is due (may be <= 0)."""
        return self._heap[0][0] - self._clock.now()

    def sleep_until_due(self) -> None:
        """Nothing else can happen: sleep (through the clock) until the earliest is due."""
        wait = self.wait()
        if wait > 0:
            self._clock.sleep(wait)

    def release_due(self, engine: Engine) -> None:
        now = self._clock.now()
        heap = self._heap
        while heap and heap[0][0] <= now:
            engine.requeue(heapq.heappop(heap)[2])


def drive_inline(engine: Engine) -> Engine:
    """Run every call on this thread, in ready-queue order. Returns the engine, finished."""
    runner = AwaitRunner()
    engine.start(lambda aw: runner.run(aw, "callback", None))
    ready, tasks = engine.ready, engine.tasks
    begin, succeed, fail = engine.begin, engine.succeed, engine.fail
    timers = RetryTimers(engine)
    try:
        while True:
            while ready and not engine.stopping:
                i = ready.popleft()
                call = begin(i)
                if call is None:
                    continue
                fn, args, kwargs = call
                timeout = tasks[i].timeout
                try:
                    if timeout is None:
                        value = fn(*args, **kwargs) if kwargs else fn(*args)
                        if hasattr(value, "__await__"):
                            value = runner.run(value, tasks[i].name, None)
                    else:
                        start = perf_counter()
                        value = fn(*args, **kwargs) if kwargs else fn(*args)
                        left = timeout - (perf_counter() - start)
                        if hasattr(value, "__await__"):
                            value = runner.run(value, tasks[i].name, max(left, 0.0))
                        elif left < 0:
                            raise TaskTimeoutError(tasks[i].name, timeout)
                except (Exception, asyncio.CancelledError) as error:
                    timers.add(engine, i, fail(i, error))
                else:
                    succeed(i, value)
            if not timers or engine.stopping:
                break
            timers.sleep_until_due()
            timers.release_due(engine)
    except BaseException:
        engine.request_stop()  # KeyboardInterrupt & co: what never started ends cancelled
        engine.finish()
        raise
    finally:
        runner.close()
    engine.finish()
    return engine


def drive_pool(engine: Engine, lane: Lane, capacity: int | None, queue_depth: int = 0) -> int:
    """Run calls through ``lane``.

    Args:
        engine: The run.
        lane: Where calls run and how their outcomes come back (see ``_lanes``).
        capacity: How many calls the lane runs at once (None: no limit).
        queue_depth: How many calls without a timeout may wait in the lane's own queue on top
            of ``capacity``. A little depth keeps workers busy while this thread handles a
            completion; a task *with* a timeout is only sent when a worker is free, so its
            clock starts when the call does.

    Returns:
        How many timed-out calls were abandoned and may still be running somewhere.
    """
    engine.start(lambda aw: run_awaitable(aw, "callback", None))
    outbox = lane.outbox
    get, get_nowait = outbox.get, outbox.get_nowait
    inflight: dict[int, int] = {}  # token -> task index
    deadlines: list[tuple[float, int]] = []  # (due, token)
    tokens = itertools.count()
    timers = RetryTimers(engine)
    ready, tasks, begin = engine.ready, engine.tasks, engine.begin
    running = capacity if capacity is not None else float("inf")
    window = running + queue_depth
    abandoned: set[int] = set()
    try:
        while True:
            while ready and not engine.stopping:
                busy = len(inflight) + len(abandoned)
                if busy >= window:
                    break
                i = ready[0]
                task = tasks[i]
                if task.timeout is not None and busy >= running:
                    break  # wait for a free worker: its deadline must not tick in a queue
                ready.popleft()
                call = begin(i)
                if call is None:
                    continue
                token = next(tokens)
                try:
                    lane.send(token, *call, task.name, task.timeout)
                except Exception as error:  # e.g. the function cannot be pickled for a process
                    timers.add(engine, i, engine.fail(i, error))
                    continue
                inflight[token] = i
                if task.timeout is not None:
                    due = monotonic() + task.timeout + _TIMEOUT_GRACE
                    heapq.heappush(deadlines, (due, token))
            if not inflight and (not timers or engine.stopping):
                break
            if not inflight:
                timers.sleep_until_due()
                timers.release_due(engine)
                continue
            wait: float | None = None
            if deadlines:
                wait = max(deadlines[0][0] - monotonic(), 0.0)
            if timers and not engine.stopping:
                due = max(timers.wait(), 0.0)
                wait = due if wait is None else min(wait, due)
            try:
                outcome = get(timeout=wait)
                while True:  # settle everything that is already back before sending more
                    _settle(engine, timers, inflight, abandoned, outcome)
                    outcome = get_nowait()
            except queue.Empty:
                pass
            if deadlines:
                _expire(engine, timers, inflight, abandoned, deadlines, lane)
            if timers and not engine.stopping:
                timers.release_due(engine)
    except BaseException:
        engine.request_stop()
        for token in inflight:
            lane.cancel(token)
        engine.finish()
        raise
    engine.finish()
    return len(abandoned)


def _settle(
    engine: Engine,
    timers: RetryTimers,
    inflight: dict[int, int],
    abandoned: set[int],
    outcome: Outcome,
) -> None:
    token, ok, value = outcome
    i = inflight.pop(token, None)
    if i is None:  # a timed-out call came back late: its result is discarded
        abandoned.discard(token)
    elif ok:
        engine.succeed(i, value)
    elif engine.stopping and isinstance(value, CancelledError):
        engine.cancel(i)
    else:
        timers.add(engine, i, engine.fail(i, value))


def _expire(
    engine: Engine,
    timers: RetryTimers,
    inflight: dict[int, int],
    abandoned: set[int],
    deadlines: list[tuple[float, int]],
    lane: Lane,
) -> None:
    now = monotonic()
    while deadlines and deadlines[0][0] <= now:
        token = heapq.heappop(deadlines)[1]
        i = inflight.pop(token, None)
        if i is None:
            continue  # finished in time
        if not lane.cancel(token):
            lane.abandon(token)
            abandoned.add(token)
        task = engine.tasks[i]
        assert task.timeout is not None  # only timed tasks have deadlines
        timers.add(engine, i, engine.fail(i, TaskTimeoutError(task.name, task.timeout)))


async def drive_async(engine: Engine, pool: Any, capacity: int | None) -> Engine:
    """Run the workflow on the running event loop. Returns the engine, finished.

    Work is done by worker coroutines that pull from the engine's ready queue, as many as there
    are ready tasks, at most ``capacity``. A worker awaits its task's coroutine directly (no
    asyncio.Task per workflow task), then takes the next ready task, so a chain runs without a
    round trip through the event loop per link; it yields to the loop every
    ``_YIELD_EVERY`` tasks so it cannot starve anything else. Sync functions run in ``pool``
    (a ``concurrent.futures.Executor``); an awaitable they return is awaited on the loop.

    Tasks that run one after another on the same worker share its ``contextvars`` context.
    """
    loop = asyncio.get_running_loop()
    background: set[asyncio.Future[Any]] = set()

    def schedule_callback(awaitable: Awaitable[object]) -> object:
        task = asyncio.ensure_future(awaitable)
        background.add(task)
        task.add_done_callback(background.discard)
        return task

    engine.start(schedule_callback)
    ready, tasks, begin = engine.ready, engine.tasks, engine.begin
    limit = capacity if capacity is not None else float("inf")
    workers: set[asyncio.Task[None]] = set()
    sleepers: dict[asyncio.Future[Any], int] = {}
    is_async: dict[Callable[..., Any], bool] = {}  # per function: tasks often share one
    finished: asyncio.Future[None] = loop.create_future()
    # Workers are added in doubling bursts, one loop iteration apart, while ready tasks are left
    # unclaimed: tasks that never suspend are then run by a handful of workers, and tasks that
    # do suspend reach full concurrency in log2(n) iterations.
    spawning = [False, 16, 0]  # burst scheduled?, next burst size, workers not yet started

    def spawn() -> None:
        """Ask for more workers if some ready task is left unclaimed (idempotent)."""
        if (
            not spawning[0]
            and not engine.stopping
            and len(workers) < limit
            and len(ready) > spawning[2]
        ):
            spawning[0] = True
            loop.call_soon(spawn_burst)

    def spawn_burst() -> None:
        spawning[0] = False
        unclaimed = len(ready) - spawning[2]
        if unclaimed <= 0 or engine.stopping:
            spawning[1] = 16
            check_done()
            return
        count = int(min(unclaimed, spawning[1], limit - len(workers)))
        spawning[1] = min(spawning[1] * 2, _MAX_BURST)
        spawning[2] += count
        for _ in range(count):
            worker = loop.create_task(work())
            workers.add(worker)
            worker.add_done_callback(retire)
        spawn()

    def check_done() -> None:
        """The run is over when nothing runs, sleeps or is about to start."""
        if workers or sleepers or spawning[0] or finished.done():
            return
        if ready and not engine.stopping:
            spawn()  # e.g. a worker retired just as a task became ready
            return
        finished.set_result(None)

    def retire(worker: asyncio.Task[None]) -> None:
        workers.discard(worker)
        check_done()

    def stop_all(me: asyncio.Task[Any] | None) -> None:
        for worker in workers:
            if worker is not me:
                worker.cancel()
        for sleeper in sleepers:
            sleeper.cancel()

    def on_slept(sleeper: asyncio.Future[Any]) -> None:
        i = sleepers.pop(sleeper)
        if not sleeper.cancelled():
            engine.requeue(i)
            spawn()
        check_done()

    def settle_failure(i: int, error: BaseException) -> None:
        delay = engine.fail(i, error)
        if delay is not None:
            sleeper = loop.create_task(engine.clock.sleep_async(delay))
            sleepers[sleeper] = i
            sleeper.add_done_callback(on_slept)

    async def work() -> None:
        me = asyncio.current_task()
        assert me is not None
        spawning[2] -= 1
        streak = 0
        while True:
            if engine.stopping:
                stop_all(me)  # fail-fast on a loop: cancel what is running
                return
            if not ready:
                return
            i = ready.popleft()
            call = begin(i)
            if ready:
                spawn()
            if call is None:
                continue
            fn, args, kwargs = call
            task = tasks[i]
            try:
                flag = is_async.get(fn)
                if flag is None:
                    flag = is_async[fn] = task.is_async()
                if flag:
                    awaitable = fn(*args, **kwargs) if kwargs else fn(*args)
                else:
                    awaitable = _offloaded(loop, pool, fn, args, kwargs)
                if task.timeout is None:
                    value = await awaitable
                else:
                    value = await bounded(awaitable, task.name, task.timeout)
            except asyncio.CancelledError:
                if me.cancelling():  # the run cancelled us: stop, do not retry
                    engine.cancel(i)
                    raise
                settle_failure(i, asyncio.CancelledError())  # raised by the task's own code
            except Exception as error:
                settle_failure(i, error)
            else:
                engine.succeed(i, value)
            streak += 1
            if streak == _YIELD_EVERY:
                streak = 0
                await asyncio.sleep(0)

    try:
        spawn_burst()
        await finished
    except BaseException:  # cancelled (Ctrl-C, wait_for, TaskGroup): cancel and wait for work
        engine.request_stop()
        stop_all(None)
        pending = [*workers, *sleepers]
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        engine.finish()
        raise
    if background:
        await asyncio.gather(*background, return_exceptions=True)
    engine.finish()
    return engine


#: A worker whose tasks never suspend yields to the event loop after this many of them.
_YIELD_EVERY = 64
#: The largest number of workers started in one event-loop iteration.
_MAX_BURST = 4096


async def _offloaded(
    loop: asyncio.AbstractEventLoop,
    pool: Any,
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any] | None,
) -> Any:
    call = partial(fn, *args, **kwargs) if kwargs else (partial(fn, *args) if args else fn)
    value = await loop.run_in_executor(pool, call)
    if hasattr(value, "__await__"):  # the seed's lambda returning a coroutine: await it here
        value = await value
    return value
