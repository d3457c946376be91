"""Observing a run: the Monitor protocol and the one way user callbacks are called.

Every observer of a run — a task's ``on_status_change`` / ``on_retry``, a :class:`Monitor`, the
pipeline's tracker, callbacks and dashboards, an ``AsyncFuture``'s done callbacks — is called
through :func:`call_safely`, and an awaitable it returns is awaited through
:meth:`ObserverWaits.wait` (or :func:`await_safely`): an exception in an observer is logged with
its traceback and reported to the caller, which disables that observer for the rest of the run.
An observer never changes a task's outcome and never makes it run again. Nothing is formatted
or allocated for observers that are not there.

Observers that do not return (:class:`ObserverWaits`, one per run): an observer's awaitable may
run for ``observer_timeout`` seconds (:data:`OBSERVER_TIMEOUT` by default); one still running
then is cancelled, logged as a warning and disabled, as one that raised. Once the run is asked
to stop (Ctrl-C, cancellation, ``shutdown()``), every observer awaitable, running or yet to
come, shares what is left of :data:`STOP_GRACE` from that moment: an observer never holds up a
stop. A *sync* observer cannot be cut short; one that Ctrl-C interrupts after it ran for longer
than :data:`STOP_GRACE` is disabled, so the rest of the stop does not call it again.

Which exceptions count is the rule of every place that runs user code (``_calls.INTERRUPTS``):
``KeyboardInterrupt`` and ``SystemExit`` propagate (an observer cannot swallow a Ctrl-C), and so
does the awaiting task's own cancellation; anything else, ``BaseException`` subclasses and an
observer's own ``CancelledError`` included, is the observer's failure.
"""

from __future__ import annotations

import contextlib
import inspect
import math
import threading
import types
from time import monotonic, perf_counter
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from ._calls import INTERRUPTS
from ._errors import ConfigurationError
from ._log import lazy_logger

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Awaitable, Callable, Coroutine, Generator

    from ._run import WorkflowRun
    from ._status import TaskStatus

__all__ = [
    "OBSERVER_TIMEOUT",
    "STOP_GRACE",
    "Monitor",
    "ObserverWaits",
    "await_safely",
    "call_safely",
    "check_observer_timeout",
    "close_unstarted",
    "interrupted_slow",
]

logger = lazy_logger("flowweaver.events")

_DISABLED = " raised; it is disabled for the rest of this run"

#: Seconds an observer's awaitable may run before it is cancelled and disabled (the default of
#: ``observer_timeout``).
OBSERVER_TIMEOUT = 10.0
#: Seconds that every observer awaitable of a run shares once the run is asked to stop.
STOP_GRACE = 0.5


@runtime_checkable
class Monitor(Protocol):
    """Watches workflow runs. Subclass it and override the hooks you need; each defaults to a
    no-op.

    Hooks run on the thread (or event loop) that drives the run, between task transitions, so
    keep them quick; read details such as attempts or errors from ``run``. A hook that raises,
    or an async one still running after the run's ``observer_timeout``, is logged and the
    monitor disabled for the rest of that run (see the module docstring: stops never wait on
    it).

    Examples:
        >>> class Count(Monitor):
        ...     def __init__(self) -> None:
        ...         self.done = 0
        ...     def on_status_change(self, run, task_name, status) -> None:
        ...         self.done += status.value == "completed"
    """

    # Each hook ends in `return`: a Protocol method whose body is only a docstring counts as
    # abstract to mypy, and subclasses overriding one hook must not have to override all three.

    def on_run_start(self, run: WorkflowRun) -> None:
        """The run is about to start its first task."""
        return

    def on_status_change(self, run: WorkflowRun, task_name: str, status: TaskStatus) -> None:
        """A task moved to ``status`` (every transition, including ``retrying``)."""
        return

    def on_run_end(self, run: WorkflowRun) -> None:
        """The run has ended; every task is in a terminal state."""
        return


