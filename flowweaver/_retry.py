"""Retry policy.

A :class:`RetryPolicy` answers two questions and nothing else: *should this failure be retried*
and *how long to wait first*. Who waits, and how, belongs to whoever runs the calls (the
workflow engine's drivers, a pipeline worker); they wait through a :class:`~flowweaver.Clock`
(``_clock``), so tests can replace time instead of sleeping.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from ._checks import check_count, check_number
from ._errors import ConfigurationError, ExecutorShutdownError, TransferError, WorkerStartError

__all__ = [
    "NEVER_RETRIED",
    "RetryPolicy",
    "check_retry_fields",
    "is_retryable",
]

#: Failures that would fail the same way on every attempt, so no retry setting retries them
#: (``retry_on`` included): the call cannot be sent to its worker process or cluster, or its
#: result cannot come back (:class:`TransferError`: a lambda, an open file, a lock); the
#: executor was shut down (:class:`ExecutorShutdownError`); worker processes cannot start
#: (:class:`WorkerStartError`: a script without the ``__main__`` guard). A worker that died,
#: a timeout or a lost connection are retried as usual.
NEVER_RETRIED: tuple[type[BaseException], ...] = (
    TransferError,
    ExecutorShutdownError,
    WorkerStartError,
)


def is_retryable(error: BaseException, retry_on: tuple[type[BaseException], ...]) -> bool:
    """Whether ``error`` is worth another attempt under ``retry_on`` (the one rule for it)."""
    return isinstance(error, retry_on) and not isinstance(error, NEVER_RETRIED)


def check_retry_fields(
    owner: str,
    retries: object,
    delay: object,
    backoff: object,
    max_delay: object,
    jitter: object,
    retry_on: object,
) -> None:
    """Validate the fields :class:`RetryPolicy` and ``Task`` share; ``owner`` names the culprit."""
    check_count(owner, "retries", retries)
    check_number(owner, "delay", delay)
    check_number(owner, "backoff", backoff, minimum=1.0)
    check_number(owner, "max_delay", max_delay)
    if check_number(owner, "jitter", jitter) > 1.0:
        raise ConfigurationError(f"{owner}: jitter must be between 0 and 1, got {jitter!r}")
    if not isinstance(retry_on, tuple) or not all(
        isinstance(t, type) and issubclass(t, BaseException) for t in retry_on
    ):
        raise ConfigurationError(
            f"{owner}: retry_on must be a tuple of exception types, got {retry_on!r}"
        )


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often to retry a failing call and how long to wait before each retry.

    The wait before retry ``n`` (1-based) is ``delay * backoff ** (n - 1)``, capped at
    ``max_delay``, then spread by ``jitter``: multiplied by a uniform factor in
    ``[1 - jitter, 1 + jitter]`` and clamped again to ``max_delay``, so jitter never pushes a wait
    past the cap. With ``delay=1, backoff=2`` the waits are 1 → 2 → 4 → 8 s.

    Examples:
        >>> policy = RetryPolicy(retries=3, delay=1.0, backoff=2.0, jitter=0.0)
        >>> tuple(policy.delay_before(n) for n in (1, 2, 3))
        (1.0, 2.0, 4.0)

    Args:
        retries: Retries after the first attempt (0 = run once).
        delay: Wait before the first retry, in seconds.
        backoff: Factor applied to the wait after each retry (1 = constant).
        max_delay: Upper bound of any wait.
        jitter: Relative spread of each wait, between 0 and 1.
        retry_on: Exception types worth retrying; anything else fails at once, and so do
            the failures of :data:`NEVER_RETRIED`, whatever ``retry_on`` says.

    Raises:
        ConfigurationError: An argument is out of range or of the wrong type.
    """

    retries: int = 0
    delay: float = 1.0
    backoff: float = 2.0
    max_delay: float = 60.0
    jitter: float = 0.1
    retry_on: tuple[type[BaseException], ...] = (Exception,)

    def __post_init__(self) -> None:
        check_retry_fields(
            "RetryPolicy",
            self.retries,
            self.delay,
            self.backoff,
            self.max_delay,
            self.jitter,
            self.retry_on,
        )

    @property
    def max_attempts(self) -> int:
        """Attempts in all: the first one plus ``retries``."""
        return self.retries + 1

    def should_retry(self, error: BaseException, attempts_made: int) -> bool:
        """Whether a call that raised ``error`` on attempt ``attempts_made`` runs again."""
        return attempts_made <= self.retries and is_retryable(error, self.retry_on)

    def delay_before(self, retry: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before retry number ``retry`` (1 for the first retry).

        Args:
            retry: 1 for the first retry, 2 for the second, …
            rng: Source of jitter; the ``random`` module's shared generator by default.
        """
        try:
            wait = self.delay * self.backoff ** (retry - 1)
        except OverflowError:  # a long retry series: the cap applies anyway
            wait = math.inf
        wait = min(wait, self.max_delay)
        if self.jitter:
            uniform = rng.uniform if rng is not None else random.uniform
            wait *= uniform(1.0 - self.jitter, 1.0 + self.jitter)
        return min(wait, self.max_delay)
