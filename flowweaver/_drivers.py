"""Drivers: how a run waits. Each one feeds the engine's ready tasks to where calls run and
reports outcomes back; none of them decides what runs next, when to retry, or what a failure
means (that is the engine's job, in one place).

* :func:`drive_inline` — every call runs on the calling thread, one at a time (the sequential
  executor's deterministic mode). A sync call cannot be interrupted here: an overrun is
  detected when the call returns and counts as a timed-out attempt.
* :func:`drive_pool` (:class:`PoolDriver`) — calls go to a lane (``_lanes``: flowweaver's
  worker threads, or any ``submit -> Future`` executor); outcomes come back on a queue that
  only this thread reads. A call past its deadline is abandoned (its late result discarded);
  a lane that can stop it for real (processes), or replace the worker it holds (threads),
  does.
* ``_handoff.drive_handoff`` — :class:`ThreadedExecutor`'s runs without observers: worker
  threads settle their own outcomes under the run's lock and go on with the task they made
  ready, so a chain costs no thread hand-off; this thread waits for deadlines and the end.
* ``_async_driver.drive_async`` — on an event loop, worker coroutines pull ready tasks and
  await them; sync functions run on daemon threads (``_offload.Offload``), at most one call per
  thread so a timeout never ticks while a call waits for a thread.

Rules every driver keeps:

* Outcomes are reported to the engine from one thread at a time: the driving thread (or
  loop), or under the hand-off driver's lock a worker thread.
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

"Running" means running: a call that waits in a lane's queue for a worker (the pool driver
keeps up to ``queue_depth`` such calls, so workers never idle while this thread catches up)
is begun with ``Engine.begin(i, start=False)`` and stays ``pending`` until a worker is free
for it. Lanes are FIFO, so when a call ends and frees a worker, the oldest queued call is the
one that took it: the driver marks it running then (``Engine.mark_running``). Status
callbacks never see more tasks running than the lane has workers, and durations leave out the
time spent queued.

Retry waits go through the run's :class:`Clock`, which says how (``sleep_time``): a real clock
lets the driver block on its outcomes until the retry is due; a test clock advances at once.
A clock that does not say is slept through (``clock.sleep``).
"""

from __future__ import annotations

import heapq
import itertools
import math
import queue
import threading
from collections import deque
from time import monotonic
from typing import TYPE_CHECKING

from ._calls import INTERRUPTS, AwaitRunner, invoke, is_cancelled_error
from ._clock import DUE_SLACK, sleep_time_of
from ._errors import TaskTimeoutError

if TYPE_CHECKING:
    from ._clock import Clock
    from ._engine import Engine
    from ._lanes import Lane, Outcome

__all__ = ["PoolDriver", "RetryTimers", "drive_inline", "drive_pool"]

#: How long after a task's timeout a pool driver gives up on the call (see module docstring).
_TIMEOUT_GRACE = 0.05
#: ``queue.get(timeout=None)`` blocks forever; a day is as good and keeps the type a float.
_FOREVER = 86_400.0


class RetryTimers:
    """Tasks waiting out a retry delay, ordered by due time on the run's clock."""

    __slots__ = ("_clock", "_heap", "_seq", "_sleep_time")

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._sleep_time = sleep_time_of(clock)
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

    def due_in(self) -> float:
        """Seconds on the clock until the earliest timer is due (<= 0: it is due)."""
        wait = self._heap[0][0] - self._clock.now()
        return wait if wait > DUE_SLACK else min(wait, 0.0)

    def real_wait(self) -> float | None:
        """Real seconds to block (woken early by other work) until the earliest timer is due,
        as the clock says; None if the clock has no say and has been slept through instead."""
        wait = self.due_in()
        if wait <= 0:
            return 0.0
        if self._sleep_time is None:
            self._clock.sleep(wait)
            return None
        return max(self._sleep_time(wait), 0.0)

    def release_due(self, engine: Engine) -> None:
        now = self._clock.now() + DUE_SLACK
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
    timers = RetryTimers(engine.clock)
    try:
        while True:
            while ready and not engine.stopping:
                if timers and timers.due_in() <= 0:
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
            if engine.stopping:
                break
            gates = engine.gates
            if gates is not None and gates:  # tasks wait for a limiter: a release, or a rate
                wait = gates.wait()
                if timers:
                    due = timers.real_wait()
                    wait = 0.0 if due is None else min(wait, due)
                if wait > 0:
                    woken.wait(None if wait == math.inf else wait)  # a release ends it early
                woken.clear()
                gates.reopen(ready.append)
                if timers:
                    timers.release_due(engine)
                continue
            if not timers:
                break
            retry_wait = timers.real_wait()
            if retry_wait:
                woken.wait(retry_wait)  # a stop request (another thread) ends the wait early
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
    """Run calls through ``lane``; finish the engine. See :class:`PoolDriver`."""
    PoolDriver(engine, lane, capacity, queue_depth).run()


