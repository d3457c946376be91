"""The parts of a :class:`~flowweaver.Limiter`: its rate windows and its queued callers.

* :class:`Window` is one rate window's exact sliding log of grants (not a leaky bucket): in
  *any* interval of ``per`` seconds at most ``limit`` tokens are granted, bursts included.
* A :class:`Waiter` is a caller queued for a permit, woken when it may try again: a thread
  (:class:`ThreadWaiter`, on a ``threading.Event``) or a coroutine (:class:`LoopWaiter`, on an
  ``asyncio.Event`` of its own loop, set through ``call_soon_threadsafe``).

The public records :class:`Rate` and :class:`LimiterStatistics` live here too (exported from
``_limiter``). Waiters and windows are used under the limiter's lock.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections import deque
from dataclasses import dataclass
from typing import Protocol, cast

from ._checks import check_number
from ._errors import ConfigurationError

__all__ = [
    "WAIT_FOR_RELEASE",
    "LimiterStatistics",
    "LoopWaiter",
    "Rate",
    "ThreadWaiter",
    "Waiter",
    "Window",
    "parse_rates",
]

#: What a limiter answers when only a release can help: wait for a wake-up.
WAIT_FOR_RELEASE = math.inf


@dataclass(frozen=True, slots=True)
class Rate:
    """A rate window: at most ``limit`` tokens in any ``per`` seconds.

    Examples:
        >>> from flowweaver import Limiter
        >>> Limiter(rate=[Rate(10, per=1.0), Rate(500, per=60.0)]).rates
        (Rate(limit=10.0, per=1.0), Rate(limit=500.0, per=60.0))

    Raises:
        ConfigurationError: ``limit`` or ``per`` is not a positive finite number.
    """

    limit: float
    per: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "limit", check_number("Rate", "limit", self.limit, strict=True))
        object.__setattr__(self, "per", check_number("Rate", "per", self.per, strict=True))


@dataclass(frozen=True, slots=True)
class LimiterStatistics:
    """A moment's view of a :class:`Limiter` (for dashboards and tests).

    Attributes:
        holders: Permits taken and not yet released (0 when there is no ``concurrency``).
        waiting: Callers queued for a permit.
        granted: Permits granted since the limiter was made.
    """

    holders: int
    waiting: int
    granted: int


class Waiter(Protocol):
    """A queued caller: how many tokens it asks for, and how to wake it."""

    amount: float

    @property
    def thread(self) -> int | None:
        """The thread that must run for it to take its permit (blocked in it, or driving
        its run); None for a coroutine."""
        ...

    def wake(self) -> bool:
        """Let it try again; False when it is gone (the limiter drops it, wakes the next)."""
        ...


class ThreadWaiter:
    """A thread blocked in ``acquire()``."""

    __slots__ = ("amount", "event", "thread")

    def __init__(self, amount: float) -> None:
        self.amount = amount
        self.event = threading.Event()
        self.thread: int | None = threading.get_ident()

    def wake(self) -> bool:
        self.event.set()
        return True


class LoopWaiter:
    """A coroutine suspended in ``acquire_async()``, on the loop it runs on."""

    __slots__ = ("amount", "event", "loop")

    thread: int | None = None

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


def parse_rates(owner: str, rate: object, per: object) -> tuple[Rate, ...]:
    per = check_number(owner, "per", per, strict=True)
    if rate is None:
        return ()
    if isinstance(rate, int | float) and not isinstance(rate, bool):
        return (Rate(check_number(owner, "rate", rate, strict=True), per=per),)
    rates: tuple[object, ...] = tuple(rate) if isinstance(rate, list | tuple) else ()
    if not rates or not all(isinstance(r, Rate) for r in rates):
        raise ConfigurationError(
            f"{owner}: rate must be a positive number or a sequence of Rate, got {rate!r}"
        )
    return cast("tuple[Rate, ...]", rates)
