"""Drivers: how a run waits. Each one feeds the engine's ready tasks to where calls run and
reports outcomes back; none of them decides what runs next, when to retry, or what a failure
means (that is the engine's job, in one place).

* :func:`drive_inline` — every call runs on the calling thread, one at a time (the sequential
  executor's deterministic mode). A sync call cannot be interrupted here: an overrun is
  detected when the call returns and counts as a timed-out attempt.
* :func:`drive_pool` — calls go to a lane (``_lanes``: flowweaver's worker threads, or any
  ``submit -> Future`` executor); outcomes come back on a queue that only this thread reads.
  A call past its deadline is abandoned (its late result discarded); a lane that can stop it
  for real (processes), or replace the worker it holds (threads), does.
* :func:`drive_async` — on an event loop, worker coroutines pull ready tasks and await them;
  sync functions run on daemon threads (``_offload.Offload``), at most one call per thread so a
  timeout never ticks while a call waits for a thread.

Rules every driver keeps:

* Outcomes are reported to the engine only from the driving thread (or loop).
* When the run stops (fail-fast, Ctrl-C, cancellation), calls not yet started are cancelled;
  running sync calls are let finish (fail-fast; on Dask their futures are cancelled, which a
  running call ignores) or abandoned (interrupts); running coroutines are cancelled.
* A task raising ``KeyboardInterrupt`` or ``SystemExit`` stops the run and the exception
  propagates; any other exception, ``BaseException`` subclasses included, is the task's
  failure.
* A driver never returns while work it could still start is ready, and never leaves a task
  pending: :meth:`Engine.finish` settles the rest.

Timeouts in a pool: the call itself is timed (``invoke``), so an overrun never counts as a
success; the driver's deadline, ``_TIMEOUT_GRACE`` later, abandons calls that do not return.

Retry waits go through the run's :class:`Clock`. With any clock other than the system clock
(a test's fake clock), waiting for a retry means sleeping through that clock at once, even
while calls are in flight, so back-off tests never wait.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import queue
import threading
from concurrent.futures import CancelledError
from time import monotonic
from typing import TYPE_CHECKING, Any

from ._calls import INTERRUPTS, AwaitRunner, bounded, invoke
from ._errors import TaskTimeoutError
from ._offload import Offload
from ._retry import SystemClock

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable

    from ._engine import Engine
    from ._lanes import Lane, Outcome

__all__ = ["RetryTimers", "drive_async", "drive_inline", "drive_pool"]

#: How long after a task's timeout a pool driver gives up on the call (see module docstring).
_TIMEOUT_GRACE = 0.05
#: A worker coroutine whose tasks never suspend yields to the event loop after this many.
_YIELD_EVERY = 64
#: The largest number of worker coroutines started in one event-loop iteration.
_MAX_BURST = 4096
_FIRST_BURST = 16


class RetryTimers:
    """Tasks waiting out a retry delay, ordered by due time on the run's clock."""

    __slots__ = ("_clock", "_heap", "_seq", "_woken", "fake")

    def __init__(self, engine: Engine, woken: threading.Event | None = None) -> None:
        self._clock = engine.clock
        self._heap: list[tuple[float, int, int]] = []
        self._seq = itertools.count()
        self._woken = woken
        #: Not the system clock: waits are slept through the clock, at once.
        self.fake = not isinstance(self._clock, SystemClock)

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
        """Sleep (through the clock) until the earliest timer is due; a stop request wakes it."""
        wait = self.wait()
        if wait <= 0:
            return
        if self.fake or self._woken is None:
            self._clock.sleep(wait)
        else:
            self._woken.wait(wait)

    def release_due(self, engine: Engine) -> None:
        now = self._clock.now()
        heap = self._heap
        while heap and heap[0][0] <= now:
            engine.requeue(heapq.heappop(heap)[2])


def drive_inline(engine: Engine) -> None:
    """Run every call on this thread, in ready-queue order; finish the engine."""
    runner = AwaitRunner()
    woken = threading.Event()
    engine.start(lambda aw: runner.run(aw, "callback", None), woken.set, capacity=1)
    ready, tasks = engine.ready, engine.tasks
    begin, succeed, fail = engine.begin, engine.succeed, engine.fail
    timers = RetryTimers(engine, woken)
    try:
        while True:
            while ready and not engine.stopping:
                if timers and timers.wait() <= 0:
                    timers.release_due(engine)  # a due retry goes before newer work
                i = ready.popleft()
                call = begin(i)
                if call is None:
                    continue
                task = tasks[i]
                try:
                    value = invoke(*call, task.name, task.timeout, runner)
                except INTERRUPTS:
                    raise
                except BaseException as error:  # the task's failure, whatever its type
                    timers.add(engine, i, fail(i, error))
                else:
                    succeed(i, value)
            if not timers or engine.stopping:
                break
            timers.sleep_until_due()
            timers.release_due(engine)
    except BaseException:
        engine.request_stop()  # KeyboardInterrupt & co: what never started ends cancelled
        raise
    finally:
        try:
            engine.finish()
        finally:
            runner.close()


