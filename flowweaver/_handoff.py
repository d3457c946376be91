"""The threaded driver without round trips: worker threads settle their own outcomes.

:class:`ThreadedExecutor`'s plain runs use :func:`drive_handoff` instead of the pool driver.
In the pool driver every task costs two thread wake-ups: a worker posts its outcome and the
driver thread wakes to settle it, then the driver sends the next call and a worker wakes to run
it. On a chain that round trip is the whole cost of a task (about 40 µs against 1.3 µs inline).

Design:

* **The engine is still the only one that decides**, under one lock (the run's). A worker that
  finishes a call takes the lock and reports the outcome with :meth:`Engine.succeed` /
  :meth:`Engine.fail` itself, then asks the engine's ready queue for its next task and runs it
  on the same thread, so a chain runs without a single wake-up. Workers never decide anything
  the pool driver would not: the same engine calls, in the same order rules (a due retry is
  released by the driver before newer work).
* **Idle workers wait on a condition of that lock.** A worker that takes a task and sees more
  ready wakes one idle worker (which does the same), or starts a thread while the run has fewer
  than ``max_workers``: a wide graph fans out without the driver. It wakes none while another
  worker is on its way to the ready queue (just started, just woken, or back from a call and
  waiting for the lock): that one will take the work and look again. So short calls keep few
  threads contending for the lock, and long ones still fan out to every thread. No more than
  ``max_workers`` calls ever run at once: a worker runs one call at a time, and a thread is
  started only while fewer than ``max_workers`` are live (one stuck in an abandoned call is
  not, as in the pool).
* **The driver thread waits only for what has a time or comes from outside**: the run's end,
  the earliest timeout deadline, the earliest retry timer (through the run's :class:`Clock`, as
  every driver), and a stop request or Ctrl-C. A worker wakes it only when one of those moves
  earlier (a new deadline sooner than the one it sleeps until, a retry with a delay, the run's
  end, an interrupt), so a chain of tasks with equal timeouts wakes it about once per timeout.
  On the main thread it also looks up every ``_SIGNAL_POLL`` seconds, so a Ctrl-C that lands
  as its wait begins is not left until the run ends.
* **Timeouts**: a call past its deadline (``_TIMEOUT_GRACE`` after its timeout, as in the pool)
  is failed with :class:`TaskTimeoutError` by the driver; its thread is abandoned (its late
  outcome discarded, the thread ends when the call returns) and a new thread may take its place.
* **Stops**: fail-fast and stop requests start nothing new; running calls finish. Ctrl-C on the
  driver (or ``KeyboardInterrupt``/``SystemExit`` raised by a task) abandons the running calls
  and :meth:`Engine.finish` settles what is left, as in the pool driver.

Which runs: those with no observers when they start (no task's ``on_status_change`` or
``on_retry``, no monitors), no ``limits=``, no store or ``cache=True`` and no subflow tasks
(:func:`handoff_suits`). Mapped tasks are fine (their elements are ready indices like any
task's, and a generator upstream is pulled under the lock), and so are OpenTelemetry spans (a
task's span is begun and ended under the lock, and current inside its call, on the worker).
Every other run takes the pool driver, where observers are called on the driver thread.
Observers that only appear during a run (the tasks of a workflow that a task returned) are
called on the thread that settles their task, always under the run's lock: never two at once.
"""

from __future__ import annotations

import heapq
import itertools
import math
import sys
import threading
from collections import deque
from time import monotonic
from typing import TYPE_CHECKING, Any

from ._calls import INTERRUPTS, AwaitRunner, invoke
from ._drivers import _TIMEOUT_GRACE, RetryTimers
from ._errors import TaskTimeoutError
from ._subflow import NESTED

if TYPE_CHECKING:
    from collections.abc import Awaitable

    from ._engine import Call, Engine

__all__ = ["HandoffDriver", "drive_handoff", "handoff_suits"]

