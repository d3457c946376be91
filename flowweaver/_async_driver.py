"""The asyncio driver: a workflow run on an event loop (:class:`AsyncExecutor`).

Worker coroutines pull ready tasks from the engine and await them; sync functions run on
daemon threads (``_offload.Offload``), at most one call per thread so a timeout never ticks
while a call waits for a thread — and the task stays ``pending`` while it does. A sync task
with ``limits=`` takes its permits only once a thread is free for it (``Offload.reserve``), as
the pool driver sends a limited call only to a free worker: a permit never waits in a queue
while another run sharing the limiter needs it. It keeps the rules of every driver
(``_drivers``): outcomes reach the engine only from the loop; when the run stops, coroutines
in flight are cancelled and sync calls are let finish (fail-fast) or abandoned (interrupts);
it never returns while work it started is still running.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from functools import partial
from typing import TYPE_CHECKING, Any

from ._calls import INTERRUPTS, bounded
from ._offload import Offload

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable

    from ._engine import Engine

__all__ = ["AsyncDriver", "drive_async"]


#: A worker coroutine whose tasks never suspend yields to the event loop after this many.
_YIELD_EVERY = 64
#: The largest number of worker coroutines started in one event-loop iteration.
_MAX_BURST = 4096
_FIRST_BURST = 16


async def drive_async(engine: Engine, threads: int, capacity: int | None) -> None:
    """Run the workflow on the running event loop; finish the engine. See :class:`AsyncDriver`."""
    await AsyncDriver(engine, threads, capacity).run()


class AsyncDriver:
    """One run on the running loop: named state, and one method per event.

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

    __slots__ = (
        "background",
        "burst_scheduled",
        "burst_size",
        "capacity",
        "engine",
        "finished",
        "gate_timer",
        "in_sync_call",
        "limit",
        "loop",
        "offload",
        "sleepers",
        "unstarted",
        "workers",
    )

    def __init__(self, engine: Engine, threads: int, capacity: int | None) -> None:
        self.engine = engine
        self.loop = loop = asyncio.get_running_loop()
        self.capacity = capacity
        self.limit = capacity if capacity is not None else float("inf")
        #: Worker coroutines alive.
        self.workers: set[asyncio.Task[None]] = set()
        #: Workers waiting for a sync call (fail-fast lets those finish).
        self.in_sync_call: set[asyncio.Task[None]] = set()
        #: Retry waits in progress: sleeper -> task index.
        self.sleepers: dict[asyncio.Future[Any], int] = {}
        #: Observer coroutines the engine handed over (awaited before the run returns).
        self.background: set[asyncio.Future[Any]] = set()
        #: Set when the run is over (or a bug of ours surfaced in a worker).
        self.finished: asyncio.Future[None] = loop.create_future()
        #: A burst of new workers is scheduled for the next loop iteration.
        self.burst_scheduled = False
        #: Workers the next burst may start (doubles, up to ``_MAX_BURST``).
        self.burst_size = _FIRST_BURST
        #: Workers created but not yet running: they will claim that many ready tasks.
        self.unstarted = 0
        self.offload = Offload(loop, threads)
        #: The wake-up of the earliest task parked by a limiter's rate (``Task(limits=...)``).
        self.gate_timer: asyncio.TimerHandle | None = None

    async def run(self) -> None:
        """Drive the run to its end; finish the engine (also when cancelled)."""
        engine = self.engine
        # A real wake-up even without limits now: a child run may bring some (see _nesting).
        engine.start(self.schedule_callback, self.wake_from_any_thread, self.capacity)
        try:
            self.on_burst()
            await self.finished
        except BaseException:  # cancelled (Ctrl-C, wait_for, TaskGroup): cancel, wait for work
            engine.request_stop()
            self.stop(None, sync_calls_too=True)
            await _wait_out([*self.workers, *self.sleepers])
            raise
        finally:
            self.offload.close()
            engine.finish()  # before the callbacks are awaited, so on_run_end is among them
            if self.background:  # each is bounded (ObserverWaits); a cancellation cuts them short
                await _wait_out(list(self.background), engine.request_stop)

    def schedule_callback(self, awaitable: Awaitable[object]) -> object:
        """An observer returned an awaitable: run it beside the workers."""
        task = asyncio.ensure_future(awaitable)
        self.background.add(task)
        task.add_done_callback(self.background.discard)
        return task

    def spawn(self) -> None:
        """Ask for more workers if some ready task is left unclaimed (idempotent)."""
        if (
            not self.burst_scheduled
            and not self.engine.stopping
            and len(self.workers) < self.limit
            and len(self.engine.ready) > self.unstarted
        ):
            self.burst_scheduled = True
            self.loop.call_soon(self.on_burst)

    def on_burst(self) -> None:
        """Start a burst of workers for the ready tasks nobody has claimed."""
        self.burst_scheduled = False
        engine = self.engine
        unclaimed = len(engine.ready) - self.unstarted
        if unclaimed <= 0 or engine.stopping:
            self.burst_size = _FIRST_BURST
            self.check_done()
            return
        count = int(min(unclaimed, self.burst_size, self.limit - len(self.workers)))
        self.burst_size = min(self.burst_size * 2, _MAX_BURST)
        self.unstarted += count
        create_task, workers, on_done = self.loop.create_task, self.workers, self.on_worker_done
        for _ in range(count):
            worker = create_task(self.work())
            workers.add(worker)
            worker.add_done_callback(on_done)
        self.spawn()

    def check_done(self) -> None:
        """The run is over when nothing runs, sleeps, waits for a limiter or is about to start."""
        if self.workers or self.sleepers or self.burst_scheduled or self.finished.done():
            return
        engine = self.engine
        if engine.ready and not engine.stopping:
            self.spawn()  # e.g. a worker retired just as a task became ready
            return
        if engine.gates and not engine.stopping:
            self.arm_gate()  # parked tasks: a release or their rate's due time brings them back
            return
        if self.gate_timer is not None:
            self.gate_timer.cancel()
        self.finished.set_result(None)

    def wake_from_any_thread(self) -> None:
        """A limiter was released (any thread), or a stop was requested: look again."""
        with contextlib.suppress(RuntimeError):  # the loop is closed: the run is over
            self.loop.call_soon_threadsafe(self.on_gate)

    def on_gate(self) -> None:
        """Try the tasks parked by their limiters again."""
        self.gate_timer = None
        gates = self.engine.gates
        if gates and not self.engine.stopping:
            gates.reopen(self.engine.ready.append)
            self.spawn()
        self.check_done()

    def arm_gate(self) -> None:
        """Wake up when the earliest rate-parked task may go (a release wakes us anyway)."""
        gates = self.engine.gates
        if not gates or self.engine.stopping or self.gate_timer is not None:
            return
        due = gates.wait()
        if due != math.inf:
            self.gate_timer = self.loop.call_later(due, self.on_gate)

    def on_worker_done(self, worker: asyncio.Task[None]) -> None:
        self.workers.discard(worker)
        error = None if worker.cancelled() else worker.exception()
        if error is not None and not self.finished.done():  # a bug of ours: never lost or hung
            self.finished.set_exception(error)
            return
        self.check_done()

    def stop(self, me: asyncio.Task[Any] | None, *, sync_calls_too: bool) -> None:
        """Cancel coroutines in flight and pending retries (sync calls too on interrupts)."""
        for worker in self.workers:
            if worker is not me and (sync_calls_too or worker not in self.in_sync_call):
                worker.cancel()
        for sleeper in self.sleepers:
            sleeper.cancel()

    def on_slept(self, sleeper: asyncio.Future[Any]) -> None:
        """A retry wait ended: the task is ready again (unless the run cancelled the wait)."""
        i = self.sleepers.pop(sleeper)
        if not sleeper.cancelled():
            self.engine.requeue(i)
            self.spawn()
        self.check_done()

    def on_failure(self, i: int, error: BaseException) -> None:
        """An attempt failed: wait out the retry delay the engine asks for, if any."""
        delay = self.engine.fail(i, error)
        if delay is not None:
            sleeper = self.loop.create_task(self.engine.clock.sleep_async(delay))
            self.sleepers[sleeper] = i
            sleeper.add_done_callback(self.on_slept)

    async def reserve_thread(self) -> bool:
        """Wait for a free thread before a sync task with ``limits=`` takes its permits (a
        permit held while its call waits for a thread would starve others sharing the
        limiter); False, holding none, if the run began stopping meanwhile."""
        await self.offload.reserve()
        if self.engine.stopping:
            self.offload.unreserve()
            return False
        return True

    async def work(self) -> None:
        """A worker: run ready tasks one after another until none is left (hot path)."""
        me = asyncio.current_task()
        assert me is not None
        self.unstarted -= 1
        engine, offload, in_sync_call = self.engine, self.offload, self.in_sync_call
        ready, tasks, begin, mark_running = (
            engine.ready,
            engine.tasks,
            engine.begin,
            engine.mark_running,
        )
        streak = 0
        while True:
            if engine.stopping:
                self.stop(me, sync_calls_too=False)  # fail-fast: cancel coroutines, sync finish
                return
            if not ready:
                return
            i = ready.popleft()
            task = tasks[i]
            is_async = task.is_async()
            reserved = not is_async and bool(task.limits)
            if reserved and not await self.reserve_thread():
                continue  # the run began stopping: it never began, and ends cancelled
            call = begin(i, is_async or reserved)  # a sync call is running once it has a thread
            if ready:
                self.spawn()
            if call is None:
                if reserved:
                    offload.unreserve()
                if engine.gates:
                    self.arm_gate()
                continue
            fn, args, kwargs = call
            try:
                if is_async:
                    awaitable = fn(*args, **kwargs) if kwargs else fn(*args)
                    if task.timeout is None:
                        value = await awaitable
                    else:
                        value = await bounded(awaitable, task.name, task.timeout)
                else:
                    in_sync_call.add(me)
                    try:
                        value = await offload.call(
                            fn,
                            args,
                            kwargs,
                            task.name,
                            task.timeout,
                            reserved,
                            None if reserved else partial(mark_running, i),
                        )
                    finally:
                        in_sync_call.discard(me)
            except asyncio.CancelledError:
                if me.cancelling():  # the run cancelled us: stop, do not retry
                    engine.cancel(i)
                    raise
                self.on_failure(i, asyncio.CancelledError())  # raised by the task's own code
            except INTERRUPTS:
                engine.cancel(i)
                engine.request_stop()
                raise
            except BaseException as error:  # the task's failure, whatever its type
                self.on_failure(i, error)
            else:
                engine.succeed(i, value)
            streak += 1
            if streak == _YIELD_EVERY:
                streak = 0
                await asyncio.sleep(0)


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
