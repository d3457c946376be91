"""The DAG: Flowkit's ``a >> b`` then ``DAG(name).run()``, compiled to a Workflow.

A DAG holds a :class:`~flowweaver._graph.TaskGraph`, compiles it to a
:class:`~flowweaver.Workflow` (cached until the graph changes) and runs that on any executor,
so retries, timeouts, ``when=``, callbacks and the failure policy are the engine's, unchanged.
Where a DAG's edges come from is the discovery rule of ``_scope`` (see :class:`DAG`).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, ClassVar, Self, TypeVar, Unpack

from . import _export, _scope
from ._checks import check_count
from ._errors import ConfigurationError, DefinitionError, SubflowCycleError
from ._graph import TaskGraph
from ._public import publish
from ._resolve import resolve_executor
from ._subflow import Nestable, Subflow, nesting_cycle
from ._task import Task, _linked

if TYPE_CHECKING:
    from collections.abc import Sequence
    from contextvars import Token
    from types import TracebackType

    from ._options import RunOptions
    from ._resolve import ExecutorLike
    from ._run import WorkflowRun
    from ._workflow import Workflow

__all__ = ["DAG", "AuthoredGraph"]


def _iterable(value: object, label: str, items: str) -> Iterable[Any]:
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise ConfigurationError(f"{label} must be an iterable of {items}, got {value!r}")
    return value


_Linkable = TypeVar("_Linkable", bound="Task[..., Any] | Nestable | Sequence[object]")


class AuthoredGraph(Nestable):
    """What :class:`DAG` and :class:`~flowweaver.Flow` share: compile, run, render, and be a
    subflow of another graph (``a >> child >> b``, ``Flow.add(child)``, ``wf.add_task(child)``:
    see :meth:`as_task`)."""

    _kind: ClassVar[str] = "graph"

    def __init__(self, name: str, max_workers: int | None) -> None:
        if not isinstance(name, str) or not name:
            raise ConfigurationError(f"{self._kind} name must be a non-empty str, got {name!r}")
        if max_workers is not None:
            check_count(f"{self._kind} {name!r}", "max_workers", max_workers, minimum=1)
        self.name = name
        #: Workers of the executor ``run`` creates from a name (None: that executor's default).
        self.max_workers = max_workers
        self._graph = TaskGraph(name)
        self._compiled: tuple[int, Workflow] | None = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} with {len(self._task_graph())} tasks>"

    def __len__(self) -> int:
        return len(self._task_graph())

    def __contains__(self, item: object) -> bool:
        """True for a task of this graph, or the name of one."""
        graph = self._task_graph()
        if isinstance(item, str):
            return graph.get(item) is not None
        return isinstance(item, Task) and item in graph

    def _task_graph(self) -> TaskGraph:
        return self._graph

    def _empty_hint(self) -> str:
        raise NotImplementedError

    @property
    def tasks(self) -> dict[str, Task[..., Any]]:
        """``{name: task}`` in the order the tasks were declared."""
        return {task.name: task for task in self._task_graph()}

    @property
    def last_run(self) -> WorkflowRun | None:
        """The record of the most recent run (statuses, errors, attempts, timings), or None."""
        return None if self._compiled is None else self._compiled[1].last_run

    def to_workflow(self) -> Workflow:
        """The :class:`~flowweaver.Workflow` this compiles to (the same object until changed).

        Raises:
            CycleError: The edges form a cycle (``.cycle`` holds the path).
            BindingError: A task's function cannot receive its upstream results.
        """
        graph = self._task_graph()
        compiled = self._compiled
        if compiled is None or compiled[0] != graph.version:
            for task in graph:
                if type(task.fn) is Subflow:
                    cycle = nesting_cycle(self, task.fn.source)
                    if cycle is not None:
                        raise SubflowCycleError(cycle)
            compiled = (graph.version, graph.compile(self.name))
            self._compiled = compiled
        return compiled[1]

    def _members(self) -> Iterable[Task[..., Any]]:
        return iter(self._task_graph())

    # -- as a subflow in the decorator style: ``a >> child >> b`` -----------------------------

    def __rshift__(self, other: _Linkable) -> _Linkable:
        """``self >> other``: ``other`` runs after this graph's child run. Returns ``other``."""
        return self.as_task() >> other

    def __rrshift__(self, other: Sequence[object]) -> Self:
        """``[a, b] >> self``: this graph's child run starts after each. Returns ``self``."""
        _scope.record(_linked(other, ">>"), (self.as_task(),))
        return self

    def __lshift__(self, other: _Linkable) -> _Linkable:
        """``self << other``: this graph's child run starts after ``other``. Returns ``other``."""
        return self.as_task() << other

    def __rlshift__(self, other: Sequence[object]) -> Self:
        """``[a, b] << self``: each starts after this graph's child run. Returns ``self``."""
        _scope.record((self.as_task(),), _linked(other, "<<"))
        return self

    def _runnable(self) -> Workflow:
        workflow = self.to_workflow()
        if not len(workflow):
            raise DefinitionError(f"{self._kind} {self.name!r} has no tasks: {self._empty_hint()}")
        return workflow

    def run(
        self, executor: str | ExecutorLike = "thread", **options: Unpack[RunOptions]
    ) -> dict[str, Any]:
        """Run every task; return ``{task name: result}``.

        Skipped tasks are included with ``None``. Read statuses, errors and timings from
        :attr:`last_run`.

        Args:
            executor: ``"sequential"``, ``"thread"`` (default), ``"async"``, ``"process"``
                (made with ``max_workers`` and shut down after the run), or any executor
                object (flowweaver's, or a ``concurrent.futures.Executor``).
            **options: Run options (:class:`~flowweaver.RunOptions`), e.g.
                ``failure_policy="continue"``, ``monitors=[...]``, ``run_id=...``.

        Raises:
            WorkflowFailedError: A task failed (a ``RuntimeError``; ``.failures`` has each).
            DefinitionError: There is nothing to run; or a ``CycleError`` /
                ``BindingError`` from compiling.
            ConfigurationError: An unknown executor name or run option.
        """
        workflow = self._runnable()
        runner, release = resolve_executor(executor, self.max_workers)
        try:
            run = runner.execute(workflow, **options)
        finally:
            if release is not None:
                release()
        return run.results

    async def run_async(
        self, executor: str | ExecutorLike = "async", **options: Unpack[RunOptions]
    ) -> dict[str, Any]:
        """:meth:`run` from inside a running event loop (default: on that loop)."""
        workflow = self._runnable()
        runner, release = resolve_executor(executor, self.max_workers)
        try:
            run = await runner.execute_async(workflow, **options)
        finally:
            if release is not None:
                release()
        return run.results

    def visualize(self) -> str:
        """A plain-text rendering (the seed's API); same as :meth:`to_text`."""
        return self.to_text()

    def to_text(self) -> str:
        """One line per task in execution order: ``[layer] name <- dependencies``."""
        workflow = self.to_workflow()
        return _export.to_text(
            f"{self._kind} {self.name!r}",
            workflow._names,
            workflow._deps,
            workflow._levels,
            workflow._map_labels(),
        )

    def to_mermaid(self) -> str:
        """A Mermaid flowchart of the tasks and their dependencies."""
        return self.to_workflow().to_mermaid()

    def to_dot(self) -> str:
        """A Graphviz DOT digraph of the tasks and their dependencies."""
        return self.to_workflow().to_dot()


