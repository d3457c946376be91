"""Observing a run: the Monitor protocol and the one way user callbacks are called.

Every observer of a run — a task's ``on_status_change`` / ``on_retry``, a :class:`Monitor`, the
pipeline's tracker and dashboards — is called through :func:`call_safely`: an exception in an
observer is logged with its traceback and reported to the caller, which disables that observer
for the rest of the run. An observer never changes a task's outcome and never makes it run again.
Nothing is formatted or allocated for observers that are not there.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._run import WorkflowRun
    from ._status import TaskStatus

__all__ = ["Monitor", "call_safely"]

logger = logging.getLogger("flowweaver.events")


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
    """Call an observer; log and swallow what it raises.

    ``what % what_args`` names the observer in the log line; it is formatted only on failure.
    ``BaseException`` subclasses that are not ``Exception`` (KeyboardInterrupt, SystemExit)
    propagate: an observer must not be able to swallow a Ctrl-C.

    Returns:
        ``(True, return value)``, or ``(False, None)`` when the callback raised.
    """
    try:
        return True, callback(*args)
    except Exception:
        logger.exception(what + " raised; it is disabled for the rest of this run", *what_args)
        return False, None
