"""Adaptive throttling (AIMD) against a simulated service, on the injected clock."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import pytest

from flowweaver import ConfigurationError, Limiter, Pipeline, Rate, Stage

from .conftest import FakeClock, run


class TooManyRequestsError(Exception):
    """The service's 429."""


@dataclass
class Service:
    """Accepts at most ``capacity`` calls in any ``per`` seconds (unknown to the limiter)."""

    clock: FakeClock
    capacity: int
    per: float = 1.0
    accepted: deque[float] = field(default_factory=deque)
    log: list[tuple[float, bool]] = field(default_factory=list)

    def call(self) -> None:
        now = self.clock.now()
        while self.accepted and self.accepted[0] + self.per <= now:
            self.accepted.popleft()
        ok = len(self.accepted) < self.capacity
        self.log.append((now, ok))
        if not ok:
            raise TooManyRequestsError("429")
        self.accepted.append(now)


def _drive(limiter: Limiter, service: Service, seconds: float) -> None:
    while service.clock.now() < seconds:
        try:
            with limiter:
                service.call()
        except TooManyRequestsError:
            pass


def _settled(service: Service, seconds: float) -> tuple[float, float]:
    """(goodput per second, share of calls rejected) after the first 10% of the run."""
    late = [ok for t, ok in service.log if t >= seconds * 0.1]
    return sum(late) / (seconds * 0.9), late.count(False) / len(late)


@pytest.mark.parametrize("capacity", [37, 100])
def test_an_adaptive_rate_settles_near_the_service_capacity(capacity: int) -> None:
    clock, seconds = FakeClock(), 200.0
    service = Service(clock, capacity)
    api = Limiter(rate=5 * capacity, per=1.0, adaptive=True,
                  throttle_on=(TooManyRequestsError,), clock=clock)  # fmt: skip
    _drive(api, service, seconds)
    goodput, rejected = _settled(service, seconds)
    assert goodput >= 0.9 * capacity
    assert rejected < 0.05
    (rate,) = api.current_limits()[1]
    assert 0.85 * capacity <= rate.limit <= 1.1 * capacity  # settled, not collapsed or racing


def test_without_adaptive_the_same_run_is_mostly_rejected() -> None:
    clock, seconds = FakeClock(), 20.0
    service = Service(clock, 100)
    _drive(Limiter(rate=500, per=1.0, clock=clock), service, seconds)
    assert _settled(service, seconds)[1] > 0.5


def test_throttles_of_one_burst_are_one_decrease_and_successes_climb_back() -> None:
    clock = FakeClock()
    api = Limiter(concurrency=10, rate=[Rate(100, 1.0), Rate(1000, 60.0)], adaptive=True,
                  throttle_on=lambda e: "429" in str(e), clock=clock)  # fmt: skip
    for _ in range(5):
        api.record(OSError("429"))
    assert api.current_limits() == (9, (Rate(90.0, 1.0), Rate(900.0, 60.0)))
    api.record(KeyError("other errors change nothing"))
    clock.t = 1.0
    api.record(OSError("429"))
    assert api.current_limits()[0] == 8
    for _ in range(1000):
        api.record(None)
    assert api.current_limits() == (10, (Rate(100.0, 1.0), Rate(1000.0, 60.0)))  # never above


def test_the_floor_is_one_slot() -> None:
    api = Limiter(concurrency=4, adaptive=True, throttle_on=(OSError,))
    for _ in range(100):
        api.record(OSError())
    assert api.current_limits() == (1, ())


def test_a_stage_s_adaptive_limit_learns_from_its_calls() -> None:
    clock = FakeClock()
    service = Service(clock, 10)
    api = Limiter(rate=50, adaptive=True, throttle_on=(TooManyRequestsError,), clock=clock)

    def call(x: int) -> int:
        service.call()
        return x

    stage = Stage("S", 1, [call], task_attempts=1, limits=[api])
    run(Pipeline([stage], clock=clock).run(range(300)))
    assert api.current_limits()[1][0].limit < 50


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"concurrency": 2, "adaptive": True},
         "Limiter: adaptive=True needs throttle_on (the exception types, or a predicate, that "
         "mean slow down)"),
        ({"adaptive": True, "throttle_on": (OSError,)},
         "Limiter: adaptive=True needs a concurrency or a rate to adapt"),
        ({"concurrency": 2, "throttle_on": (OSError,)}, "Limiter: throttle_on needs adaptive=True"),
        ({"concurrency": 2, "adaptive": True, "throttle_on": (404,)},
         "Limiter: throttle_on must be a tuple of exception types or a predicate, got (404,)"),
        ({"concurrency": 2, "adaptive": 1, "throttle_on": (OSError,)},
         "Limiter: adaptive must be a bool, got 1"),
    ],
)  # fmt: skip
def test_bad_adaptive_settings_are_named(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        Limiter(**kwargs)  # type: ignore[arg-type]
    assert str(caught.value) == message
