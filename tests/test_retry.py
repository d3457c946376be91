"""RetryPolicy: the waits it asks for, pure arithmetic."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flowweaver import ConfigurationError, RetryPolicy


def test_exponential_back_off_doubles_then_caps() -> None:
    policy = RetryPolicy(retries=6, delay=1.0, backoff=2.0, max_delay=10.0, jitter=0.0)
    assert [policy.delay_before(n) for n in range(1, 7)] == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]


def test_constant_delay_with_backoff_one() -> None:
    policy = RetryPolicy(retries=3, delay=0.5, backoff=1.0, jitter=0.0)
    assert [policy.delay_before(n) for n in (1, 2, 3)] == [0.5, 0.5, 0.5]


def test_huge_retry_numbers_do_not_overflow() -> None:
    assert RetryPolicy(retries=5000, jitter=0.0, max_delay=3.0).delay_before(5000) == 3.0


@given(
    delay=st.floats(0, 100),
    backoff=st.floats(1, 10),
    max_delay=st.floats(0, 1000),
    jitter=st.floats(0, 1),
    retry=st.integers(1, 200),
    seed=st.integers(0, 2**32),
)
def test_jittered_delay_stays_within_its_bounds(
    delay: float, backoff: float, max_delay: float, jitter: float, retry: int, seed: int
) -> None:
    policy = RetryPolicy(retries=retry, delay=delay, backoff=backoff, max_delay=max_delay,
                         jitter=jitter)  # fmt: skip
    plain = RetryPolicy(retries=retry, delay=delay, backoff=backoff, max_delay=max_delay,
                        jitter=0.0).delay_before(retry)  # fmt: skip
    wait = policy.delay_before(retry, random.Random(seed))
    assert wait <= max_delay  # jitter never pushes a wait past the cap
    assert plain * (1 - jitter) - 1e-9 <= wait <= min(max_delay, plain * (1 + jitter)) + 1e-9


def test_should_retry_respects_count_and_types() -> None:
    policy = RetryPolicy(retries=2, retry_on=(ConnectionError,))
    assert policy.should_retry(ConnectionError(), 1)
    assert policy.should_retry(ConnectionError(), 2)
    assert not policy.should_retry(ConnectionError(), 3)
    assert not policy.should_retry(ValueError(), 1)
    assert policy.max_attempts == 3


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"retries": -1}, "RetryPolicy: retries must be an int >= 0, got -1"),
        ({"retries": True}, "RetryPolicy: retries must be an int >= 0, got True"),
        ({"delay": -0.5}, "RetryPolicy: delay must be a finite number >= 0, got -0.5"),
        ({"backoff": 0.5}, "RetryPolicy: backoff must be a finite number >= 1, got 0.5"),
        ({"max_delay": float("inf")}, "RetryPolicy: max_delay must be a finite number >= 0, got inf"),
        ({"jitter": 1.5}, "RetryPolicy: jitter must be between 0 and 1, got 1.5"),
        ({"retry_on": ValueError}, "RetryPolicy: retry_on must be a tuple of exception types, "
                                   "got <class 'ValueError'>"),
    ],
)  # fmt: skip
def test_bad_arguments_are_refused_with_exact_messages(
    kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigurationError) as info:
        RetryPolicy(**kwargs)  # type: ignore[arg-type]
    assert str(info.value) == message
