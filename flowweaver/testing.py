"""Helpers for testing code that uses flowweaver: a clock that never waits.

Example:
    >>> from flowweaver import Task, Workflow
    >>> from flowweaver.testing import FakeClock
    >>> calls = []
    >>> def flaky() -> str:
    ...     calls.append(1)
    ...     if len(calls) < 3:
    ...         raise ConnectionError("down")
    ...     return "up"
    >>> wf = Workflow("w")
    >>> wf.add_task(Task("call", fn=flaky, retries=2, delay=10.0, jitter=0.0))
    >>> clock = FakeClock()
    >>> wf.execute(clock=clock).result("call"), clock.sleeps, clock.now()
    ('up', [10.0, 20.0], 30.0)
"""

from __future__ import annotations

import asyncio
import threading

__all__ = ["FakeClock"]


class FakeClock:
    """A :class:`~flowweaver.Clock` whose waits return at once, advancing it, and are recorded.

    Pass it as ``clock=`` to a workflow run or a :class:`~flowweaver.Pipeline`: retry back-off
    and dashboard intervals then take no real time, and :attr:`sleeps` says which waits were
    asked for, in order. Calls that run meanwhile (other tasks, timeouts) still take real
    time; only waiting is faked. Thread-safe.

    Args:
        start: The time :meth:`now` reads first.
    """

    __slots__ = ("_lock", "sleeps", "t")

    def __init__(self, start: float = 0.0) -> None:
        #: The current time, in seconds.
        self.t = float(start)
        #: Every wait asked for, in seconds, in order.
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"FakeClock(t={self.t!r}, sleeps={len(self.sleeps)})"

    def now(self) -> float:
        """The current fake time."""
        return self.t

    def advance(self, seconds: float) -> None:
        """Move the time forward by ``seconds`` without recording a wait."""
        with self._lock:
            self.t += seconds

    def sleep(self, seconds: float) -> None:
        """Record the wait and advance the time by it; return at once."""
        with self._lock:
            self.sleeps.append(seconds)
            self.t += seconds

    async def sleep_async(self, seconds: float) -> None:
        """As :meth:`sleep`, then let the event loop run other work once."""
        self.sleep(seconds)
        await asyncio.sleep(0)

    def sleep_time(self, seconds: float) -> float:
        """As :meth:`sleep`: the wait is over at once, so a driver blocks for no real time."""
        self.sleep(seconds)
        return 0.0