def drive_pool(engine: Engine, lane: Lane, capacity: int | None, queue_depth: int = 0) -> None:
    """Run calls through ``lane``; finish the engine.

    Args:
        engine: The run.
        lane: Where calls run and how their outcomes come back (see ``_lanes``).
        capacity: How many calls the lane runs at once (None: no limit).
        queue_depth: How many calls without a timeout may wait in the lane's own queue on top
            of ``capacity``. A little depth keeps workers busy while this thread handles a
            completion; a task *with* a timeout is only sent when a worker is free, so its
            clock starts when the call does.
    """
    outbox = lane.outbox
    runner = AwaitRunner()
    engine.start(lambda aw: runner.run(aw, "callback", None), lambda: outbox.put(None), capacity)
    get, get_nowait = outbox.get, outbox.get_nowait
    inflight: dict[int, int] = {}  # token -> task index
    occupied: set[int] = set()  # abandoned calls that still hold a worker
    deadlines: list[tuple[float, int]] = []  # (due, token)
    timed: list[tuple[int, float]] = []  # (token, timeout) of the burst being sent
    tokens = itertools.count()
    timers = RetryTimers(engine)
    ready, tasks, begin = engine.ready, engine.tasks, engine.begin
    running = capacity if capacity is not None else float("inf")
    window = running + queue_depth
    stopped = False  # queued calls were cancelled after the run began stopping
    try:
        while True:
            while ready and not engine.stopping:
                busy = len(inflight) + len(occupied)
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
                except INTERRUPTS:
                    raise
                except BaseException as error:  # e.g. the function cannot be pickled for a process
                    timers.add(engine, i, engine.fail(i, error))
                    continue
                inflight[token] = i
                if task.timeout is not None:
                    timed.append((token, task.timeout))
            if engine.stopping and not stopped:
                stopped = True
                for token in list(inflight):
                    lane.cancel(token)  # a queued call reports CancelledError: it never ran
            lane.flush()  # a lane may send a burst as one message (Dask: one graph)
            if timed:  # a timeout's clock starts once its call has been sent
                now = monotonic()
                for token, timeout in timed:
                    heapq.heappush(deadlines, (now + timeout + _TIMEOUT_GRACE, token))
                timed.clear()
            if not inflight and (engine.stopping or not (ready or timers)):
                break
            while deadlines and deadlines[0][1] not in inflight:
                heapq.heappop(deadlines)  # finished in time: no need to wake up for it
            if timers and timers.fake and not engine.stopping:
                timers.sleep_until_due()  # a fake clock: the wait is over at once
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
                    if outcome is not None:  # None only wakes us up (a stop request)
                        _settle(engine, timers, inflight, occupied, outcome)
                    outcome = get_nowait()
            except queue.Empty:
                pass
            if deadlines:
                _expire(engine, timers, inflight, occupied, deadlines, lane)
            if timers and not engine.stopping:
                timers.release_due(engine)
    except BaseException:
        engine.request_stop()
        for token in inflight:
            lane.cancel(token)
        raise
    finally:
        try:
            engine.finish()
        finally:
            runner.close()


def _settle(
    engine: Engine,
    timers: RetryTimers,
    inflight: dict[int, int],
    occupied: set[int],
    outcome: Outcome,
) -> None:
    token, ok, value = outcome
    i = inflight.pop(token, None)
    if i is None:  # a timed-out call came back late: its result is discarded
        occupied.discard(token)
    elif ok:
        engine.succeed(i, value)
    elif engine.stopping and isinstance(value, CancelledError):
        engine.cancel(i)
    elif isinstance(value, INTERRUPTS):
        engine.cancel(i)
        raise value
    else:
        timers.add(engine, i, engine.fail(i, value))


def _expire(
    engine: Engine,
    timers: RetryTimers,
    inflight: dict[int, int],
    occupied: set[int],
    deadlines: list[tuple[float, int]],
    lane: Lane,
) -> None:
    now = monotonic()
    while deadlines and deadlines[0][0] <= now:
        token = heapq.heappop(deadlines)[1]
        i = inflight.pop(token, None)
        if i is None:
            continue  # finished in time
        if not lane.cancel(token) and not lane.abandon(token):
            occupied.add(token)
        task = engine.tasks[i]
        assert task.timeout is not None  # only timed tasks have deadlines
        timers.add(engine, i, engine.fail(i, TaskTimeoutError(task.name, task.timeout)))