#: ``Event.wait(None)`` cannot be interrupted on every platform; a day is as good.
_FOREVER = 86_400.0
#: Longest wait of a driver on the main thread. A Ctrl-C that lands just as a lock wait begins
#: (a C-level race in CPython) is seen only when the wait ends; the pool driver wakes for every
#: outcome, but this one may sleep through a whole run of chained tasks.
_SIGNAL_POLL = 0.1


def handoff_suits(engine: Engine) -> bool:
    """Whether ``engine``'s run can be driven by :class:`HandoffDriver` (module docstring)."""
    from ._engine import Engine

    kind = type(engine)
    if kind is not Engine:  # a mapping run's engine (loaded only by a run that maps: look)
        mapping = sys.modules.get("flowweaver._mapping")
        if mapping is None or kind is not mapping.MapEngine:
            return False  # a store or cache=True: its commits stay on the driver thread
    if engine.monitors:
        return False
    if engine.gates is not None or any(spec is NESTED for spec in engine.specs):
        return False
    return not any(
        task.on_status_change is not None or task.on_retry is not None for task in engine.tasks
    )


def drive_handoff(engine: Engine, size: int, name: str = "flowweaver-run") -> None:
    """Run ``engine`` on up to ``size`` worker threads; finish it. See :class:`HandoffDriver`."""
    HandoffDriver(engine, size, name).run()


