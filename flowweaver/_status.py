"""The states a task moves through in a run."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["ChangePolicy", "FailurePolicy", "TaskStatus"]


class TaskStatus(StrEnum):
    """Where a task stands in a run. Values are lowercase strings, stable when persisted.

    ``pending → running → completed``, or ``running → retrying → running …`` while attempts
    remain, ending ``failed`` when they run out. A task that never runs ends ``skipped`` (its
    ``when`` predicate said no, or every upstream was skipped and it has
    ``skip_if_upstream_skipped``), ``upstream_failed`` (something it needs failed) or
    ``cancelled`` (the run stopped first: fail-fast, Ctrl-C, cancellation).
    """

    PENDING = "pending"
    RUNNING = "running"
    RETRYING = "retrying"
    COMPLETED = "completed"
    FAILED = "failed"
    SKIPPED = "skipped"
    UPSTREAM_FAILED = "upstream_failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        """Whether the task is done for this run (no further transition will happen)."""
        return self not in _ACTIVE


_ACTIVE = frozenset({TaskStatus.PENDING, TaskStatus.RUNNING, TaskStatus.RETRYING})


class FailurePolicy(StrEnum):
    """What a run does once a task has failed for good.

    ``FAIL_FAST`` (the default): start nothing new, let running calls finish — except
    coroutines on :class:`AsyncExecutor`'s event loop, which are cancelled, and calls on a
    Dask cluster, whose futures are cancelled (a running one runs on, its result discarded)
    — end every task
    that never started ``cancelled`` (``upstream_failed``
    if it needed the failed task), then raise. ``CONTINUE``: independent branches run to the
    end; only the failed task's dependants are left out (``upstream_failed``); the run raises
    at the end with every failure.
    """

    FAIL_FAST = "fail_fast"
    CONTINUE = "continue"


class ChangePolicy(StrEnum):
    """What a resumed run does with a committed task whose code or inputs have changed.

    ``RERUN`` (the default): log a warning and run the task again; its new result is
    committed in place of the old one, and tasks downstream re-run only if the new result
    differs (their inputs changed). ``ERROR``: fail the task with
    :class:`~flowweaver.StateMismatchError` (no retries); the failure policy applies as usual.
    """

    RERUN = "rerun"
    ERROR = "error"
