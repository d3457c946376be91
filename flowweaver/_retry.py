"""Retry policy.

A :class:`RetryPolicy` answers two questions and nothing else: *should this failure be retried*
and *how long to wait first*. Who waits, and how, belongs to whoever runs the calls (the
workflow engine's drivers, a pipeline worker); they wait through a :class:`~flowweaver.Clock`
(``_clock``), so tests can replace time instead of sleeping.

A *result* can be a failure too (``retry_if_result``: an HTTP client returning a 429 response
instead of raising). :func:`judged` wraps the function so that the call itself raises
:class:`~flowweaver.RejectedResultError` for such a value, wherever it runs (a thread, a worker
process, a cluster); from there it is a failure like any other, decided by
:meth:`RetryPolicy.decide`. A predicate that raises makes its exception the final failure.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ._binding import is_coroutine_callable
from ._checks import check_count, check_number
from ._errors import (
    ConfigurationError,
    ExecutorShutdownError,
    RejectedResultError,
    TransferError,
    WorkerStartError,
)

__all__ = [
    "NEVER_RETRIED",
    "RetryPolicy",
    "check_retry_fields",
    "is_retryable",
    "judged",
    "retry_after_of",
]

#: ``retry_if``: whether a failure (that ``retry_on`` lets through) is worth another attempt.
RetryCondition = Callable[[BaseException], object]
#: ``retry_after``: the server's requested wait in seconds (or None) read from a failure.
RetryAfterHook = Callable[[BaseException], object]
#: ``retry_if_result``: whether a returned value counts as a failure (to retry).
ResultCondition = Callable[[Any], object]

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
    retry_if_result: object = None,
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
    hooks = (
        ("retry_if", retry_if),
        ("retry_after", retry_after),
        ("retry_if_result", retry_if_result),
    )
    for label, hook in hooks:
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
        retry_if_result: ``(value) -> bool``: a true answer counts a returned value as a
            failure (:class:`~flowweaver.RejectedResultError`, carrying the value), retried
            while attempts are left whatever ``retry_on`` and ``retry_if`` say (they are
            about exceptions; ``retry_after`` is asked, and can read ``error.value``). If the
            predicate raises, its exception is the failure, final.

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
    retry_if_result: ResultCondition | None = None

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
            self.retry_if_result,
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
        if attempts_made > self.retries:
            return False
        if isinstance(error, RejectedResultError):  # the result predicate has spoken
            return True
        if not is_retryable(error, self.retry_on):
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
        silent retry, nor a silent give-up; so is the exception of a ``retry_if_result``
        that raised (see :func:`judged`).
        """
        if type(error) is _BrokenCondition:
            return None, error.error
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


class _BrokenCondition(Exception):
    """A ``retry_if_result`` raised ``error``: the call's final failure (see ``decide``)."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(error)
        self.error = error


class _Judge:
    """A task's function whose returned value is judged by ``retry_if_result``.

    A module-level class (not a closure) so that it pickles to worker processes and clusters.
    """

    __slots__ = ("condition", "fn", "name")

    def __init__(self, fn: Callable[..., Any], condition: ResultCondition, name: str) -> None:
        self.fn = fn
        self.condition = condition
        self.name = name

    def __repr__(self) -> str:
        return f"judged({self.fn!r})"

    def judge(self, value: object) -> object:
        """``value``, or :class:`RejectedResultError` when the condition counts it a failure."""
        try:
            rejected = self.condition(value)
        except Exception as error:
            raise _BrokenCondition(error) from None
        if rejected:
            raise RejectedResultError(self.name, value)
        return value


class _SyncJudge(_Judge):
    __slots__ = ()

    def __call__(self, *args: Any, **kwargs: Any) -> object:
        value = self.fn(*args, **kwargs)
        if hasattr(value, "__await__"):  # finished by whoever runs the call: judge it then
            return self._later(value)
        return self.judge(value)

    async def _later(self, awaitable: Any) -> object:
        return self.judge(await awaitable)


class _AsyncJudge(_Judge):
    __slots__ = ()

    async def __call__(self, *args: Any, **kwargs: Any) -> object:
        return self.judge(await self.fn(*args, **kwargs))


def judged(fn: Callable[..., Any], condition: ResultCondition, name: str) -> Callable[..., Any]:
    """``fn``, made to raise :class:`RejectedResultError` (named ``name``) for a value that
    ``condition`` counts as a failure; async when ``fn`` is."""
    if is_coroutine_callable(fn):
        return _AsyncJudge(fn, condition, name)
    return _SyncJudge(fn, condition, name)
