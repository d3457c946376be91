"""The Flow: Flowkit's Keras-style builder, ``Flow(name).add(a).branch(b, c).merge(d)``.

Each call attaches a task to the current *tip(s)*:

* ``add(t)``: ``t`` depends on every tip; ``t`` becomes the tip.
* ``branch(t1, t2, …)``: each depends on every tip; together they become the tips.
* ``merge(t)``: ``t`` depends on every tip (the branches), in branch order; ``t`` becomes the
  tip.

Then *name injection*: a parameter of ``t`` named after an earlier task of the flow that is not
already one of its upstreams adds that dependency (after the structural ones). That is what
lets ``combine(fetch_user, fetch_orders, fetch_recommendations)`` receive ``fetch_user`` when it
merges only the two branches. The binding rule then passes each result by name. Like a DAG, a
Flow compiles to a :class:`~flowweaver.Workflow` and runs on any executor.
"""

from __future__ import annotations

from typing import Any, Self

from ._dag import AuthoredGraph
from ._errors import ConfigurationError, DuplicateTaskError, TaskNameCollisionError
from ._graph import describe
from ._public import publish
from ._subflow import Nestable
from ._task import Task

__all__ = ["Flow"]


def _as_task(step: object) -> Any:
    """A step as a task: a workflow stands for its subflow task (anything else is checked by
    the step itself)."""
    return step.as_task() if isinstance(step, Nestable) and not isinstance(step, Task) else step


class Flow(AuthoredGraph):
    """A pipeline built step by step; every step depends on the previous one.

    Examples:
        >>> from flowweaver import Flow, task
        >>> @task
        ... def fetch_user() -> str:
        ...     return "alice"
        >>> @task
        ... def fetch_orders(fetch_user: str) -> list[str]:
        ...     return [f"{fetch_user}-1"]
        >>> @task
        ... def fetch_recommendations() -> list[str]:
        ...     return ["book"]
        >>> @task
        ... def combine(fetch_user: str, fetch_orders: list[str], fetch_recommendations: list[str]
        ...             ) -> tuple[str, int, int]:
        ...     return fetch_user, len(fetch_orders), len(fetch_recommendations)
        >>> flow = (
        ...     Flow("user_pipeline")
        ...     .add(fetch_user)
        ...     .branch(fetch_orders, fetch_recommendations)
        ...     .merge(combine)
        ... )
        >>> flow.run()["combine"]
        ('alice', 1, 1)

    See the module docstring for how each step is connected. A task can be added once.

    Args:
        name: The workflow's name.
        max_workers: Workers of the executor that :meth:`run` makes from a name.

    Raises:
        ConfigurationError: A bad name or ``max_workers``; a step given something else than
            a task, or ``branch()`` given nothing.
        DuplicateTaskError: The same task is added twice.
        TaskNameCollisionError: Two different tasks share a name.
    """

    _kind = "flow"

    def __init__(self, name: str = "flow", max_workers: int | None = None) -> None:
        super().__init__(name, max_workers)
        self._tips: list[Task[..., Any]] = []

    def _empty_hint(self) -> str:
        return "add tasks with .add(task) first"

    def add(self, task: Task[Any, Any] | Nestable) -> Self:
        """Add ``task`` after the current tip(s). Returns the flow.

        ``task`` may be a Workflow, DAG or Flow: it runs as a child run (a subflow).
        """
        node: Task[Any, Any] = _as_task(task)
        self._attach(node, self._tips)
        self._tips = [node]
        return self

    def branch(self, *steps: Task[Any, Any] | Nestable) -> Self:
        """Start parallel branches: each task depends on the current tip(s). Returns the flow."""
        tasks: list[Task[Any, Any]] = [_as_task(step) for step in steps]
        if not tasks:
            raise ConfigurationError(f"flow {self.name!r}: branch() needs at least one task")
        new: dict[str, Task[Any, Any]] = {}
        for task in tasks:  # all checked first: a refused branch() leaves the flow as it was
            self._check_new(task)
            other = new.get(task.name) or self._graph.get(task.name)
            if other is task:
                raise DuplicateTaskError(task.name, self.name)
            if other is not None:
                raise TaskNameCollisionError(task.name, self.name, describe(other), describe(task))
            new[task.name] = task
        for task in tasks:
            self._attach(task, self._tips)
        self._tips = list(tasks)
        return self

    def merge(self, task: Task[Any, Any] | Nestable) -> Self:
        """Join every current branch into ``task``, in branch order. Returns the flow."""
        node: Task[Any, Any] = _as_task(task)
        self._attach(node, self._tips)
        self._tips = [node]
        return self

    def _check_new(self, task: object) -> None:
        if not isinstance(task, Task):
            raise ConfigurationError(f"flow {self.name!r}: expected a Task, got {task!r}")
        if task in self._graph:
            raise DuplicateTaskError(task.name, self.name)

    def _attach(self, task: Task[Any, Any], upstream: list[Task[..., Any]]) -> None:
        self._check_new(task)
        graph = self._graph
        graph.add_task(task)
        for up in upstream:
            graph.add_edge(up, task)
        params = task.params
        # Positional-only parameters cannot be passed by name, so they do not inject.
        for name in (*params.positional[params.positional_only :], *params.keyword_only):
            source = graph.get(name)
            if source is not None and source is not task and source not in upstream:
                graph.add_edge(source, task)


publish(__name__)  # last: every exported class above exists