class PoolDriver:
    """One run's calls through a lane: the loop, and one method per event.

    Args:
        engine: The run.
        lane: Where calls run and how their outcomes come back (see ``_lanes``).
        capacity: How many calls the lane runs at once (None: no limit).
        queue_depth: How many calls without a timeout may wait in the lane's own queue on top
            of ``capacity``. A little depth keeps workers busy while this thread handles a
            completion; such a call stays ``pending`` until a worker takes it (module
            docstring). A task *with* a timeout or ``limits`` is only sent when a worker is
            free, so its clock starts when the call does, and its permits are taken only
            when it can run (a limiter shared with other runs is not held by a queued call).
    """

    __slots__ = (
        "capacity",
        "deadlines",
        "engine",
        "inflight",
        "lane",
        "occupied",
        "queued",
        "runner",
        "stopped",
        "timed",
        "timers",
        "tokens",
        "window",
        "workers",
    )

    def __init__(
        self, engine: Engine, lane: Lane, capacity: int | None, queue_depth: int = 0
    ) -> None:
        self.engine = engine
        self.lane = lane
        self.capacity = capacity
        self.workers = capacity if capacity is not None else float("inf")
        self.window = self.workers + queue_depth
        #: Calls sent and not yet settled: token -> task index.
        self.inflight: dict[int, int] = {}
        #: Tokens of calls sent while every worker was busy, oldest first: still pending.
        self.queued: deque[int] = deque()
        #: Abandoned (timed-out) calls that still hold a worker.
        self.occupied: set[int] = set()
        #: ``(due, token)`` of timed calls, on the monotonic clock.
        self.deadlines: list[tuple[float, int]] = []
        #: ``(token, timeout)`` of the timed calls of the burst being sent.
        self.timed: list[tuple[int, float]] = []
        self.tokens = itertools.count()
        self.timers = RetryTimers(engine.clock)
        #: Queued calls were cancelled once the run began stopping.
        self.stopped = False
        self.runner = AwaitRunner()

    def run(self) -> None:
        """Drive the run to its end; finish the engine (also when interrupted)."""
        engine, lane, timers, inflight = self.engine, self.lane, self.timers, self.inflight
        outbox = lane.outbox
        get, get_nowait = outbox.get, outbox.get_nowait
        engine.start(
            lambda aw: self.runner.run(aw, "callback", None),
            lambda: outbox.put(None),
            self.capacity,
        )
        try:
            while True:
                self.send_ready()
                if engine.stopping and not self.stopped:
                    self.on_stop()
                lane.flush()  # a lane may send a burst as one message (Dask: one graph)
                if self.timed:
                    self.start_deadlines()
                gates = engine.gates
                if not inflight and (engine.stopping or not (engine.ready or timers or gates)):
                    break
                wait = self.wait_time()
                if wait is None:
                    continue  # the clock was slept through: a retry may be due
                try:
                    outcome = get(timeout=wait)
                    while True:  # settle everything that is already back before sending more
                        if outcome is not None:  # None only wakes us up (a stop request)
                            self.on_outcome(outcome)
                        outcome = get_nowait()
                except queue.Empty:
                    pass
                if self.deadlines:
                    self.on_deadlines()
                if timers and not engine.stopping:
                    timers.release_due(engine)
                if gates and not engine.stopping:  # woken by a release, or a rate is due
                    gates.reopen(engine.ready.append)
        except BaseException:
            engine.request_stop()
            for token in inflight:
                lane.cancel(token)
            raise
        finally:
            try:
                engine.finish()
            finally:
                self.runner.close()

    def send_ready(self) -> None:
        """Send ready tasks while the lane has room (hot path: locals only)."""
        engine, lane, inflight, occupied = self.engine, self.lane, self.inflight, self.occupied
        ready, tasks, begin = engine.ready, engine.tasks, engine.begin
        workers, window = self.workers, self.window
        while ready and not engine.stopping:
            busy = len(inflight) + len(occupied)
            if busy >= window:
                break
            i = ready[0]
            task = tasks[i]
            starts = busy < workers
            if not starts and (task.timeout is not None or task.limits):
                # Wait for a free worker: a deadline must not tick in a queue, and a permit
                # held by a call that is not running starves whoever shares the limiter.
                break
            ready.popleft()
            call = begin(i, starts)
            if call is None:
                continue
            token = next(self.tokens)
            try:
                lane.send(token, *call, task.name, task.timeout)
            except INTERRUPTS:
                raise
            except BaseException as error:  # e.g. the function cannot be pickled for a process
                self.timers.add(engine, i, engine.fail(i, error))
                continue
            inflight[token] = i
            if not starts:
                self.queued.append(token)
            elif task.timeout is not None:
                self.timed.append((token, task.timeout))

    def on_stop(self) -> None:
        """The run began stopping: calls still queued in the lane must never start."""
        self.stopped = True
        cancel, cancelled = self.lane.cancel, set()
        for token in list(self.inflight):
            if cancel(token):  # a queued call reports CancelledError: it never ran
                cancelled.add(token)
        if cancelled and self.queued:  # they stay pending until their CancelledError arrives
            self.queued = deque(t for t in self.queued if t not in cancelled)

    def start_deadlines(self) -> None:
        """A timeout's clock starts once its call has been sent."""
        now = monotonic()
        for token, timeout in self.timed:
            heapq.heappush(self.deadlines, (now + timeout + _TIMEOUT_GRACE, token))
        self.timed.clear()

    def wait_time(self) -> float | None:
        """How long to block for outcomes: until the next deadline or due retry (None: no
        limit, unless the clock was slept through: then None means "look again")."""
        deadlines, inflight, timers = self.deadlines, self.inflight, self.timers
        while deadlines and deadlines[0][1] not in inflight:
            heapq.heappop(deadlines)  # finished in time: no need to wake up for it
        wait: float | None = None
        if deadlines:
            wait = max(deadlines[0][0] - monotonic(), 0.0)
        if timers and not self.engine.stopping:
            due = timers.real_wait()
            if due is None:  # slept through the clock: a retry is due
                timers.release_due(self.engine)
                return None
            wait = due if wait is None else min(wait, due)
        gates = self.engine.gates
        if gates and not self.engine.stopping:  # a task waits for a limiter's release or rate
            due = gates.wait()
            if due != math.inf:
                wait = due if wait is None else min(wait, due)
        return wait if wait is not None else _FOREVER

    def on_outcome(self, outcome: Outcome) -> None:
        """A call came back: settle its task, then give its worker to the next queued call."""
        token, ok, value = outcome
        engine, queued = self.engine, self.queued
        if queued and token >= queued[0]:  # still counted as queued (see on_queued_outcome)
            self.on_queued_outcome(token, ok, value)
        i = self.inflight.pop(token, None)
        if i is None:  # a timed-out call came back late: its result is discarded
            self.occupied.discard(token)
        elif ok:
            engine.succeed(i, value)
        elif engine.stopping and is_cancelled_error(value):
            engine.cancel(i)
        elif isinstance(value, INTERRUPTS):
            engine.cancel(i)
            raise value
        else:
            self.timers.add(engine, i, engine.fail(i, value))
        if queued:
            self.promote()

    def on_queued_outcome(self, token: int, ok: bool, value: object) -> None:
        """The outcome of a call still counted as queued: it was cancelled before it ran, or
        it ran — and, the lane being FIFO, so did every call queued before it."""
        queued = self.queued
        if not ok and self.engine.stopping and is_cancelled_error(value):
            if token in queued:  # cancelled by the lane itself, not by on_stop
                queued.remove(token)
            return
        mark_running, inflight = self.engine.mark_running, self.inflight
        while queued and queued[0] <= token:
            mark_running(inflight[queued.popleft()])

    def promote(self) -> None:
        """Workers freed up: the oldest queued calls took them (the lane is FIFO)."""
        queued, inflight, engine = self.queued, self.inflight, self.engine
        running = len(inflight) - len(queued) + len(self.occupied)
        while queued and running < self.workers:
            engine.mark_running(inflight[queued.popleft()])
            running += 1

    def on_deadlines(self) -> None:
        """Fail the attempts whose deadline has passed; give up on their calls."""
        engine, lane, inflight, deadlines = self.engine, self.lane, self.inflight, self.deadlines
        now = monotonic()
        while deadlines and deadlines[0][0] <= now:
            token = heapq.heappop(deadlines)[1]
            i = inflight.pop(token, None)
            if i is None:
                continue  # finished in time
            if not lane.cancel(token) and not lane.abandon(token):
                self.occupied.add(token)
            task = engine.tasks[i]
            assert task.timeout is not None  # only timed tasks have deadlines
            self.timers.add(engine, i, engine.fail(i, TaskTimeoutError(task.name, task.timeout)))
        if self.queued:
            self.promote()
