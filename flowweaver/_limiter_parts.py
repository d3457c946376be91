"""The parts of a :class:`~flowweaver.Limiter`: its rate windows and its queued callers.

* :class:`Window` is one rate window's exact sliding log of grants (not a leaky bucket): in
  *any* interval of ``per`` seconds at most ``limit`` tokens are granted, bursts included.
* A :class:`Waiter` is a caller queued for a permit, woken when it may try again: a thread
  (:class:`ThreadWaiter`, on a ``threading.Event``) or a coroutine (:class:`LoopWaiter`, on an
  ``asyncio.Event`` of its own loop, set through ``call_soon_threadsafe``).

Everything here is used under the limiter's lock.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections import deque
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ._limiter import Rate

__all__ = ["WAIT_FOR_RELEASE", "LoopWaiter", "ThreadWaiter", "Waiter", "Window"]

#: What a limiter answers when only a release can help: wait for a wake-up.
WAIT_FOR_RELEASE = math.inf


class Waiter(Protocol):
    """A queued caller: how many tokens it asks for, and how to wake it."""

    amount: float

    def wake(self) -> bool:
        """Let it try again; False when it is gone (the limiter drops it, wakes the next)."""
        ...


class ThreadWaiter:
    """A thread blocked in ``acquire()``."""

    __slots__ = ("amount", "event")

    def __init__(self, amount: float) -> None:
        self.amount = amount
        self.event = threading.Event()

    def wake(self) -> bool:
        self.event.set()
        return True


class LoopWaiter:
    """A coroutine suspended in ``acquire_async()``, on the loop it runs on."""

    __slots__ = ("amount", "event", "loop")

    def __init__(self, amount: float) -> None:
        import asyncio

        self.amount = amount
        self.loop = asyncio.get_running_loop()
        self.event = asyncio.Event()

    def wake(self) -> bool:
        with contextlib.suppress(RuntimeError):  # its loop is closed: nobody is left to wake
            self.loop.call_soon_threadsafe(self.event.set)
        return True


class Window:
    """One rate window's log of grants still inside it: ``(time, amount)``, oldest first."""

    __slots__ = ("grants", "limit", "per", "used")

    def __init__(self, rate: Rate) -> None:
        self.limit = rate.limit
        self.per = rate.per
        self.grants: deque[tuple[float, float]] = deque()
        self.used = 0.0

    def expire(self, now: float) -> None:
        grants = self.grants
        while grants and grants[0][0] + self.per <= now:
            self.used -= grants.popleft()[1]
        if not grants:
            self.used = 0.0  # no float drift survives an empty window

    def delay_for(self, amount: float, now: float) -> float:
        """Seconds until ``amount`` more tokens fit (0 when they fit now); call after expire."""
        excess = self.used + amount - self.limit
        if excess <= 0:
            return 0.0
        for granted_at, spent in self.grants:
            excess -= spent
            if excess <= 1e-12:
                return granted_at + self.per - now
        return WAIT_FOR_RELEASE  # unreachable once amount <= limit is checked
