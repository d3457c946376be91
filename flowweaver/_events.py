"""Observing a run: the Monitor protocol and the one way user callbacks are called.

Every observer of a run — a task's ``on_status_change`` / ``on_retry``, a :class:`Monitor`, the
pipeline's tracker, callbacks and dashboards, an ``AsyncFuture``'s done callbacks — is called
through :func:`call_safely`, and an awaitable it returns is awaited through
:func:`await_safely`: an exception in an observer is logged with its traceback and reported to
the caller, which disables that observer for the rest of the run. An observer never changes a
task's outcome and never makes it run again. Nothing is formatted or allocated for observers
that are not there.

Which exceptions count is the rule of every place that runs user code (``_calls.INTERRUPTS``):
``KeyboardInterrupt`` and ``SystemExit`` propagate (an observer cannot swallow a Ctrl-C), and so
does the awaiting task's own cancellation; anything else, ``BaseException`` subclasses and an
observer's own ``CancelledError`` included, is the observer's failure.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from ._calls import INTERRUPTS

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from ._run import WorkflowRun
    from ._status import TaskStatus

__all__ = ["Monitor", "await_safely", "call_safely"]

logger = logging.getLogger("flowweaver.events")

_DISABLED = " raised; it is disabled for the rest of this run"


@runtime_checkable
class Monitor(Protocol):
    """Watches workflow runs. Subclass it and override the hooks you need; each defaults to a
    no-op.

    Hooks run on the thread (or event loop) that drives the run, between task transitions, so
    keep them quick; read details such as attempts or errors from ``run``. A hook that raises is
    logged and disabled for the rest of that run.

    Example:
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
    try:
        await awaitable
    except INTERRUPTS:
        raise
    except BaseException:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise  # we are being cancelled: not the observer's failure
        logger.exception(what + _DISABLED, *what_args)
        if on_error is not None:
            on_error()
        return False
    return True
