"""The record of one run of a workflow: every task's status, result, error, attempts, timings.

Only the engine writes here, from the one thread that drives the run; everyone else reads. The
lists are indexed by the task's position in its workflow, which keeps the engine's hot loop free
of dictionary lookups.

A result may be a :class:`Remote`: a value that stayed where it was computed (a Dask worker)
because an executor chose to keep it there. The engine hands it to downstream calls unread; the
run fetches it the first time someone reads it and keeps the value from then on.
"""

from __future__ import annotations

import time
from array import array
from collections import Counter
from typing import TYPE_CHECKING, Any

from ._errors import ResultReleasedError, TaskFailedError, UnknownTaskError
from ._status import TaskStatus

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from ._elements import ElementRecord

__all__ = ["RELEASED", "Remote", "WorkflowRun", "fetched"]

_ZERO = (0.0,)


class _Released:
    """The result of a task that a run with ``keep_results=`` let go of (see ``_release``)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<released>"


#: What stands in a run's results for one it released.
RELEASED = _Released()


class Remote:
    """A task's result held somewhere else (e.g. a Dask worker's memory) until it is read.

    An executor that keeps results away from the driving process stores a subclass of this as a
    task's result. The engine passes it unread to downstream calls (the executor swaps in its
    own handle). It is fetched only where the value itself is needed: for a ``when=``
    predicate, and by a durable run to store it or compute a cache key;
    :class:`WorkflowRun` fetches it when the result is read and keeps the value.
    """

    __slots__ = ()

    def fetch(self) -> object:
        """Bring the value here.

        Raises:
            ResultUnavailableError: It can no longer be fetched (e.g. the cluster is gone).
        """
        raise NotImplementedError

    @classmethod
    def fetch_many(cls, remotes: Sequence[Remote]) -> list[object]:
        """Fetch several of this class's remotes at once (override to batch the transfers)."""
        return [remote.fetch() for remote in remotes]


def fetched(values: tuple[Any, ...]) -> tuple[Any, ...]:
    """``values`` with every :class:`Remote` among them fetched (for code that reads them)."""
    return tuple([v.fetch() if isinstance(v, Remote) else v for v in values])


