"""The Workflow: named tasks and the dependencies between them, validated as they are added.

Design notes:

* A task may only depend on tasks already in the workflow, so the graph is acyclic by
  construction and insertion order is a topological order. That makes ``add_task`` cost
  O(its dependencies): no global re-check, no DFS. (The FlowWeaver seed re-validated the whole
  graph on every add and needed 70 s for 20,000 tasks.) Redefining an existing name is refused,
  and reported as a :class:`CycleError` when the new dependencies would close a cycle.
* Each task's Kahn layer (``0`` without dependencies, else ``1 + max(layer of its
  dependencies)``) is computed in one pass when a plan or an export asks for it, not stored;
  ``get_execution_plan()`` groups by layer, keeping insertion order inside a layer, so plans
  are stable and deterministic. Layers are for display and for the seed API: execution never
  waits for a layer (see ``_engine``).
* The graph is stored as append-only lists indexed by task position (a task's dependencies: a
  tuple of positions). A run snapshots only the length, so a task added while a run is in
  progress is simply not part of that run. The reverse index (each task's dependants, tuples)
  is built when first needed after a change — a run, ``get_dependents`` — in one O(tasks +
  edges) counting sort, and dropped by the next ``add_task``: building and planning a large
  workflow do not pay for it, and a run keeps the one it started with.
* Per task the workflow holds the Task, its name, its dependency tuple, its argument spec
  (shared by every task that binds alike) and its index entry: about 270 bytes with the Task
  (issue 18; see the ``graph`` benchmarks).
* Run state belongs to runs (:class:`WorkflowRun`); the workflow remembers its latest run for
  the seed's ``get_task_status`` / ``get_task_result`` / ``get_workflow_stats``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, Unpack, cast

from ._binding import NO_ARGS, NOTHING, ArgSpec, bind
from ._errors import (
    ConfigurationError,
    CycleError,
    DefinitionError,
    DuplicateTaskError,
    MapDefinitionError,
    SubflowCycleError,
    UnknownDependencyError,
    UnknownTaskError,
)
from ._status import TaskStatus
from ._subflow import NESTED, Nestable, Subflow, nesting_cycle
from ._task import ONLY_UPSTREAM, Task

if TYPE_CHECKING:
    from collections.abc import Iterable

    from ._options import RunOptions
    from ._resolve import ExecutorLike
    from ._run import WorkflowRun

__all__ = ["Workflow"]


def _hashable(value: object) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


class Workflow(Nestable):
    """A named DAG of tasks.

    Examples:
        >>> from flowweaver import Task, Workflow
        >>> wf = Workflow(name="ETL")
        >>> wf.add_task(Task(name="extract", fn=lambda: [1, 2, 3]))
        >>> wf.add_task(Task(name="total", fn=lambda extract: sum(extract)), depends_on=["extract"])
        >>> wf.execute().result("total")
        6

    Invariants: names are unique; every dependency names an earlier task; a failed
    ``add_task`` leaves the workflow exactly as it was. A workflow (or a DAG, or a Flow) can be
    a task of another one: ``wf.add_task(child)`` (see :meth:`as_task`).

    Raises:
        ConfigurationError: ``name`` is not a non-empty string.
    """

    __slots__ = (
        "_children",
        "_deps",
        "_index",
        "_last_run",
        "_mapped",
        "_names",
        "_sources",
        "_specs",
        "_task",
        "_tasks",
        "name",
    )

    def __init__(self, name: str = "Workflow") -> None:
        if not isinstance(name, str) or not name:
            raise ConfigurationError(f"workflow name must be a non-empty str, got {name!r}")
        self.name = name
        self._tasks: list[Task[..., Any]] = []
        self._names: list[str] = []
        self._index: dict[str, int] = {}
        self._deps: list[tuple[int, ...]] = []
        # Dependants of each task: built on first use (a run, get_dependents) and dropped when
        # a task is added. Planning needs only dependencies; building a big workflow should not
        # pay for a second index it may never use before its first run.
        self._children: list[tuple[int, ...]] | None = None
        self._sources: list[int] = []
        self._specs: list[ArgSpec] = []
        #: Mapped tasks: position -> positions (in its dependency list) of what it maps over.
        self._mapped: dict[int, tuple[int, ...]] = {}
        self._last_run: WorkflowRun | None = None

    def __repr__(self) -> str:
        return f"<Workflow {self.name!r} with {len(self._tasks)} tasks>"

    def __len__(self) -> int:
        return len(self._tasks)

    def __contains__(self, name: object) -> bool:
        return name in self._index

    def __iter__(self) -> Iterator[Task[..., Any]]:
        return iter(self._tasks)

    # -- building ----------------------------------------------------------------------------

    def add_task(
        self, task: Task[Any, Any] | Nestable, depends_on: Sequence[str] | None = None
    ) -> None:
        """Add ``task``, depending on the named tasks (default: ``task.depends_on``).

        Upstream results reach ``task.fn`` by the binding rule (see :mod:`flowweaver`):
        parameters named after an upstream task get its result; the rest are filled
        positionally in the order of ``depends_on``.

        ``task`` may also be a Workflow, DAG or Flow: it becomes a *subflow*, run as a child
        run when its dependencies are done (:meth:`as_task`).

        Raises:
            ConfigurationError: ``task`` is not a Task (or a workflow), or ``depends_on`` is
                malformed or names a dependency twice.
            SubflowCycleError: ``task`` is a subflow that contains this workflow.
            DuplicateTaskError: The name is taken.
            CycleError: The name is taken and the new dependencies would close a cycle, or the
                task depends on itself.
            UnknownDependencyError: A dependency is not (yet) in the workflow.
            BindingError: ``task.fn`` cannot receive the dependencies' results.
        """
        if not isinstance(task, Task):
            if not isinstance(task, Nestable):
                raise ConfigurationError(f"add_task() expects a Task or a workflow, got {task!r}")
            task = task.as_task()
        name = task.name
        deps = task.depends_on if depends_on is None else depends_on
        if type(deps) not in (list, tuple) and (
            isinstance(deps, str) or not isinstance(deps, Sequence)
        ):
            raise ConfigurationError(
                f"task {name!r}: depends_on must be a sequence of task names, got {deps!r}"
            )
        index = self._index
        if name in index:
            cycle = self._cycle_through(index[name], deps)
            if cycle is not None:
                raise CycleError(cycle)
            raise DuplicateTaskError(name, self.name)
        try:
            found = tuple(map(index.get, deps))
        except TypeError:  # an unhashable dependency name
            dep = next(d for d in deps if not _hashable(d))
            raise self._bad_dependency(name, dep) from None
        if None in found:
            raise self._bad_dependency(name, deps[found.index(None)])
        dep_ids = cast("tuple[int, ...]", found)
        if len(dep_ids) > 1 and len(set(dep_ids)) != len(dep_ids):
            twice = next(d for k, d in enumerate(deps) if d in deps[:k])
            raise ConfigurationError(f"task {name!r} lists dependency {twice!r} twice")
        params = task.params
        if params is NOTHING or params.takes_nothing:
            spec = NO_ARGS
            fn = task.fn
            if type(fn) is Subflow:
                cycle = nesting_cycle(self, fn.source)
                if cycle is not None:
                    raise SubflowCycleError(cycle)
                spec = NESTED
        else:
            spec = bind(name, params, deps)
        mapped = (
            None
            if task._options is None or task.map_over is None  # no option set: no map_over
            else self._map_plan(task, deps, dep_ids, spec)
        )

        # Everything is validated: from here on nothing can fail half-way.
        i = len(self._tasks)
        self._tasks.append(task)
        self._names.append(name)
        index[name] = i
        self._children = None  # rebuilt when next needed (a run has its own copy)
        self._deps.append(dep_ids)
        if not dep_ids:
            self._sources.append(i)
        self._specs.append(spec)
        if mapped is not None:
            self._mapped[i] = mapped

    def _map_plan(
        self, task: Task[..., Any], deps: Sequence[str], dep_ids: tuple[int, ...], spec: ArgSpec
    ) -> tuple[int, ...]:
        """Where a mapped task's elements come from: positions in its dependency list."""
        name = task.name
        over = task.map_over
        assert over is not None
        if over is ONLY_UPSTREAM:
            if len(deps) != 1:
                have = ", ".join(repr(d) for d in deps) or "none"
                raise MapDefinitionError(
                    name,
                    f".map() without an upstream name needs exactly one upstream task, and "
                    f"it has {len(deps)} ({have}); name the one to map over: "
                    f"{name}.map('<upstream>')",
                )
            over = (deps[0],)
        elif isinstance(over, str):  # pragma: no cover - Task normalizes it to a tuple
            over = (over,)
        position = {d: k for k, d in enumerate(deps)}
        received = {*spec.positional, *(k for _, k in spec.keywords)}
        plan: list[int] = []
        for upstream in over:
            k = position.get(upstream)
            if k is None:
                have = ", ".join(repr(d) for d in deps) or "none"
                raise MapDefinitionError(
                    name, f"map_over names {upstream!r}, which is not one of its upstream "
                    f"tasks ({have})",
                )  # fmt: skip
            if k not in received:
                raise MapDefinitionError(
                    name, f"its function has no parameter that receives the elements of "
                    f"{upstream!r}",
                )  # fmt: skip
            source = self._tasks[dep_ids[k]]
            if not source.keep_results and len(deps) > 1:
                raise MapDefinitionError(
                    name, f"{upstream!r} does not keep its results (keep_results=False), so "
                    f"it can only be mapped over by a task that has no other upstream "
                    f"(its elements then stream in as they finish)",
                )  # fmt: skip
            plan.append(k)
        return tuple(plan)

    def _successors(self) -> list[tuple[int, ...]]:
        """Each task's dependants (positions), built in O(tasks + edges) when first needed
        after a change."""
        children = self._children
        if children is None:
            # Counting sort of the edges by dependency, then one tuple per task sliced from
            # it: no list per task that would be freed again (its memory would stay in the
            # process, between the tuples). The index's values are the positions 0, 1, … in
            # order (add_task appends): the int objects the dependency tuples hold, shared.
            deps_of = self._deps
            ends = [0] * (len(deps_of) + 1)
            for deps in deps_of:
                for d in deps:
                    ends[d + 1] += 1
            for k in range(1, len(ends)):
                ends[k] += ends[k - 1]
            flat: list[int] = [0] * ends[-1]
            fill = ends[:-1]
            for i, deps in zip(self._index.values(), deps_of, strict=True):
                for d in deps:
                    flat[fill[d]] = i
                    fill[d] += 1
            del fill
            children = self._children = [
                tuple(flat[ends[k] : ends[k + 1]]) for k in range(len(deps_of))
            ]
        return children

    @property
    def _levels(self) -> list[int]:
        """Each task's Kahn layer: 0 without dependencies, else one more than its deepest."""
        levels: list[int] = []
        deepest = levels.__getitem__
        for deps in self._deps:
            levels.append(max(map(deepest, deps)) + 1 if deps else 0)  # noqa: PERF401 - reads itself
        return levels

    def _bad_dependency(self, name: str, dep: object) -> DefinitionError:
        if dep == name:
            return CycleError((name, name))
        if not isinstance(dep, str):
            return ConfigurationError(f"task {name!r}: dependency names must be str, got {dep!r}")
        return UnknownDependencyError(name, dep, self.name)

    def _cycle_through(self, node: int, deps: Sequence[str]) -> tuple[str, ...] | None:
        """If ``node`` gained ``deps``, the cycle that would close, else None (error path)."""
        names, index = self._names, self._index
        for dep in deps:
            start = index.get(dep)
            if start is None:
                continue
            # Depth-first over dependencies from `start`, looking for `node`.
            parent: dict[int, int] = {start: -1}
            stack = [start]
            while stack:
                current = stack.pop()
                if current == node:
                    path = [current]
                    while parent[path[-1]] != -1:
                        path.append(parent[path[-1]])
                    # path runs node … start; the new edge closes it: node -> start … -> node
                    return tuple(names[p] for p in (node, *reversed(path)))
                for d in self._deps[current]:
                    if d not in parent:
                        parent[d] = current
                        stack.append(d)
        return None

    # -- as a subflow ------------------------------------------------------------------------

    def to_workflow(self) -> Workflow:
        """This workflow (what runs when it is a subflow of another)."""
        return self

    def _members(self) -> Iterable[Task[..., Any]]:
        return self._tasks

    # -- reading the definition --------------------------------------------------------------

    def get_execution_plan(self) -> list[list[Task[..., Any]]]:
        """The Kahn layers: layer ``k`` holds the tasks whose longest dependency chain has
        length ``k``. Stable: insertion order inside a layer.

        For display and planning only; executors start each task as soon as its own
        dependencies are done, never waiting for a whole layer.
        """
        plan: list[list[Task[..., Any]]] = []
        for task, level in zip(self._tasks, self._levels, strict=True):
            if level == len(plan):
                plan.append([])
            plan[level].append(task)
        return plan

    def get_task(self, task_name: str) -> Task[..., Any] | None:
        """The task of that name, or None."""
        i = self._index.get(task_name)
        return None if i is None else self._tasks[i]

    def get_dependencies(self, task_name: str) -> list[str]:
        """Names the task depends on, in declared order.

        Raises:
            UnknownTaskError: No task has that name.
        """
        i = self._index.get(task_name)
        if i is None:
            raise UnknownTaskError(task_name, self.name)
        return [self._names[d] for d in self._deps[i]]

    def get_dependents(self, task_name: str) -> list[str]:
        """Names of the tasks that depend directly on this one, in insertion order.

        Raises:
            UnknownTaskError: No task has that name.
        """
        i = self._index.get(task_name)
        if i is None:
            raise UnknownTaskError(task_name, self.name)
        return [self._names[c] for c in self._successors()[i]]

    def get_all_tasks(self) -> dict[str, Task[..., Any]]:
        """``{name: task}`` in insertion order (a copy)."""
        return dict(zip(self._names, self._tasks, strict=True))

    # -- export (see _export: Mermaid, DOT, text; loaded on first use) -----------------------

    def to_mermaid(self) -> str:
        """The workflow as a Mermaid flowchart (task names escaped, one node per task)."""
        from . import _export

        return _export.to_mermaid(self.name, self._names, self._deps, self._map_labels())

    def to_dot(self) -> str:
        """The workflow as a Graphviz DOT digraph (task names escaped, one node per task)."""
        from . import _export

        return _export.to_dot(self.name, self._names, self._deps, self._map_labels())

    def to_text(self) -> str:
        """A plain-text listing: ``[layer] name <- dependencies``, one task per line."""
        from . import _export

        return _export.to_text(
            f"workflow {self.name!r}", self._names, self._deps, self._levels, self._map_labels()
        )

    def _map_labels(self) -> dict[int, str]:
        """``{position: "map over numbers"}`` of each mapped task, for the exporters."""
        names, deps = self._names, self._deps
        return {
            i: "map over " + ", ".join(names[deps[i][k]] for k in over)
            for i, over in self._mapped.items()
        }

    # -- reading the latest run --------------------------------------------------------------

    @property
    def last_run(self) -> WorkflowRun | None:
        """The most recent run (in progress or ended), or None before the first."""
        return self._last_run

    def get_task_status(self, task_name: str) -> TaskStatus | None:
        """Status in the latest run; ``pending`` before any run; None for an unknown name."""
        i = self._index.get(task_name)
        if i is None:
            return None
        run = self._last_run
        if run is None or i >= len(run):
            return TaskStatus.PENDING
        return run.status_at(i)

    def get_task_result(self, task_name: str) -> Any:  # Any, as the seed
        """Result in the latest run, or None."""
        i = self._index.get(task_name)
        run = self._last_run
        if i is None or run is None or i >= len(run):
            return None
        return run.result_at(i)

    def get_workflow_stats(self) -> dict[str, Any]:
        """Counts and timings of the latest run (see :meth:`WorkflowRun.stats`).

        Before any run every task counts as pending and the time is 0.
        """
        run = self._last_run
        if run is not None:
            stats = run.stats()
            added = len(self._tasks) - run.own_tasks  # added after the run started
            stats["total_tasks"] += added
            stats["pending"] += added
            return stats
        stats = {"total_tasks": len(self._tasks)}
        stats.update({status.value: 0 for status in TaskStatus})
        stats.update(pending=len(self._tasks), attempts=0, retries=0, total_time_seconds=0.0)
        stats["run_id"] = None
        return stats

    # -- running -----------------------------------------------------------------------------

    def execute(
        self, executor: str | ExecutorLike | None = None, **options: Unpack[RunOptions]
    ) -> WorkflowRun:
        """Run the workflow on ``executor`` (default: :class:`SequentialExecutor`).

        ``executor`` may be any flowweaver executor, any ``concurrent.futures.Executor``, or
        one of the names ``"sequential"``, ``"thread"``, ``"async"``, ``"process"`` (a pool
        made from a name is shut down after the run). See :class:`RunOptions` for ``options``.

        Raises:
            WorkflowFailedError: One or more tasks failed (a ``RuntimeError``); its ``.run``
                is the finished run, with the results of the tasks that completed.
            ConfigurationError: An unknown executor name or run option.
        """
        from ._resolve import execute  # the seed API's one way up (see _resolve)

        return execute(self, executor, options)

    async def execute_async(
        self, executor: str | ExecutorLike | None = None, **options: Unpack[RunOptions]
    ) -> WorkflowRun:
        """Run the workflow from inside a running event loop (default: :class:`AsyncExecutor`).

        ``executor`` takes what :meth:`execute` takes.

        Raises:
            WorkflowFailedError: One or more tasks failed (a ``RuntimeError``); ``.run`` is
                the finished run.
        """
        from ._resolve import execute_async  # the seed API's one way up (see _resolve)

        return await execute_async(self, executor, options)
