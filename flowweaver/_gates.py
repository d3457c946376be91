"""Limiters in front of workflow tasks: ``Task(limits=[...])``.

Design:

* **Acquired by the engine, before dispatch.** :meth:`Engine.begin` asks :meth:`Gates.take`
  for a ready task's permits (a slot and a token of each of its limiters, in order) before it
  marks the task ``running``. When one is missing, the permits already taken are given back,
  the task is *parked* here, still ``pending``, and the driver moves on: no worker is held and
  no thread is blocked for it.
* **Woken by events, not by polling.** Each limiter calls :meth:`Gates.kick` after every
  release, from whichever thread released (another workflow, a pipeline, a ``with`` block);
  ``kick`` only sets a flag and wakes the driver. A task parked only by a rate window knows
  when its tokens come back: the driver sleeps at most until :meth:`Gates.wait`.
* **Only the driver thread moves parked tasks** (:meth:`Gates.reopen`): back into the ready
  queue, where ``begin`` tries again. Permits are given back when the attempt ends (the
  engine's ``succeed``/``fail``/settle), and an adaptive limiter learns the outcome there.

Permits are taken with :meth:`Limiter.try_acquire`, which does not queue behind callers
blocked in ``with limiter:``; a task's later limiters are tried only once its first ones are
free, and a rate token spent before a later limiter said no is not given back.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from ._limiter import Limiter

__all__ = ["Gates"]


class Gates:
    """The limiters of one run's tasks: permits held, tasks parked, wake-ups."""

    __slots__ = (
        "_due",
        "_held",
        "_kicked",
        "_limiters",
        "_parked",
        "_waited",
        "_wake",
        "clock_now"
    )  # fmt: skip

    def __init__(self, limiters: set[Limiter], clock_now: Callable[[], float]) -> None:
        self._limiters = tuple(limiters)
        self._held: dict[int, Sequence[Limiter]] = {}
        self._parked: list[int] = []
        self._waited: set[int] = set()
        self._due = math.inf
        self._kicked = False
        self._wake: Callable[[], object] = _nothing
        self.clock_now = clock_now

    def open(self, wake: Callable[[], object]) -> None:
        """Start listening to the limiters; ``wake`` interrupts the driver's wait."""
        self._wake = wake
        for limiter in self._limiters:
            limiter.add_listener(self.kick)

    def close(self) -> None:
        """Stop listening; give back every permit still held (a run that ends)."""
        for limiter in self._limiters:
            limiter.remove_listener(self.kick)
        for i in list(self._held):
            self.release(i, None)
        self._parked.clear()

    def __bool__(self) -> bool:
        """Whether some task waits for a permit."""
        return bool(self._parked)

    def kick(self) -> None:
        """A limiter was released (any thread): let the driver try the parked tasks again."""
        if self._kicked:
            return
        # Set even with nothing parked: a task being parked right now sees it and tries again.
        self._kicked = True
        if self._parked:
            self._wake()

    def take(self, i: int, limits: Sequence[Limiter]) -> bool:
        """Take task ``i``'s permits (True), or park it until they may be free (False)."""
        for k, limiter in enumerate(limits):
            delay = limiter.try_acquire()
            if delay != 0.0:
                for taken in limits[:k]:
                    taken.release()
                self._parked.append(i)
                self._waited.add(i)
                if delay != math.inf:
                    self._due = min(self._due, self.clock_now() + delay)
                return False
        self._held[i] = limits
        return True

    def waited(self, i: int) -> bool:
        """Whether task ``i`` was parked before (its ``when=`` was asked already)."""
        return i in self._waited

    def release(self, i: int, error: BaseException | None) -> None:
        """Task ``i``'s attempt ended (``error``: how); give its permits back."""
        limits = self._held.pop(i, None)
        if limits is None:
            return
        for limiter in limits:
            if limiter.adaptive:
                limiter.record(error)
            limiter.release()

    def wait(self) -> float:
        """Seconds until a rate-parked task may try again (``inf``: only a release helps)."""
        if self._kicked:
            return 0.0
        return max(self._due - self.clock_now(), 0.0) if self._due != math.inf else math.inf

    def reopen(self, ready_append: Callable[[int], object]) -> None:
        """Driver thread: if woken or due, put every parked task back in the ready queue."""
        if not self._parked or (not self._kicked and self.clock_now() < self._due):
            return
        self._kicked = False
        self._due = math.inf
        parked, self._parked = self._parked, []
        for i in parked:
            ready_append(i)


def _nothing() -> None:
    return None
