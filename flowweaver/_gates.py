"""Limiters in front of workflow tasks: ``Task(limits=[...])``.

Design:

* **Acquired by the engine, before dispatch.** :meth:`Engine.begin` asks :meth:`Gates.take`
  for a ready task's permits (a slot and a token of each of its limiters) before it marks the
  task ``running`` — a mapped task's elements each take their own. A task that cannot have
  all of them now is *parked* here, still ``pending``, and the driver moves on: no worker is
  held and no thread is blocked for it.
* **All or nothing.** When one limiter refuses, the permits the others granted are undone
  (``Limiter._refund``: the slot and the rate tokens come back as if never granted), so a
  waiting task never holds, or spends, anything.
* **First come, first served, with everyone.** A parked task takes a place (a :class:`Ticket`)
  in the queue of the limiter that refused it: the same FIFO queue as threads blocked in
  ``with limiter:`` and coroutines in ``async with limiter:``, so neither kind can overtake
  the other, and another workflow's or pipeline's callers do not starve it (nor it them).
  A task waits in one queue at a time; if another of its limiters refuses it later, it moves
  to that one's queue (holding places in two queues could deadlock two tasks that need the
  same limiters in the other order).
* **Woken by events, not by polling.** A limiter wakes the head of its queue when a release
  may let it in (from whichever thread released); for a ticket that only records the task as
  woken and wakes the driver. A head that waits for its rate has a due time on *that
  limiter's* clock: the driver blocks at most for what :meth:`Gates.wait` says that clock asks
  (``Clock.sleep_time``), so a limiter on a :class:`~flowweaver.testing.FakeClock` parks a
  task for no real time: the wait advances the fake clock and the task tries again.
* **Only the driver thread moves parked tasks** (:meth:`Gates.reopen`): back into the ready
  queue, where ``begin`` tries again. Permits are given back when the attempt ends (the
  engine's ``succeed``/``fail``/settle), and an adaptive limiter learns the outcome there.
* **A stopping run leaves at once.** The moment the engine starts stopping, :meth:`stop` takes
  its tickets out of every queue (slot and rate waits alike), so callers of other runs behind
  them are not held up until its calls in flight end; :meth:`close` ends the rest.
"""

from __future__ import annotations

import heapq
import math
import threading
from collections import deque
from typing import TYPE_CHECKING

from ._clock import DUE_SLACK, sleep_time_of

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from ._clock import Clock
    from ._limiter import Grant, Limiter

__all__ = ["Gates", "Ticket"]


class Ticket:
    """A parked task's place in one limiter's queue (a limiter ``Waiter``)."""

    __slots__ = ("gates", "i", "limiter")

    #: Tokens a task's permit costs.
    amount: float = 1.0

    def __init__(self, gates: Gates, i: int) -> None:
        self.gates = gates
        self.i = i
        #: The limiter whose queue it is in, or None.
        self.limiter: Limiter | None = None

    @property
    def thread(self) -> int | None:
        """The thread driving its run (a ``with limiter:`` on it may go first)."""
        return self.gates.thread

    def wake(self) -> bool:
        """Its limiter may let it in (any thread, under the limiter's lock)."""
        gates = self.gates
        if gates.closed or gates.is_stopping():
            return False  # it will never take a permit: the limiter drops it, wakes the next
        gates.woken.append(self.i)  # atomic; only the driver thread reads it (reopen)
        gates.wake()
        return True


