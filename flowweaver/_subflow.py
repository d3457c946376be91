"""Subflows, the model's half: a workflow as one task of another workflow.

A *subflow task* is a :class:`~flowweaver.Task` whose ``fn`` is a :class:`Subflow`: it names a
:class:`Nestable` (a :class:`~flowweaver.Workflow`, :class:`~flowweaver.DAG` or
:class:`~flowweaver.Flow`) that the engine runs as a *child run* when the task starts
(``_nesting`` has the engine's half). A task whose function *returns* a Nestable is the
dynamic form: the engine runs what it returned the same way.

Rules kept here, at definition time:

* :meth:`Nestable.as_task` is the one way a graph becomes a task; ``wf.add_task(child)``,
  ``a >> child >> b`` and ``Flow.add(child)`` all go through it. Without options it returns
  the same Task each time, so ``>>`` sees one node however often the graph is linked.
* A graph may not contain itself through subflows: :func:`nesting_cycle` walks the static
  subflow tasks below a new child (never compiling anything) and
  :class:`~flowweaver.SubflowCycleError` names the chain. A cycle that only a builder
  function can close is caught when the engine opens the child.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._binding import ArgSpec
from ._task import Task

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

    from ._status import TaskStatus
    from ._workflow import Workflow

__all__ = ["NESTED", "Nestable", "Subflow", "nesting_cycle"]

#: The argument spec of a subflow task, and of a builder task whose child is running: the
#: engine's ``begin`` hands such a task to ``_nesting`` instead of calling anything.
NESTED = ArgSpec((), ())


class Nestable:
    """What can run as a child run inside another workflow: Workflow, DAG and Flow."""

    __slots__ = ()

    name: str

    def to_workflow(self) -> Workflow:
        """The :class:`~flowweaver.Workflow` that runs (a Workflow returns itself)."""
        raise NotImplementedError

    def _members(self) -> Iterable[Task[..., Any]]:
        """Its tasks, without compiling anything (for the nesting-cycle check)."""
        raise NotImplementedError

    def as_task(
        self,
        name: str | None = None,
        *,
        depends_on: Sequence[str] = (),
        when: Callable[..., object] | None = None,
        skip_if_upstream_skipped: bool = False,
        on_status_change: Callable[[str, TaskStatus], object] | None = None,
    ) -> Task[[], Workflow]:
        """This workflow as one task of another: when the task starts, the engine runs it as
        a child run and the task's result is ``{child task name: result}``.

        Example:
            >>> from flowweaver import Task, Workflow
            >>> child = Workflow("child")
            >>> child.add_task(Task(name="one", fn=lambda: 1))
            >>> parent = Workflow("parent")
            >>> parent.add_task(child.as_task("inner"))
            >>> parent.execute().result("inner")
            {'one': 1}

        Args:
            name: The task's name (default: this workflow's name).
            depends_on: Tasks the child starts after (their results are not passed in: to
                feed a child, build it in a task from that task's inputs).
            when: Predicate (no arguments); the child is skipped when it is falsy.
            skip_if_upstream_skipped: As :class:`~flowweaver.Task`.
            on_status_change: Called as ``(name, status)`` for this task and for every task
                of the child, under its nested name (``"inner/one"``).

        Raises:
            ConfigurationError: A bad option (the message names it).
        """
        if (
            name is None
            and not depends_on
            and when is None
            and not skip_if_upstream_skipped
            and on_status_change is None
        ):
            cached: Task[[], Workflow] | None = getattr(self, "_task", None)
            if cached is None:
                cached = Task(name=self.name, fn=Subflow(self))
                object.__setattr__(self, "_task", cached)
            return cached
        return Task(
            name=self.name if name is None else name,
            fn=Subflow(self),
            depends_on=depends_on,
            when=when,
            skip_if_upstream_skipped=skip_if_upstream_skipped,
            on_status_change=on_status_change,
        )


class Subflow:
    """The ``fn`` of a subflow task: the graph to run. Calling it returns the compiled
    workflow (the engine never calls it on a worker: it opens a child run instead)."""

    __slots__ = ("source",)

    def __init__(self, source: Nestable) -> None:
        self.source = source

    def __call__(self) -> Workflow:
        return self.source.to_workflow()

    def __repr__(self) -> str:
        return f"Subflow({self.source!r})"


def nesting_cycle(parent: object, child: Nestable) -> tuple[str, ...] | None:
    """The names of a chain ``parent -> child -> … -> parent`` through static subflow tasks,
    if ``child`` (transitively) contains ``parent``; else None."""
    start = (child, (_name(parent), child.name))
    stack: list[tuple[Nestable, tuple[str, ...]]] = [start]
    seen: set[int] = set()
    while stack:
        source, path = stack.pop()
        if source is parent:
            return path
        if id(source) in seen:
            continue
        seen.add(id(source))
        for task in source._members():
            fn = task.fn
            if type(fn) is Subflow:
                stack.append((fn.source, (*path, fn.source.name)))
    return None


def _name(graph: object) -> str:
    name = getattr(graph, "name", None)
    return name if isinstance(name, str) else repr(graph)