def call_safely(
    callback: Callable[..., object], args: tuple[object, ...], what: str, *what_args: object
) -> tuple[bool, object]:
    """Call an observer; log and swallow what it raises (see the module docstring).

    ``what % what_args`` names the observer in the log line; it is formatted only on failure.
    ``KeyboardInterrupt`` and ``SystemExit`` propagate: an observer must not be able to swallow
    a Ctrl-C.

    Returns:
        ``(True, return value)``, or ``(False, None)`` when the callback raised.
    """
    try:
        return True, callback(*args)
    except INTERRUPTS:
        raise
    except BaseException:  # the observer's failure, whatever its type
        logger.exception(what + _DISABLED, *what_args)
        return False, None


async def await_safely(
    awaitable: Awaitable[object],
    what: str,
    *what_args: object,
    on_error: Callable[[], object] | None = None,
) -> bool:
    """Await what an async observer returned, under :func:`call_safely`'s rule.

    Args:
        awaitable: The observer's awaitable.
        what: Names the observer in the log line, with ``what_args`` (formatted on failure).
        on_error: Called after logging a failure (to disable the observer when the caller
            does not await the result itself, e.g. a callback scheduled in the background).

    Returns:
        True when it finished; False when it raised (logged, and ``on_error`` called).

    Raises:
        KeyboardInterrupt, SystemExit: Raised by the observer.
        asyncio.CancelledError: The awaiting task itself was cancelled.
    """
    import asyncio

    try:
        await awaitable
    except INTERRUPTS:
        raise
    except BaseException as error:
        # Only a CancelledError can be ours. (A cancellation requested before this await began
        # counts too: counting from here would take a Ctrl-C that lands just before the await
        # for the observer's own CancelledError, and swallow it.)
        task = asyncio.current_task()
        if isinstance(error, asyncio.CancelledError) and task is not None and task.cancelling():
            raise  # we are being cancelled: not the observer's failure
        logger.exception(what + _DISABLED, *what_args)
        if on_error is not None:
            on_error()
        return False
    return True


def close_unstarted(*awaitables: object) -> None:
    """Close coroutines that will never run (a Ctrl-C came before their wait began), so that
    they are not reported as "never awaited"."""
    for awaitable in awaitables:
        if (
            inspect.iscoroutine(awaitable)
            and inspect.getcoroutinestate(awaitable) == "CORO_CREATED"
        ):
            awaitable.close()


def interrupted_slow(start: float) -> bool:
    """Whether an observer that Ctrl-C interrupted had run for longer than :data:`STOP_GRACE`
    (since ``perf_counter()`` was ``start``): one that blocks is not called again by the stop
    (it cannot be cut short like an awaitable); a quick one Ctrl-C merely landed in still
    hears of the cancellations."""
    return perf_counter() - start > STOP_GRACE


def check_observer_timeout(value: object, where: str) -> float | None:
    """Validate an ``observer_timeout`` (seconds > 0, or None: no bound until a stop).

    Raises:
        ConfigurationError: ``value`` is not a finite number > 0 or None (``where`` names the
            call in the message).
    """
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not (math.isfinite(value) and value > 0)
    ):
        raise ConfigurationError(
            f"{where}: observer_timeout must be a finite number > 0 or None, got {value!r}"
        )
    return float(value)