class DAG(AuthoredGraph):
    """Tasks connected with ``>>`` / ``<<``, run as one workflow.

    Examples:
        >>> from flowweaver import DAG, task
        >>> @task
        ... def extract() -> list[int]:
        ...     return [1, 2, 3]
        >>> @task
        ... def total(extract: list[int]) -> int:
        ...     return sum(extract)
        >>> extract >> total  # doctest: +ELLIPSIS
        Task(name='total', ...)
        >>> DAG("etl").run()
        {'extract': [1, 2, 3], 'total': 6}

    Where the tasks and edges come from:

    * ``DAG(name)`` without ``tasks=`` / ``edges=`` takes every edge recorded with ``>>`` /
      ``<<`` in the current context (thread, or asyncio task) since the previous such
      ``DAG`` took them; the recording then starts over. Two pipelines defined one after the
      other never see each other's tasks. A task that is in no edge joins only explicitly,
      with one exception: when no edge was recorded at all, the DAG holds the tasks
      decorated with ``@task`` since then in the module that creates it (so ``@task def
      flaky(): ...`` then ``DAG("flaky").run()`` runs ``flaky``); tasks of imported modules
      never join that way.
    * ``with DAG(name) as dag:`` — edges recorded inside the block belong to ``dag`` alone;
      edges recorded outside it are neither seen nor taken.
    * ``DAG(name, tasks=[...], edges=[(a, b), (b, [c, d])])``, :meth:`add` and
      :meth:`connect` — explicit, no implicit state.

    A task's inputs follow the binding rule (see :mod:`flowweaver`); upstream results fill
    positional parameters in the order the edges were declared (``[fetch, a, b] >> agg``
    calls ``agg(fetch_result, a_result, b_result)``). Two different tasks with one name are
    refused (:class:`TaskNameCollisionError`). Not thread-safe: build a DAG on one thread.

    Args:
        name: The workflow's name.
        max_workers: Workers of the executor that :meth:`run` makes from a name.
        tasks: Tasks to include (explicit form).
        edges: ``(upstream, downstream)`` pairs; either side may be a list of tasks.

    A ``>>`` that would close a loop raises :class:`CycleError` at once, naming the path.

    Raises:
        ConfigurationError: A bad name, ``max_workers``, task or edge.
        TaskNameCollisionError: Two different tasks share a name.
    """

    _kind = "dag"

    def __init__(
        self,
        name: str = "workflow",
        max_workers: int | None = None,
        *,
        tasks: Iterable[Task[Any, Any]] | None = None,
        edges: Iterable[tuple[object, object]] | None = None,
    ) -> None:
        super().__init__(name, max_workers)
        self._scopes: list[Token[Any]] = []
        #: Edges claimed at construction and not yet added to the graph (see _task_graph).
        self._claimed: list[_scope.Edge] = []
        #: The module that made this DAG: its lone @tasks may form the DAG (see _scope).
        self._module: str | None = sys._getframe(1).f_globals.get("__name__")
        if tasks is None and edges is None:
            self._claimed = _scope.claim()
            return
        if tasks is not None:
            for task in _iterable(tasks, "tasks", "tasks"):
                self._graph.add_task(task)
        if edges is not None:
            for pair in _iterable(edges, "edges", "(upstream, downstream) pairs"):
                if not isinstance(pair, tuple | list) or len(pair) != 2:
                    raise ConfigurationError(
                        f"edges must be (upstream, downstream) pairs, got {pair!r}"
                    )
                self.connect(pair[0], pair[1])

    def _task_graph(self) -> TaskGraph:
        # Claimed edges join the graph on first use, so that `with DAG(...)` can still give
        # them back untouched (see __enter__).
        if self._claimed:
            claimed, self._claimed = self._claimed, []
            try:
                self._take(claimed)
            except BaseException:
                self._graph = TaskGraph(self.name)
                self._claimed = claimed
                raise
        return self._graph

    def _take(self, records: list[_scope.Edge]) -> None:
        # Edges if there are any; otherwise the lone @tasks of the module that made the DAG.
        edges = _scope.edges_of(records)
        if edges:
            for up, down in edges:
                self._graph.add_edge(up, down)
        else:
            for task in _scope.declared_in(records, self._module):
                self._graph.add_task(task)

    def _empty_hint(self) -> str:
        return (
            f"connect tasks with >> before DAG({self.name!r}) is created, or inside "
            f"'with DAG({self.name!r}) as dag:', or pass tasks=[...]"
        )

    def add(self, *tasks: Task[Any, Any] | Nestable) -> Self:
        """Include tasks (those in no edge need this; a workflow joins as a subflow). Returns
        the DAG.

        Raises:
            ConfigurationError: Something is not a Task.
            TaskNameCollisionError: A different task of the DAG has the same name.
        """
        graph = self._task_graph()
        for task in tasks:
            graph.add_task(task)
        return self

    def connect(self, upstream: object, downstream: object) -> Self:
        """``downstream`` depends on ``upstream`` (each a task or a list of tasks), like ``>>``
        but recorded here only. Returns the DAG.
        """
        ups, downs = _linked(upstream, "connect()"), _linked(downstream, "connect()")
        graph = self._task_graph()
        for up in ups:
            for down in downs:
                graph.add_edge(up, down)
        return self

    def __enter__(self) -> Self:
        if self._claimed:  # taken at construction, never used: not this block's to keep
            _scope.give_back(self._claimed)
            self._claimed = []
        self._scopes.append(_scope.open_scope())
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        records = _scope.close_scope(self._scopes.pop())
        if exc_type is None:
            self._task_graph()
            self._take(records)


publish(__name__)  # last: every exported class above exists