class Gates:
    """The limiters of one run's tasks: permits held, tasks parked, wake-ups."""

    __slots__ = (
        "_due",
        "_held",
        "_limiters",
        "_reopened",
        "_tickets",
        "_waited",
        "closed",
        "is_stopping",
        "thread",
        "wake",
        "woken",
    )

    def __init__(
        self,
        limiters: set[Limiter],
        is_stopping: Callable[[], bool] = lambda: False,
    ) -> None:
        #: Every limiter whose queue a ticket of this run may be in (a child run's tasks may
        #: bring more: see ``take``). Only added to, by the driver; read by ``stop``.
        self._limiters = set(limiters)
        #: Task -> the permits its attempt holds.
        self._held: dict[int, list[tuple[Limiter, Grant]]] = {}
        #: Parked tasks -> their place in a limiter's queue.
        self._tickets: dict[int, Ticket] = {}
        self._waited: set[int] = set()
        #: Parked tasks put back in the ready queue and not begun again yet.
        self._reopened: set[int] = set()
        #: Clock -> a heap of ``(due, task)``: parked tasks at the head of a queue that wait
        #: for a rate, due on the clock of the limiter that refused them (one, usually).
        self._due: dict[Clock, list[tuple[float, int]]] = {}
        #: Parked tasks a limiter woke (appended from any thread; a deque's append and
        #: popleft are atomic, so none is lost while the driver empties it).
        self.woken: deque[int] = deque()
        self.closed = False
        self.wake: Callable[[], object] = _nothing
        #: The driver's thread (known once the run opens).
        self.thread: int | None = None
        self.is_stopping = is_stopping

    def open(self, wake: Callable[[], object]) -> None:
        """The run starts on this thread; ``wake`` interrupts its wait (from any thread)."""
        self.wake = wake
        self.thread = threading.get_ident()

    def close(self) -> None:
        """Leave every queue; give back every permit still held (a run that ends)."""
        self.closed = True
        for ticket in self._tickets.values():
            if ticket.limiter is not None:
                ticket.limiter._leave(ticket)
        self._tickets.clear()
        self._reopened.clear()
        for i in list(self._held):
            self.release(i, None)

    def stop(self) -> None:
        """The run is stopping (any thread): its parked tasks will never take a permit, so
        they leave every limiter's queue now, and whoever waited behind them is served
        without waiting for the run's calls in flight to end (a task that waits for a rate
        is woken by nothing else). Permits still held are given back as their calls end."""
        for limiter in tuple(self._limiters):
            limiter._drop(self._owns)

    def _owns(self, waiter: object) -> bool:
        return type(waiter) is Ticket and waiter.gates is self

    def __bool__(self) -> bool:
        """Whether some task waits for a permit."""
        return bool(self._tickets)

    def take(self, i: int, limits: Sequence[Limiter]) -> bool:
        """Take task ``i``'s permits, all of them (True), or park it until a limiter wakes
        it or its rate is due (False), holding none."""
        self._reopened.discard(i)
        ticket = self._tickets.get(i)
        if ticket is not None and ticket.limiter is not None and limits[0] is not ticket.limiter:
            first = ticket.limiter  # try where it waits first: it may be at the head there
            limits = [first, *(x for x in limits if x is not first)]
        granted: list[tuple[Limiter, Grant]] = []
        for limiter in limits:
            queued = ticket is not None and ticket.limiter is limiter
            if ticket is None:
                ticket = Ticket(self, i)
            delay, grant = limiter._take_for(ticket, queued)
            if grant is not None:
                if queued:
                    ticket.limiter = None
                granted.append((limiter, grant))
                continue
            for taken, given in granted:
                taken._refund(given)
            if ticket.limiter is not limiter:
                if ticket.limiter is not None:
                    ticket.limiter._leave(ticket)  # it waits for this one now
                ticket.limiter = limiter
                self._limiters.add(limiter)
            if self.is_stopping():  # the run stopped as it was refused: it takes nothing more
                limiter._leave(ticket)
            self._tickets[i] = ticket
            self._waited.add(i)
            if delay != math.inf:
                clock = limiter._clock
                heapq.heappush(self._due.setdefault(clock, []), (clock.now() + delay, i))
            return False
        self._tickets.pop(i, None)
        self._waited.discard(i)
        self._held[i] = granted
        return True

    def waited(self, i: int) -> bool:
        """Whether task ``i`` is parked (its ``when=`` was asked already)."""
        return i in self._waited

    def release(self, i: int, error: BaseException | None) -> None:
        """Task ``i``'s attempt ended (``error``: how); give its permits back."""
        held = self._held.pop(i, None)
        if held is None:
            return
        for limiter, _ in held:
            if limiter.adaptive:
                limiter.record(error)
            limiter.release()

    def wait(self) -> float:
        """Real seconds to block (a wake-up ends it early) until a parked task may try again
        (``inf``: only a wake-up helps). A rate wait is as long as its limiter's clock says:
        a test clock advances itself and asks for none; a clock without ``sleep_time`` is
        slept through here, as for retry waits."""
        if self.woken:
            return 0.0
        wait = math.inf
        for clock, heap in self._due.items():
            if not heap:
                continue
            left = heap[0][0] - clock.now()
            if left <= DUE_SLACK:
                return 0.0
            sleep_time = sleep_time_of(clock)
            if sleep_time is None:
                clock.sleep(left)
                return 0.0
            wait = min(wait, max(sleep_time(left), 0.0))
        return wait

    def reopen(self, ready_append: Callable[[int], object]) -> None:
        """Driver thread: put the parked tasks that were woken or are due back in the ready
        queue (the others keep their places and wait)."""
        tickets = self._tickets
        if not tickets:
            self.woken.clear()
            self._due.clear()
            return
        back: list[int] = []
        woken = self.woken
        while woken:
            back.append(woken.popleft())
        for clock, due in self._due.items():
            if due:
                now = clock.now() + DUE_SLACK
                while due and due[0][0] <= now:
                    back.append(heapq.heappop(due)[1])
        reopened = self._reopened
        for i in back:
            if i in tickets and i not in reopened:  # once: it may be woken twice meanwhile
                reopened.add(i)
                ready_append(i)


def _nothing() -> None:
    return None