class ObserverWaits:
    """How long one run waits for its observers' awaitables (see the module docstring).

    Example:
        >>> waits = ObserverWaits(2.0)
        >>> # await waits.wait(callback(event), "status callback %s", "on_status_change")

    :meth:`stop` may be called from any thread; waits run on any event loop (a sync driver's
    private one, or the run's), each bounded by an ``asyncio.timeout`` scope that a stop
    shortens.

    Args:
        timeout: Seconds an observer's awaitable may run (None: until the run stops).
    """

    __slots__ = ("_deadline", "_lock", "_scopes", "timeout")

    def __init__(self, timeout: float | None = OBSERVER_TIMEOUT) -> None:
        self.timeout = timeout
        self._deadline: float | None = None  # monotonic; set by stop()
        self._lock = threading.Lock()
        self._scopes: dict[asyncio.Timeout, asyncio.AbstractEventLoop] = {}

    def stop(self) -> None:
        """The run is asked to stop: from now on, its observers share :data:`STOP_GRACE`."""
        with self._lock:
            if self._deadline is not None:
                return
            self._deadline = monotonic() + STOP_GRACE
            running = list(self._scopes.items())
        for scope, loop in running:
            with contextlib.suppress(RuntimeError):  # its loop has closed: nothing waits
                loop.call_soon_threadsafe(self._shorten, scope)

    def _budget(self) -> float | None:
        deadline, timeout = self._deadline, self.timeout
        if deadline is None:
            return timeout
        left = max(deadline - monotonic(), 0.0)
        return left if timeout is None else min(timeout, left)

    def _shorten(self, scope: asyncio.Timeout) -> None:  # on the scope's loop
        import asyncio

        with self._lock:
            if scope not in self._scopes or scope.expired():
                return  # its wait is over (only this loop removes it: no race)
        budget = self._budget()
        assert budget is not None  # stop() set the deadline
        when = asyncio.get_running_loop().time() + budget
        current = scope.when()
        if current is None or when < current:
            scope.reschedule(when)

    async def wait(
        self,
        awaitable: Awaitable[object],
        what: str,
        *what_args: object,
        on_error: Callable[[], object] | None = None,
    ) -> bool:
        """Await an observer's awaitable under :func:`await_safely`'s rule, within the bound.

        Returns:
            True when it finished in time; False when it raised or ran out of time (logged,
            and ``on_error`` called): the caller disables the observer.

        Raises:
            KeyboardInterrupt, SystemExit: Raised by the observer.
            asyncio.CancelledError: The awaiting task itself was cancelled.
        """
        import asyncio

        if inspect.iscoroutine(awaitable):
            # Most observers return without ever waiting: run the first step here, and pay for
            # a timeout scope (a timer, ~5 µs) only when it does wait.
            try:
                first = awaitable.send(None)
            except StopIteration:
                return True
            except INTERRUPTS:
                raise
            except BaseException:  # its own failure: nothing cancels us during this step
                logger.exception(what + _DISABLED, *what_args)
                if on_error is not None:
                    on_error()
                return False
            awaitable = _resumed(awaitable, first)
        loop = asyncio.get_running_loop()
        budget = self._budget()
        scope = asyncio.timeout_at(None if budget is None else loop.time() + budget)
        with self._lock:
            self._scopes[scope] = loop
        try:
            async with scope:
                return await await_safely(awaitable, what, *what_args, on_error=on_error)
        except TimeoutError:
            if not scope.expired():
                raise  # pragma: no cover - await_safely lets no other TimeoutError out
            if self._deadline is not None:
                logger.warning(
                    what + " was still running when the run stopped; it was cancelled and is "
                    "disabled for the rest of this run", *what_args,
                )  # fmt: skip
            else:
                logger.warning(
                    what + " did not return within %.3g s; it was cancelled and is disabled "
                    "for the rest of this run", *what_args, self.timeout,
                )  # fmt: skip
            if on_error is not None:
                on_error()
            return False
        finally:
            with self._lock:
                del self._scopes[scope]


@types.coroutine
def _resumed(coroutine: Coroutine[Any, Any, object], first: object) -> Generator[Any, Any, object]:
    """Go on awaiting ``coroutine``, whose first step already ran and yielded ``first``."""
    value = first
    while True:
        try:
            sent = yield value
        except GeneratorExit:
            coroutine.close()
            raise
        except BaseException as error:  # thrown in by the awaiting task: pass it on
            try:
                value = coroutine.throw(error)
            except StopIteration as stop:
                return stop.value
        else:
            try:
                value = coroutine.send(sent)
            except StopIteration as stop:
                return stop.value