class WorkflowRun:
    """What happened in one run of a workflow.

    Returned by every ``execute``; the workflow also keeps its most recent run, which is what
    ``Workflow.get_task_status``, ``get_task_result`` and ``get_workflow_stats`` read. A run's
    state never leaks into another run: each starts with every task ``pending``.

    Examples:
        >>> from flowweaver import Task, Workflow
        >>> wf = Workflow("demo")
        >>> wf.add_task(Task(name="one", fn=lambda: 1))
        >>> run = wf.execute()
        >>> run.result("one"), run.status("one").value, run.ok
        (1, 'completed', True)
    """

    __slots__ = (
        "_attempts",
        "_elements",
        "_errors",
        "_finished",
        "_index",
        "_names",
        "_results",
        "_started",
        "_statuses",
        "cached",
        "failures",
        "finished_at",
        "own_tasks",
        "restored",
        "run_id",
        "started_at",
        "workflow",
    )

    def __init__(
        self, workflow: str, run_id: str, names: Sequence[str], index: Mapping[str, int]
    ) -> None:
        n = len(names)
        #: How many tasks are the workflow's own; the rest (after them) are the tasks of its
        #: subflows, named ``"<subflow task>/<task>"``.
        self.own_tasks = n
        self.workflow = workflow
        self.run_id = run_id
        self._names = names
        self._index = index
        self._statuses: list[TaskStatus] = [TaskStatus.PENDING] * n
        self._results: list[object] = [None] * n
        #: The last error of each task that has one (most have none: a dict, not a list).
        self._errors: dict[int, BaseException] = {}
        self._attempts: list[int] = [0] * n
        # perf_counter() readings; 0.0 until the task starts / ends. Arrays of doubles: 8 bytes
        # a task each, where a list of floats costs 32.
        # (Repeated from one element: no temporary of 8 bytes a task.)
        self._started = array("d", _ZERO) * n
        self._finished = array("d", _ZERO) * n
        #: Mapped tasks' element records, by task position (filled as each one starts).
        self._elements: dict[int, ElementRecord] = {}
        #: Every task that failed for good, in the order it failed.
        self.failures: list[TaskFailedError] = []
        #: Tasks whose result was restored from the run's store (resumed), not run.
        self.restored: list[str] = []
        #: Tasks whose result came from the cache (``Task(cache=True)``), not run.
        self.cached: list[str] = []
        #: Wall-clock (``time.time()``) start and end of the run; ``finished_at`` is None while
        #: it runs.
        self.started_at: float = time.time()
        self.finished_at: float | None = None

    def __repr__(self) -> str:
        state = "running" if self.finished_at is None else ("ok" if self.ok else "failed")
        return f"<WorkflowRun {self.workflow!r} run_id={self.run_id!r} {state}>"

    def __len__(self) -> int:
        return len(self._statuses)

    # -- by index: the engine's and Task's fast path -----------------------------------------

    def status_at(self, index: int) -> TaskStatus:
        return self._statuses[index]

    def result_at(self, index: int) -> object:
        value = self._results[index]
        if value is RELEASED:
            raise ResultReleasedError(self._names[index])
        if isinstance(value, Remote):
            value = self._results[index] = value.fetch()
        return value

    def error_at(self, index: int) -> BaseException | None:
        return self._errors.get(index)

    # -- by name -----------------------------------------------------------------------------

    def _position(self, name: str) -> int:
        i = self._index.get(name)
        if i is None or i >= len(self._statuses):
            raise UnknownTaskError(name, self.workflow)
        return i

    def status(self, name: str) -> TaskStatus:
        """The task's status in this run.

        Raises:
            UnknownTaskError: The run has no task of that name.
        """
        return self._statuses[self._position(name)]

    def result(self, name: str) -> Any:  # Any: only the caller knows a result's type
        """The task's result (None if it did not complete, or was skipped).

        Raises:
            UnknownTaskError: The run has no task of that name.
            ResultUnavailableError: The result was kept on a cluster that can no longer
                deliver it (see :class:`~flowweaver.DaskExecutor`).
            ResultReleasedError: The run was given ``keep_results=`` without this task, and
                released its result once the tasks that read it had ended.
        """
        return self.result_at(self._position(name))

    def error(self, name: str) -> BaseException | None:
        """The exception of the task's last failed attempt, or None."""
        return self._errors.get(self._position(name))

    def attempts(self, name: str) -> int:
        """How many attempts the task made (0 if it never ran)."""
        return self._attempts[self._position(name)]

    def duration(self, name: str) -> float | None:
        """Seconds from the task's first start to its end, or None if it did not run to an end."""
        i = self._position(name)
        started, finished = self._started[i], self._finished[i]
        return finished - started if started and finished else None

    def elements(self, name: str) -> ElementRecord | None:
        """What the elements of mapped task ``name`` did (None for a task that is not mapped,
        or that never started mapping: skipped, upstream failed, restored whole).

        Raises:
            UnknownTaskError: The run has no task of that name.
        """
        return self._elements.get(self._position(name))

    def element_of(self, name: str) -> tuple[str, int] | None:
        """``("square", 3)`` for the name observers see for element 3 of mapped task
        ``square`` (``"square[3]"``); None for any other name."""
        if name in self._index or not name.endswith("]"):
            return None
        task, bracket, index = name[:-1].rpartition("[")
        i = self._index.get(task)
        if not bracket or i is None or i not in self._elements or not index.isdigit():
            return None
        return task, int(index)

    @property
    def results(self) -> dict[str, Any]:
        """``{name: result}`` of every task of the workflow that completed or was skipped (as
        None). A subflow's tasks are not listed: their results are its result. A run given
        ``keep_results=`` lists only the results it kept.

        Results still kept on a cluster are fetched first, in one batch.
        """
        done = (TaskStatus.COMPLETED, TaskStatus.SKIPPED)
        statuses = self._statuses
        results, names = self._results, self._names
        indices = [
            i for i in range(self.own_tasks) if statuses[i] in done and results[i] is not RELEASED
        ]
        self._fetch_remotes(indices)
        return {names[i]: results[i] for i in indices}

    def _fetch_remotes(self, indices: Sequence[int]) -> None:
        """Replace the remote results among ``indices`` by their values, a batch per kind."""
        results = self._results
        batches: dict[type[Remote], tuple[list[int], list[Remote]]] = {}
        for i in indices:
            value = results[i]
            if isinstance(value, Remote):
                where, remotes = batches.setdefault(type(value), ([], []))
                where.append(i)
                remotes.append(value)
        for kind, (where, remotes) in batches.items():
            for i, value in zip(where, kind.fetch_many(remotes), strict=True):
                results[i] = value

    @property
    def statuses(self) -> dict[str, TaskStatus]:
        """``{name: status}`` of every task, a subflow's tasks under their nested names."""
        return dict(zip(self._names, self._statuses, strict=False))

    @property
    def ok(self) -> bool:
        """True when the run has ended and no task failed or was cancelled."""
        bad = (TaskStatus.FAILED, TaskStatus.CANCELLED, TaskStatus.UPSTREAM_FAILED)
        return self.finished_at is not None and not any(s in bad for s in self._statuses)

    def stats(self) -> dict[str, Any]:
        """Counts per status plus timings.

        Keys: ``total_tasks``, one per :class:`TaskStatus` value (``completed``, ``failed``,
        ``pending``, ``running`` …), ``attempts`` (all attempts made), ``retries``,
        ``total_time_seconds`` (wall time so far, or of the whole run once it ended),
        ``run_id``.
        """
        counts = Counter(self._statuses)
        attempts = sum(self._attempts)
        ran = sum(1 for a in self._attempts if a)
        end = self.finished_at if self.finished_at is not None else time.time()
        stats: dict[str, Any] = {"total_tasks": len(self._statuses)}
        stats.update({status.value: counts.get(status, 0) for status in TaskStatus})
        stats.update(
            attempts=attempts,
            retries=attempts - ran,
            total_time_seconds=end - self.started_at,
            run_id=self.run_id,
        )
        return stats