async def drive_async(engine: Engine, threads: int, capacity: int | None) -> None:
    """Run the workflow on the running event loop; finish the engine.

    Work is done by worker coroutines that pull from the engine's ready queue, as many as there
    are ready tasks, at most ``capacity``. A worker awaits its task's coroutine directly (no
    asyncio.Task per workflow task), then takes the next ready task, so a chain runs without a
    round trip through the event loop per link; it yields to the loop every ``_YIELD_EVERY``
    tasks so it cannot starve anything else. Workers are added in doubling bursts, one loop
    iteration apart, while ready tasks are left unclaimed: tasks that never suspend are run by
    a handful of workers, and tasks that do suspend reach full concurrency in log2(n)
    iterations. Sync functions run on ``threads`` daemon threads; an awaitable they return is
    awaited on the loop.

    Tasks that run one after another on the same worker share its ``contextvars`` context.
    """
    loop = asyncio.get_running_loop()
    background: set[asyncio.Future[Any]] = set()

    def schedule_callback(awaitable: Awaitable[object]) -> object:
        task = asyncio.ensure_future(awaitable)
        background.add(task)
        task.add_done_callback(background.discard)
        return task

    engine.start(schedule_callback, capacity=capacity)
    ready, tasks, begin = engine.ready, engine.tasks, engine.begin
    limit = capacity if capacity is not None else float("inf")
    workers: set[asyncio.Task[None]] = set()
    in_sync_call: set[asyncio.Task[None]] = set()
    sleepers: dict[asyncio.Future[Any], int] = {}
    finished: asyncio.Future[None] = loop.create_future()
    spawning = [False, _FIRST_BURST, 0]  # burst scheduled?, next burst size, not yet started
    offload = Offload(loop, threads)

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
            spawning[1] = _FIRST_BURST
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
        error = None if worker.cancelled() else worker.exception()
        if error is not None and not finished.done():  # a bug of ours: never lost, never hung
            finished.set_exception(error)
            return
        check_done()

    def stop(me: asyncio.Task[Any] | None, *, sync_calls_too: bool) -> None:
        """Cancel coroutines in flight and pending retries (sync calls too on interrupts)."""
        for worker in workers:
            if worker is not me and (sync_calls_too or worker not in in_sync_call):
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
                stop(me, sync_calls_too=False)  # fail-fast: cancel coroutines, let sync finish
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
                if task.is_async():
                    awaitable = fn(*args, **kwargs) if kwargs else fn(*args)
                    if task.timeout is None:
                        value = await awaitable
                    else:
                        value = await bounded(awaitable, task.name, task.timeout)
                else:
                    in_sync_call.add(me)
                    try:
                        value = await offload.call(fn, args, kwargs, task.name, task.timeout)
                    finally:
                        in_sync_call.discard(me)
            except asyncio.CancelledError:
                if me.cancelling():  # the run cancelled us: stop, do not retry
                    engine.cancel(i)
                    raise
                settle_failure(i, asyncio.CancelledError())  # raised by the task's own code
            except INTERRUPTS:
                engine.cancel(i)
                engine.request_stop()
                raise
            except BaseException as error:  # the task's failure, whatever its type
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
        stop(None, sync_calls_too=True)
        await _wait_out([*workers, *sleepers])
        raise
    finally:
        offload.close()
        engine.finish()  # before the callbacks are awaited, so on_run_end is among them
        if background:  # each is bounded (ObserverWaits); a cancellation cuts them short
            await _wait_out(list(background), engine.request_stop)


async def _wait_out(
    futures: Iterable[asyncio.Future[Any]], on_cancel: Callable[[], object] | None = None
) -> None:
    """Wait for ``futures`` even if the waiting task is cancelled again (and again); call
    ``on_cancel`` at each cancellation, and re-raise it once they are done.

    Raises:
        asyncio.CancelledError: The waiting task was cancelled meanwhile (never lost: a Ctrl-C
            arriving while a finished run waits for its callbacks still stops the program).
    """
    gathering = asyncio.gather(*futures, return_exceptions=True)
    cancelled = False
    while not gathering.done():
        try:
            await asyncio.shield(gathering)
        except asyncio.CancelledError:
            cancelled = True
            if on_cancel is not None:
                on_cancel()
    if cancelled:
        raise asyncio.CancelledError
