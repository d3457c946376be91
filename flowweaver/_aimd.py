"""The adaptive half of a :class:`~flowweaver.Limiter`: additive increase, multiplicative
decrease (AIMD), as TCP finds a network's capacity.

:class:`Aimd` is a pure controller: it is told each call's outcome and answers with the share
of the given limits to put in force (or None: no change); the limiter applies it under its
lock. It knows nothing of threads, waiters or windows.

Rules:

* A call failing with a ``throttle_on`` error multiplies the level by :data:`DECREASE`, once
  per burst: with rate windows, throttles within one (shortest) window of the last decrease
  are ignored (those calls were made before it); with concurrency only, the throttles of the
  calls that were in flight at the decrease are.
* A success adds one unit back over a level's worth of calls (``level += 1 / level``), never
  above the given limits; the level never goes below 1.
* The level is counted in units of the first bound: the concurrency, else the first rate.
"""

from __future__ import annotations

from collections.abc import Callable

from ._errors import ConfigurationError
from ._log import lazy_logger

__all__ = ["DECREASE", "Aimd", "ThrottleOn", "check_adaptive"]

logger = lazy_logger(__name__)

#: The multiplicative decrease on a throttle.
DECREASE = 0.9

#: ``throttle_on``: the exception types, or a predicate on the exception, that mean "slow down".
ThrottleOn = tuple[type[BaseException], ...] | Callable[[BaseException], object]


class Aimd:
    """One adaptive limiter's level and calm period (see the module docstring).

    Args:
        throttle_on: What counts as a throttle.
        unit: The first bound's given value (concurrency, else the first rate's limit).
        window: The shortest rate window, in seconds (None: the limiter has no rate).
    """

    __slots__ = ("calm", "level", "throttle_on", "unit", "window")

    def __init__(self, throttle_on: ThrottleOn, unit: float, window: float | None) -> None:
        self.throttle_on = throttle_on
        self.unit = unit
        self.window = window
        self.level = unit
        #: Until when (rates: a clock time; concurrency only: releases to wait) throttles of
        #: calls made before the last decrease are ignored.
        self.calm = 0.0

    def is_throttle(self, error: BaseException, owner: object) -> bool:
        """Whether ``error`` means "slow down" (a broken predicate says no, and is logged)."""
        throttle_on = self.throttle_on
        if isinstance(throttle_on, tuple):
            return isinstance(error, throttle_on)
        try:
            return bool(throttle_on(error))
        except Exception:  # a broken predicate never breaks the caller's call
            logger.exception("%r: throttle_on failed on %r; treated as not throttled", owner, error)
            return False

    def throttled(self, now: float, holders: int) -> float | None:
        """A call was throttled: the new share of the limits, or None (inside a calm period)."""
        if self.window is not None:
            if now < self.calm:
                return None
            self.calm = now + self.window
        elif self.calm > 0:
            self.calm -= 1
            return None
        else:
            self.calm = float(holders)
        self.level = max(1.0, self.level * DECREASE)
        return self.level / self.unit

    def succeeded(self) -> float | None:
        """A call succeeded: the new share of the limits, or None (already at the top)."""
        if self.window is None and self.calm > 0:
            self.calm -= 1
        if self.level >= self.unit:
            return None
        self.level = min(self.unit, self.level + 1.0 / self.level)
        return self.level / self.unit


def check_adaptive(
    owner: str,
    adaptive: object,
    throttle_on: object,
    concurrency: int | None,
    has_rates: bool,
) -> bool:
    """Validate ``adaptive`` and ``throttle_on``; whether the limiter adapts."""
    if not isinstance(adaptive, bool):
        raise ConfigurationError(f"{owner}: adaptive must be a bool, got {adaptive!r}")
    types = isinstance(throttle_on, tuple) and all(
        isinstance(t, type) and issubclass(t, BaseException) for t in throttle_on
    )
    if not types and not callable(throttle_on):
        raise ConfigurationError(
            f"{owner}: throttle_on must be a tuple of exception types or a predicate, "
            f"got {throttle_on!r}"
        )
    if not adaptive:
        if throttle_on != ():
            raise ConfigurationError(f"{owner}: throttle_on needs adaptive=True")
        return False
    if throttle_on == ():
        raise ConfigurationError(
            f"{owner}: adaptive=True needs throttle_on (the exception types, or a predicate, "
            "that mean slow down)"
        )
    if concurrency is None and not has_rates:
        raise ConfigurationError(f"{owner}: adaptive=True needs a concurrency or a rate to adapt")
    return True
