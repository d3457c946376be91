"""The clock that times waits: retry back-off, dashboard intervals.

Whoever waits (the workflow drivers, a pipeline's workers) waits through a :class:`Clock`, so a
test can replace time instead of sleeping. The clock, not the code that waits, says how a wait
happens (:meth:`Clock.sleep_time`): a driver never guesses "test clock" from the clock's type.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["DUE_SLACK", "Clock", "SystemClock", "sleep_time_of"]

#: A due time this little ahead of ``now()`` counts as reached. Waiting ``due - now`` on a
#: clock that adds it to its time (a test clock) can land an ulp short of ``due`` (floating
#: point: ``t + (due - t) < due`` whenever ``due > 2 * t``), which would cost a second wait
#: of 1e-16 s; no real clock can wait that little anyway.
DUE_SLACK = 1e-9


@runtime_checkable
class Clock(Protocol):
    """Where waits come from. Replace it in tests to make retries instant
    (:class:`flowweaver.testing.FakeClock`).

    A clock may also define ``sleep_time(seconds) -> float``: how many *real* seconds a driver
    that can be woken by other work (a finished call) should block so that ``seconds`` pass on
    this clock. A real clock returns ``seconds``; a test clock advances itself and returns 0.
    A clock without it is slept through with :meth:`sleep`, which blocks the driver: give a
    clock of your own that follows real time a ``sleep_time``, or an unrelated task that
    finishes during a retry wait is only seen when the wait is over.
    """

    def now(self) -> float:
        """Monotonic time in seconds."""
        ...

    def sleep(self, seconds: float) -> None:
        """Block the calling thread for ``seconds``."""
        ...

    async def sleep_async(self, seconds: float) -> None:
        """Suspend the calling coroutine for ``seconds``."""
        ...


@dataclass(frozen=True, slots=True)
class SystemClock:
    """The real clock: ``time.monotonic``, ``time.sleep`` and ``asyncio.sleep``."""

    def now(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    async def sleep_async(self, seconds: float) -> None:
        import asyncio

        await asyncio.sleep(seconds)

    def sleep_time(self, seconds: float) -> float:
        """Real time passes by itself: block for ``seconds``."""
        return seconds


def sleep_time_of(clock: Clock) -> Callable[[float], float] | None:
    """The clock's ``sleep_time``, or None when it has none (it must be slept through)."""
    sleep_time = getattr(clock, "sleep_time", None)
    return sleep_time if callable(sleep_time) else None
