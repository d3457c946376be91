"""Retry policy.

A :class:`RetryPolicy` answers two questions and nothing else: *should this failure be retried*
and *how long to wait first*. Who waits, and how, belongs to whoever runs the calls (the
workflow engine's drivers, a pipeline worker); they wait through a :class:`~flowweaver.Clock`
(``_clock``), so tests can replace time instead of sleeping.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass

from ._checks import check_count, check_number
from ._errors import ConfigurationError, ExecutorShutdownError, TransferError, WorkerStartError

__all__ = [
    "NEVER_RETRIED",
    "RetryPolicy",
    "check_retry_fields",
    "is_retryable",
    "retry_after_of",
]

#: ``retry_if``: whether a failure (that ``retry_on`` lets through) is worth another attempt.
RetryCondition = Callable[[BaseException], object]
#: ``retry_after``: the server's requested wait in seconds (or None) read from a failure.
RetryAfterHook = Callable[[BaseException], object]

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


def retry_after_of(error: BaseException, hook: RetryAfterHook | None = None) -> float | None:
    """The wait a failure asks for: ``hook(error)``, else its ``retry_after`` attribute.

    A number of seconds >= 0, or a string holding one (an HTTP ``Retry-After`` header's
    delta-seconds form); anything else (None, a date, a negative number) asks for nothing.
    """
    value: object = hook(error) if hook is not None else getattr(error, "retry_after", None)
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) and value >= 0 else None


def check_retry_fields(
    owner: str,
    retries: object,
    delay: object,
    backoff: object,
    max_delay: object,
    jitter: object,
    retry_on: object,
    retry_if: object = None,
    retry_after: object = None,
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
    for label, hook in (("retry_if", retry_if), ("retry_after", retry_after)):
        if hook is not None and not callable(hook):
            raise ConfigurationError(f"{owner}: {label} must be callable or None, got {hook!r}")


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
        retry_if: ``(error) -> bool``, asked after ``retry_on`` lets a failure through: a
            false answer makes it final (retry a ``429`` but not a ``404``). If it raises,
            its exception is the failure, final (see :meth:`decide`).
        retry_after: ``(error) -> seconds | None``: the wait a failure asks for (a server's
            ``Retry-After``). By default a failure's ``retry_after`` attribute, if any. The
            wait before the retry is then at least that long, still capped by ``max_delay``.

    Raises:
        ConfigurationError: An argument is out of range or of the wrong type.
    """

    retries: int = 0
    delay: float = 1.0
    backoff: float = 2.0
    max_delay: float = 60.0
    jitter: float = 0.1
    retry_on: tuple[type[BaseException], ...] = (Exception,)
    retry_if: RetryCondition | None = None
    retry_after: RetryAfterHook | None = None

    def __post_init__(self) -> None:
        check_retry_fields(
            "RetryPolicy",
            self.retries,
            self.delay,
            self.backoff,
            self.max_delay,
            self.jitter,
            self.retry_on,
            self.retry_if,
            self.retry_after,
        )

    @property
    def max_attempts(self) -> int:
        """Attempts in all: the first one plus ``retries``."""
        return self.retries + 1

    def should_retry(self, error: BaseException, attempts_made: int) -> bool:
        """Whether a call that raised ``error`` on attempt ``attempts_made`` runs again.

        Raises:
            Exception: Whatever ``retry_if`` raised (:meth:`decide` turns it into the failure).
        """
        if attempts_made > self.retries or not is_retryable(error, self.retry_on):
            return False
        return self.retry_if is None or bool(self.retry_if(error))

    def decide(
        self, error: BaseException, attempts_made: int, rng: random.Random | None = None
    ) -> tuple[float | None, BaseException]:
        """The one retry decision: ``(seconds to wait, error)``, or ``(None, failure)``.

        The wait is :meth:`delay_before`, raised to what the failure asks for (its
        ``retry_after``, see :func:`retry_after_of`) and capped by ``max_delay``. When
        ``retry_if`` or ``retry_after`` raises, that exception (its ``__context__`` the
        original failure) is returned as the final failure: a broken predicate is never a
        silent retry, nor a silent give-up.
        """
        try:
            if not self.should_retry(error, attempts_made):
                return None, error
            wait = self.delay_before(attempts_made, rng)
            asked = retry_after_of(error, self.retry_after)
        except Exception as broken:  # a user's predicate or hook failed: that is the failure
            if broken.__context__ is None and broken is not error:
                broken.__context__ = error
            return None, broken
        if asked is not None and asked > wait:
            wait = min(asked, self.max_delay)
        return wait, error

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