class HandoffDriver:
    """One run on worker threads that settle their own outcomes (module docstring).

    Everything below is read and written under :attr:`lock`, except where a method says so.

    Args:
        engine: The run.
        size: Most calls running at once (``ThreadedExecutor.max_workers``).
        name: Prefix of the worker threads' names.
    """

    __slots__ = (
        "abandoned",
        "awake",
        "busy",
        "closed",
        "deadlines",
        "engine",
        "error",
        "idle",
        "lock",
        "name",
        "own_runner",
        "returning",
        "runners",
        "size",
        "spawned",
        "threads",
        "timed",
        "timers",
        "tokens",
        "wake",
        "wakes_at",
        "work",
    )

    def __init__(self, engine: Engine, size: int, name: str = "flowweaver-run") -> None:
        self.engine = engine
        self.size = size
        self.name = name
        self.lock = threading.Lock()
        #: Idle workers wait here for ready work (or the run's end).
        self.work = threading.Condition(self.lock)
        #: Wakes the driver thread; set (under the lock) only when its wait must change.
        self.wake = threading.Event()
        #: Monotonic time the driver sleeps until (inf: until woken).
        self.wakes_at = math.inf
        self.threads: list[threading.Thread] = []
        self.abandoned: set[threading.Thread] = set()
        self.spawned = 0
        self.idle = 0
        #: Workers neither idle nor abandoned: in a call, or on their way to the ready queue.
        self.awake = 0
        #: One entry per worker whose call has returned and that waits for the lock (appended
        #: without the lock: ``deque.append`` is atomic), so it will soon look for work.
        self.returning: deque[None] = deque()
        #: Calls running on workers that are not abandoned.
        self.busy = 0
        #: Timed calls running: token -> (task index, thread).
        self.timed: dict[int, tuple[int, threading.Thread]] = {}
        #: ``(due, token)`` of timed calls, on the monotonic clock.
        self.deadlines: list[tuple[float, int]] = []
        self.tokens = itertools.count()
        self.timers = RetryTimers(engine.clock)
        #: Set once the engine is finished: workers leave without touching it.
        self.closed = False
        #: What a worker hit that must stop the run and reach the caller (an interrupt).
        self.error: BaseException | None = None
        #: Each thread's event loop for awaitables an observer returns.
        self.runners: dict[int, AwaitRunner] = {}
        #: The driver thread's.
        self.own_runner = AwaitRunner()

    # -- the driver thread -------------------------------------------------------------------

    def run(self) -> None:
        """Drive the run to its end; finish the engine (also when interrupted)."""
        engine, lock = self.engine, self.lock
        self.runners[threading.get_ident()] = self.own_runner
        engine.start(self._await, self._wake_driver, self.size)
        ended = False
        on_main = threading.current_thread() is threading.main_thread()
        longest = _SIGNAL_POLL if on_main else _FOREVER
        try:
            with lock:
                self._dispatch()
            while True:
                with lock:
                    self.wake.clear()  # a stop request from now on stays seen
                    wait = self._step()
                    if wait is None:
                        ended = True
                        break
                    self.wakes_at = monotonic() + wait if wait else -math.inf
                if wait:
                    self.wake.wait(min(wait, longest))
        except BaseException:
            engine.request_stop()
            raise
        finally:
            with lock:
                self.closed = True
                self.work.notify_all()
                try:
                    engine.finish()
                finally:
                    self.own_runner.close()
                live = [t for t in self.threads if t not in self.abandoned]
            if ended:  # after an interrupt a call may run on forever: the threads are daemons
                for thread in live:
                    thread.join()

    def _step(self) -> float | None:
        """Driver, under the lock: act on what is due; seconds to wait (None: the run ended)."""
        engine, timers = self.engine, self.timers
        if self.error is not None:
            raise self.error
        if self.deadlines:
            self._expire()
        wait = math.inf
        if timers and not engine.stopping:
            due = timers.real_wait()
            if due is None:  # slept through the clock: a retry is due
                timers.release_due(engine)
                self._dispatch()
                return 0.0
            if due <= 0:
                timers.release_due(engine)
                self._dispatch()
                if timers:
                    due = timers.real_wait()
                    if due is None:
                        return 0.0
                    wait = due
            else:
                wait = due
        gates = engine.gates  # a child run's tasks with limits= (the run's own have none)
        if gates and not engine.stopping:  # woken by a release, or a rate is due
            gates.reopen(engine.ready.append)
            self._dispatch()
            wait = min(wait, gates.wait())
        if self.busy == 0 and not self.has_work() and (engine.stopping or not (timers or gates)):
            return None
        if self.deadlines:
            wait = min(wait, max(self.deadlines[0][0] - monotonic(), 0.0))
        return wait

    def has_work(self) -> bool:
        """Ready work that no worker has taken yet (while the run may start it)."""
        return bool(self.engine.ready) and not self.engine.stopping

    def _expire(self) -> None:
        """Driver, under the lock: fail the attempts whose deadline has passed."""
        engine, deadlines, timed = self.engine, self.deadlines, self.timed
        now = monotonic()
        while deadlines and deadlines[0][0] <= now:
            token = heapq.heappop(deadlines)[1]
            entry = timed.pop(token, None)
            if entry is None:
                continue  # finished in time
            i, thread = entry
            self.abandoned.add(thread)  # its late outcome is discarded; it ends then
            self.busy -= 1
            self.awake -= 1
            task = engine.tasks[i]
            assert task.timeout is not None  # only timed tasks have deadlines
            self.timers.add(engine, i, engine.fail(i, TaskTimeoutError(task.name, task.timeout)))
        while deadlines and deadlines[0][1] not in timed:
            heapq.heappop(deadlines)
        self._dispatch()

    def _wake_driver(self) -> None:
        """Any thread, with or without the lock: the engine's wake-up (a stop request)."""
        self.wake.set()

    def _await(self, awaitable: Awaitable[object]) -> object:
        """Under the lock: finish an observer's awaitable on this thread's event loop."""
        runner = self.runners.get(threading.get_ident())
        if runner is None:  # pragma: no cover - every thread that settles registers one
            runner = self.runners[threading.get_ident()] = AwaitRunner()
        return runner.run(awaitable, "callback", None)

    # -- shared by the driver and the workers (under the lock) --------------------------------

    def _dispatch(self) -> None:
        """Ready work waits: wake an idle worker, or start one while the run has room."""
        if not self.has_work() or self.awake > self.busy or self.returning:
            return  # nothing to do, or a worker between two calls is on its way to it
        if self.idle:  # counted here, so a second call wakes a second worker
            self.idle -= 1
            self.awake += 1
            self.work.notify()
        elif len(self.threads) - len(self.abandoned) < self.size and not self.closed:
            self.awake += 1
            thread = threading.Thread(
                target=self._work, name=f"{self.name}-{self.spawned}", daemon=True
            )
            self.spawned += 1
            self.threads.append(thread)
            thread.start()

    def _take(self, me: threading.Thread) -> tuple[int, int, Call] | None:
        """Worker, under the lock: begin the next ready task, waiting while there is none.

        Returns:
            ``(task, token, call)`` (token -1: the call has no timeout), or None: leave.
        """
        engine = self.engine
        ready, tasks, begin = engine.ready, engine.tasks, engine.begin
        while True:
            if self.closed or me in self.abandoned:
                return None
            if ready and not engine.stopping:
                i = ready.popleft()
                call = begin(i)
                if call is None:
                    continue  # settled without running (skipped, a failing when=)
                self.busy += 1
                if ready:
                    self._dispatch()
                timeout = tasks[i].timeout
                if timeout is None:
                    return i, -1, call
                token = next(self.tokens)
                self.timed[token] = (i, me)
                due = monotonic() + timeout + _TIMEOUT_GRACE
                heapq.heappush(self.deadlines, (due, token))
                if due < self.wakes_at:
                    self.wake.set()
                return i, token, call
            if self.busy == 0 and (engine.stopping or not self.timers):
                self.wake.set()  # nothing runs, nothing is ready: the run is over
            self.idle += 1
            self.awake -= 1
            self.work.wait()  # whoever wakes us counts us back (_dispatch)

    def _settle(self, i: int, token: int, ok: bool, value: Any) -> None:
        """Worker, under the lock: report a call's outcome to the engine."""
        engine = self.engine
        if token >= 0 and self.timed.pop(token, None) is None:
            return  # timed out: the driver failed the attempt already
        self.busy -= 1
        if ok:
            engine.succeed(i, value)
        elif isinstance(value, INTERRUPTS):
            engine.cancel(i)
            if self.error is None:
                self.error = value
            engine.request_stop()
        else:
            delay = engine.fail(i, value)
            if delay is not None:
                self.timers.add(engine, i, delay)
                if self.timers:
                    self.wake.set()  # the driver keeps the timers

    # -- a worker thread ---------------------------------------------------------------------

    def _work(self) -> None:
        me = threading.current_thread()
        runner = AwaitRunner()
        lock, tasks, returning = self.lock, self.engine.tasks, self.returning
        lock.acquire()
        try:
            self.runners[me.ident or 0] = runner
            while True:
                job = self._take(me)
                if job is None:
                    return
                i, token, (fn, args, kwargs) = job
                name, timeout = tasks[i].name, tasks[i].timeout
                lock.release()
                try:
                    value = invoke(fn, args, kwargs, name, timeout, runner)
                    ok = True
                except BaseException as error:  # the task's outcome, settled below
                    value, ok = error, False
                finally:
                    returning.append(None)
                    lock.acquire()
                    returning.pop()
                if self.closed or me in self.abandoned:
                    self._dispatch()  # it was counted as on its way to the ready queue
                    return
                self._settle(i, token, ok, value)
                # Hold nothing of this call while idle: a run may release its inputs and
                # result (keep_results=) and expects them gone.
                job = fn = args = kwargs = value = None  # type: ignore[assignment]
        except BaseException as error:  # an interrupt from an observer, or a bug: stop the run
            if self.error is None:
                self.error = error
            self.engine.request_stop()
        finally:
            self.runners.pop(me.ident or 0, None)
            lock.release()
            runner.close()
