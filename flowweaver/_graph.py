"""A graph of Task objects as ``>>``, a DAG or a Flow declares it, compiled into a Workflow.

Design:

* Nodes are Task *objects* (identity, not name): the same task reached twice is one node; two
  different tasks with one name are refused at once (:class:`TaskNameCollisionError`, naming
  both functions), never merged.
* Each node keeps its upstream tasks in the order the edges were declared, without repeats:
  that order is the order of ``depends_on``, hence of positional arguments under the binding
  rule (``[fetch, a, b] >> aggregate`` calls ``aggregate(fetch, a, b)``).
* :meth:`TaskGraph.compile` inserts the tasks into a :class:`~flowweaver.Workflow` in
  topological order (Kahn's algorithm; among ready tasks, the one declared first), so the
  workflow's own checks (binding) apply unchanged. A cycle is a :class:`CycleError` whose
  ``.cycle`` runs in dependency order (each node depends on the next) and starts at the cycle's
  earliest-declared task.
"""

from __future__ import annotations

import heapq
from typing import TYPE_CHECKING, Any

from ._errors import ConfigurationError, CycleError, TaskNameCollisionError
from ._subflow import Nestable
from ._task import Task
from ._workflow import Workflow

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["TaskGraph", "describe"]


def describe(task: Task[..., Any]) -> str:
    """How a task's function is called in messages: ``module.qualname`` (or its repr)."""
    fn = task.fn
    module = getattr(fn, "__module__", None)
    qualname = getattr(fn, "__qualname__", None)
    if isinstance(module, str) and isinstance(qualname, str):
        return f"{module}.{qualname}"
    return repr(fn)


class TaskGraph:
    """Tasks and the edges between them, in declaration order. Not thread-safe.

    Args:
        name: Named in errors (the DAG's or Flow's name).
    """

    __slots__ = ("_by_name", "_ups", "name", "version")

    def __init__(self, name: str) -> None:
        self.name = name
        self._by_name: dict[str, Task[..., Any]] = {}
        # Insertion-ordered; Task compares by identity (eq=False), so this is keyed by object.
        # Each node's upstreams are an insertion-ordered dict too (values unused): a repeated
        # edge is found in O(1), so ``[many] >> task`` stays linear in its upstreams.
        self._ups: dict[Task[..., Any], dict[Task[..., Any], None]] = {}
        #: Bumped on every change, so a compiled workflow knows when it is stale.
        self.version = 0

    def __len__(self) -> int:
        return len(self._ups)

    def __contains__(self, task: object) -> bool:
        return task in self._ups

    def __iter__(self) -> Iterator[Task[..., Any]]:
        return iter(self._ups)

    def get(self, name: str) -> Task[..., Any] | None:
        """The task of that name, or None."""
        return self._by_name.get(name)

    def add_task(self, task: object) -> None:
        """Add ``task`` (once; adding the same object again changes nothing).

        Raises:
            ConfigurationError: ``task`` is not a Task.
            TaskNameCollisionError: A different task already has its name.
        """
        if not isinstance(task, Task):
            if not isinstance(task, Nestable):
                raise ConfigurationError(f"expected a Task, got {task!r}")
            task = task.as_task()
        if task in self._ups:
            return
        other = self._by_name.get(task.name)
        if other is not None:
            raise TaskNameCollisionError(task.name, self.name, describe(other), describe(task))
        self._by_name[task.name] = task
        self._ups[task] = {}
        self.version += 1

    def add_edge(self, upstream: Task[..., Any], downstream: Task[..., Any]) -> None:
        """``downstream`` depends on ``upstream`` (both are added if new; repeats are ignored)."""
        self.add_task(upstream)
        self.add_task(downstream)
        ups = self._ups[downstream]
        if upstream not in ups:
            ups[upstream] = None
            self.version += 1

    def compile(self, name: str) -> Workflow:
        """A new :class:`Workflow` named ``name`` holding these tasks and edges.

        Raises:
            CycleError: The edges form a cycle.
            BindingError: A task's function cannot receive its upstream results.
        """
        order = self._topological_order()
        workflow = Workflow(name)
        for task in order:
            workflow.add_task(task, depends_on=[up.name for up in self._ups[task]])
        return workflow

    def _topological_order(self) -> list[Task[..., Any]]:
        tasks = list(self._ups)
        position = {task: k for k, task in enumerate(tasks)}
        waiting = [len(self._ups[task]) for task in tasks]
        children: list[list[int]] = [[] for _ in tasks]
        for k, task in enumerate(tasks):
            for up in self._ups[task]:
                children[position[up]].append(k)
        ready = [k for k, count in enumerate(waiting) if not count]
        heapq.heapify(ready)  # among ready tasks, the one declared first goes first
        order: list[Task[..., Any]] = []
        while ready:
            k = heapq.heappop(ready)
            order.append(tasks[k])
            for child in children[k]:
                waiting[child] -= 1
                if not waiting[child]:
                    heapq.heappush(ready, child)
        if len(order) < len(tasks):
            raise CycleError(self._a_cycle(tasks, position, waiting))
        return order

    def _a_cycle(
        self,
        tasks: list[Task[..., Any]],
        position: dict[Task[..., Any], int],
        waiting: list[int],
    ) -> list[str]:
        """One cycle among the tasks Kahn's algorithm could not order (error path only).

        Each of them still waits for an upstream that is also stuck, so following stuck
        upstreams from any of them must come back to a task already seen.
        """
        seen: dict[int, int] = {}  # task position -> index in path
        path: list[int] = []
        k = next(k for k, count in enumerate(waiting) if count)
        while k not in seen:
            seen[k] = len(path)
            path.append(k)
            k = next(position[up] for up in self._ups[tasks[k]] if waiting[position[up]])
        cycle = path[seen[k] :]
        first = cycle.index(min(cycle))  # start at the earliest-declared task
        cycle = cycle[first:] + cycle[:first]
        return [tasks[i].name for i in (*cycle, cycle[0])]
