"""Releasing intermediate results: the run option ``keep_results=[...]``.

By default a run keeps every task's result (the seeds' API reads any of them afterwards). A
run given ``keep_results`` keeps only the results of the tasks it names and lets go of every
other one as soon as nothing in the run can read it again: when the last of the task's own
dependants has *ended* (completed, failed for good, skipped, cancelled, upstream failed). Not
when it started: a dependant that is retried reads its inputs again, and so does a mapped
task's every element. A result that nothing reads is released when its task completes.

Who may change what: only the engine, from the driver thread, calls :meth:`Releaser.ended`
when a task of the run's own workflow settles (``Engine.succeed`` and ``Engine._settle``). The
tasks of a subflow are not released one by one: their results make up the subflow task's
result, and go with it (kept with it when it is named). A released result is replaced by
``RELEASED`` in the run's results, which the run answers with
:class:`~flowweaver.ResultReleasedError`. A durable run has committed a result before it is
released, so resuming and the cache are unaffected.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING, Any

from ._errors import ConfigurationError, UnknownTaskError
from ._run import RELEASED
from ._status import TaskStatus

if TYPE_CHECKING:
    from ._engine import Engine

__all__ = ["Releaser", "releaser_for"]

_COMPLETED = TaskStatus.COMPLETED


class Releaser:
    """Which results a run keeps, and how many readers each of the others still has."""

    __slots__ = ("deps", "ended_at", "engine", "keep", "readers", "results", "statuses")

    def __init__(self, engine: Engine, keep: bytearray) -> None:
        n = engine.n
        self.engine = engine
        self.keep = keep
        self.deps = engine.deps
        self.results = engine.results
        self.statuses = engine.statuses
        #: Dependants of each task (in this run) that have not ended yet.
        self.readers = [sum(1 for c in kids if c < n) for kids in engine.children[:n]]
        #: 1 once a task has ended (a task is counted for its dependencies once).
        self.ended_at = bytearray(n)

    def ended(self, i: int) -> None:
        """Task ``i`` of the run's own workflow has ended: its inputs have one reader less,
        and its own result goes at once when nothing reads it."""
        ended_at = self.ended_at
        if i >= len(ended_at) or ended_at[i]:
            return  # a subflow's task, or counted already
        ended_at[i] = 1
        readers = self.readers
        for d in self.deps[i]:
            left = readers[d] - 1
            readers[d] = left
            if not left:
                self._release(d)
        if not readers[i]:
            self._release(i)

    def _release(self, i: int) -> None:
        if not self.keep[i] and self.statuses[i] is _COMPLETED:
            self.results[i] = RELEASED
            if self.engine.nest is not None:
                self._release_child(i)

    def _release_child(self, opener: int) -> None:
        """The tasks of the subflow that ``opener`` ran (and of its subflows) go with it."""
        nest = self.engine.nest
        assert nest is not None
        child = nest.by_opener.get(opener)
        if child is None:
            return
        results, statuses = self.results, self.statuses
        for j in range(child.base, child.base + child.count):
            if statuses[j] is _COMPLETED:
                results[j] = RELEASED
            if j in nest.by_opener:
                self._release_child(j)


def releaser_for(engine: Engine, keep: object) -> Releaser | None:
    """The releaser of a run given ``keep_results=keep`` (None: every result is kept).

    Raises:
        ConfigurationError: ``keep`` is not a collection of task names.
        UnknownTaskError: It names a task the workflow does not have.
    """
    if keep is None:
        return None
    if isinstance(keep, str | bytes) or not isinstance(keep, Collection):
        raise ConfigurationError(
            f"keep_results must be a collection of task names (or None), got {keep!r}"
        )
    workflow = engine.source
    index, n = workflow._index, engine.n
    kept = bytearray(n)
    name: Any
    for name in keep:
        position = index.get(name) if isinstance(name, str) else None
        if position is None or position >= n:
            if not isinstance(name, str):
                raise ConfigurationError(
                    f"keep_results must hold task names (str), got {name!r} in {keep!r}"
                )
            raise UnknownTaskError(name, workflow.name)
        kept[position] = 1
    return Releaser(engine, kept)
