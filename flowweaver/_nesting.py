"""Child runs, the engine's half: a subflow's tasks join the run of the task that opened it.

Design:

* **One engine, one driver.** When a subflow task starts (its spec is ``NESTED``), or a task's
  function returns a Workflow, DAG or Flow, :func:`open_child` appends the child's tasks to
  the parent's engine as more tasks of the same run, under nested names
  (``"load/parse_file_3"``), with their edges offset into the run's index space. So the child
  runs on the parent's executor through the parent's driver, with the parent's clock,
  monitors, failure policy and store: no worker waits for a child (a thread pool of two
  workers runs children nested three deep), no event loop is blocked, and a process pool or a
  Dask cluster gets the child's calls from the client-side engine like any other calls.
* **The task that opened the child stays ``running``** until every child task is settled.
  Each child task counts as one pending "dependency" of its opener: a child task that
  completes or is skipped releases it through the ordinary edge (the engine's hot path is
  unchanged); one that fails, is marked ``upstream_failed`` or is cancelled releases it from
  :func:`settled`. Then the opener is ready again and :func:`step` joins it: ``completed``
  with ``{child task name: result}``, or ``failed`` with a ``WorkflowFailedError`` of the
  child's failures as its cause. A child failure is recorded on its opener only, so the run's
  ``failures`` hold each failure once, at the outermost level.
* **Retries and timeouts** of the opener apply to its own call (the builder function); the
  child's tasks have their own. A child is never re-run as a whole.
* **Names.** A child task's status reaches its own ``on_status_change``, the
  ``on_status_change`` of every task that encloses it, and the run's monitors under its nested
  name; ``run.status("load/parse_file_3")`` reads it.
* **Durable runs.** A child's results are committed under a run id derived from its
  parent's, ``"<parent run id>/<nested name of the opener>"``, and the child workflow's name;
  so resuming the parent re-opens the child (its builder runs again) and the child tasks that
  committed are restored, not run. An opener's own result is never committed: it is rebuilt
  from its child's, so a change in the child's code is always noticed.
* **Cycles.** A child that is the run's workflow or one of its enclosing children fails its
  opener with :class:`~flowweaver.SubflowCycleError` (static cycles are refused earlier, when
  the graph is built).
"""

from __future__ import annotations

from time import perf_counter
from typing import TYPE_CHECKING

from ._errors import ConfigurationError, SubflowCycleError, WorkflowFailedError
from ._run import fetched
from ._status import TaskStatus
from ._subflow import NESTED, Nestable, Subflow

if TYPE_CHECKING:
    from ._engine import Engine
    from ._errors import TaskFailedError
    from ._limiter import Limiter
    from ._workflow import Workflow

__all__ = ["Child", "Nesting", "open_child", "settled", "step"]

#: Deeper nesting is taken for a cycle that identity cannot show (see _check_lineage).
MAX_DEPTH = 100

_PENDING = TaskStatus.PENDING
_RUNNING = TaskStatus.RUNNING
_COMPLETED = TaskStatus.COMPLETED
_SKIPPED = TaskStatus.SKIPPED
_CANCELLED = TaskStatus.CANCELLED


class Child:
    """One child run inside a run: where its tasks are and how it is going."""

    __slots__ = ("base", "count", "failures", "lineage", "opener", "run_id", "workflow")

    def __init__(
        self, opener: int, base: int, workflow: Workflow, lineage: tuple[Workflow, ...], run_id: str
    ) -> None:
        self.opener = opener
        #: The child's tasks are the run's tasks ``base`` to ``base + count - 1``.
        self.base = base
        self.count = len(workflow._tasks)
        self.workflow = workflow
        #: The workflows enclosing this child, outermost first, itself last.
        self.lineage = lineage
        #: Derived from the parent's: ``<parent run id>/<nested name of the opener>``.
        self.run_id = run_id
        self.failures: list[TaskFailedError] = []


class Nesting:
    """The child runs of one run (``Engine.nest``; None while the run has none)."""

    __slots__ = ("by_opener", "opened", "opener_of", "root")

    def __init__(self, root: Workflow) -> None:
        self.root = root
        #: For each task after the workflow's own, the task that opened its child run.
        self.opener_of: list[int] = []
        self.by_opener: dict[int, Child] = {}
        #: Openers in the order their children opened (an inner child opens after its outer).
        self.opened: list[int] = []

    def child_of(self, engine: Engine, i: int) -> Child | None:
        """The child run task ``i`` belongs to (None: one of the workflow's own tasks)."""
        if i < engine.run.own_tasks:
            return None
        return self.by_opener[self.opener_of[i - engine.run.own_tasks]]


def _lineage(engine: Engine, opener: int) -> tuple[Workflow, ...]:
    nest = engine.nest
    assert nest is not None
    child = nest.child_of(engine, opener)
    return (nest.root,) if child is None else child.lineage


def step(engine: Engine, i: int) -> None:
    """``begin`` of a NESTED task: open its child (a subflow task starting), or join it."""
    nest = engine.nest
    if nest is not None and i in nest.by_opener:
        _join(engine, i, nest.by_opener[i])
        return
    task = engine.tasks[i]
    if (task.when is not None or task.skip_if_upstream_skipped) and engine._skips(
        i, task, (), None
    ):
        return
    engine.started[i] = perf_counter()
    engine.attempts[i] = 1
    engine.statuses[i] = _RUNNING
    if engine.observed(i):
        engine._notify(i, _RUNNING)
    fn = task.fn
    assert type(fn) is Subflow
    open_child(engine, i, fn.source)


def _open_gates(engine: Engine, limiters: set[Limiter]) -> None:
    """Give a run whose own tasks had no ``limits=`` the gates its child's tasks need (every
    driver looks at ``engine.gates`` as it goes, and a release wakes it through the engine's
    wake-up, as for gates made when the run started)."""
    from ._gates import Gates

    gates = engine.gates = Gates(limiters, lambda: engine.stopping)
    gates.open(engine._wake)


def open_child(engine: Engine, opener: int, source: Nestable) -> None:
    """Run ``source`` as a child of task ``opener`` (running): its tasks join the run.

    A child that cannot be opened (it would run inside itself, a DAG that does not compile, a
    nested name that is taken, a store that cannot be read) fails ``opener`` for good.
    """
    try:
        workflow = source.to_workflow()
        lineage = _check_lineage(engine, opener, workflow)
        _check_unmapped(engine, opener, workflow)
    except BaseException as error:  # a DAG that does not compile, a cycle, mapped tasks
        engine.fail_opener(opener, error)
        return
    nest = engine.nest
    if nest is None:
        nest = engine.nest = _start_nesting(engine)
    names = engine.run._names
    assert isinstance(names, list)  # the run's own copy (see _start_nesting)
    prefix = names[opener] + "/"
    run_id = f"{engine.run.run_id}/{names[opener]}"
    child = Child(opener, engine.n, workflow, lineage, run_id)
    m = child.count
    nested = [prefix + name for name in workflow._names[:m]]
    index = engine.run._index
    assert isinstance(index, dict)
    taken = next((name for name in nested if name in index), None)
    if taken is not None:
        engine.fail_opener(
            opener,
            ConfigurationError(
                f"task {names[opener]!r}: its subflow's task {taken!r} has the name of a task "
                "of the run"
            ),
        )
        return
    try:
        engine.open_state(child)
    except BaseException as error:  # a store that cannot be read
        engine.fail_opener(opener, error)
        return
    base = child.base
    run = engine.run
    tasks = workflow._tasks[:m]
    engine.tasks.extend(tasks)
    engine.deps.extend([tuple([base + d for d in deps]) for deps in workflow._deps[:m]])
    engine.specs.extend(workflow._specs[:m])
    successors = workflow._successors()
    engine.children.extend(
        [(*[base + c for c in kids if c < m], opener) for kids in successors[:m]]
    )
    engine.pending.extend(map(len, workflow._deps[:m]))
    engine.pending[opener] = m
    run._results.extend([None] * m)
    run._statuses.extend([_PENDING] * m)
    run._attempts.extend([0] * m)
    run._started.extend([0.0] * m)
    run._finished.extend([0.0] * m)
    names.extend(nested)
    for k, name in enumerate(nested):
        index[name] = base + k
    nest.opener_of.extend([opener] * m)
    nest.by_opener[opener] = child
    nest.opened.append(opener)
    engine.specs[opener] = NESTED  # when it is ready again, step() joins it
    engine.n = base + m
    if engine.gates is None:  # the run's own tasks had no limits: the child's bring them
        limited = {limiter for task in tasks if task.limits for limiter in task.limits}
        if limited:
            _open_gates(engine, limited)
    _echo_openers(engine, opener)
    for k, task in enumerate(tasks):
        object.__setattr__(task, "_latest", (run, base + k))
    engine.ready.extend([base + s for s in workflow._sources if s < m])
    if not m:
        _join(engine, opener, child)


def _check_lineage(engine: Engine, opener: int, workflow: Workflow) -> tuple[Workflow, ...]:
    lineage = _lineage(engine, opener) if engine.nest is not None else (engine.source,)
    for k, outer in enumerate(lineage):
        if outer is workflow:
            raise SubflowCycleError([w.name for w in (*lineage[k:], workflow)])
    if len(lineage) > MAX_DEPTH:
        # A builder on another process returns a *copy* of a workflow that encloses it: no
        # identity to compare, and every level opens the next. Past any sane depth, name the
        # innermost repeat of a name as the cycle.
        names = [w.name for w in (*lineage, workflow)]
        last = len(names) - 1
        first = max((k for k in range(last) if names[k] == names[last]), default=0)
        raise SubflowCycleError(names[first:])
    return (*lineage, workflow)


def _check_unmapped(engine: Engine, opener: int, workflow: Workflow) -> None:
    """Refuse what this release cannot run as a child run: mapped tasks on either side (their
    elements and a child's tasks would share the run's slots past its own tasks)."""
    names = engine.run._names
    if workflow._mapped:
        mapped = workflow._names[min(workflow._mapped)]
        raise ConfigurationError(
            f"task {names[opener]!r}: its subflow {workflow.name!r} has a mapped task "
            f"({mapped!r}); a subflow cannot have mapped tasks yet"
        )
    if engine.source._mapped:
        mapped = names[min(engine.source._mapped)]
        raise ConfigurationError(
            f"task {names[opener]!r}: a subflow cannot run in a workflow with a mapped task "
            f"({mapped!r}) yet"
        )


def _start_nesting(engine: Engine) -> Nesting:
    """Give the run copies of what it is about to extend that were still the workflow's."""
    run = engine.run
    own = run.own_tasks
    # The engine's dependants are tuples of its own: a task added to the workflow during the
    # run never reaches them, so positions past the run's own tasks are child tasks only.
    run._names = list(run._names[:own])
    run._index = {name: i for i, name in enumerate(run._names)}
    # Until now the run read these three lists of the workflow itself (see Engine.__init__);
    # nothing that reads past the own tasks holds them, so the engine can swap in its own.
    engine.deps = engine.deps[:own]
    engine.specs = engine.specs[:own]
    engine.children = engine.children[:own]
    return Nesting(engine.source)


def settled(engine: Engine, i: int, status: TaskStatus) -> None:
    """Child task ``i`` ended ``status`` without releasing its dependants: count it for its
    opener (a completed or skipped task counts through its edge to the opener)."""
    if status is _COMPLETED or status is _SKIPPED:
        return
    nest = engine.nest
    assert nest is not None
    opener = nest.opener_of[i - engine.run.own_tasks]
    left = engine.pending[opener] - 1
    engine.pending[opener] = left
    if not left and engine.statuses[opener] is _RUNNING:
        engine.ready.append(opener)


def _join(engine: Engine, opener: int, child: Child) -> None:
    """Every task of ``child`` is settled: settle its opener."""
    base, end = child.base, child.base + child.count
    statuses = engine.statuses
    if child.failures:
        engine.fail_opener(opener, WorkflowFailedError(child.workflow.name, child.failures))
        return
    if any(statuses[j] is _CANCELLED for j in range(base, end)):
        engine._settle(opener, _CANCELLED)
        return
    names = child.workflow._names
    values = fetched(tuple(engine.results[base:end]))  # a subflow's result is read here
    result = {names[k]: values[k] for k in range(child.count)}
    engine.complete(opener, result)


def close(engine: Engine) -> None:
    """The run is ending: settle every opener still running, innermost first."""
    nest = engine.nest
    if nest is None:
        return
    statuses = engine.statuses
    for opener in reversed(nest.opened):
        if statuses[opener].is_terminal:
            continue
        child = nest.by_opener[opener]
        for j in range(child.base, child.base + child.count):
            if not statuses[j].is_terminal:
                engine._settle(j, _CANCELLED)
        if child.failures:
            engine.fail_opener(opener, WorkflowFailedError(child.workflow.name, child.failures))
        else:
            engine._settle(opener, _CANCELLED)


class OpenerEcho:
    """A run's internal monitor: a child task's status changes reach the ``on_status_change``
    of every task that encloses it (added once, when the first child opens under such a
    task, so runs without one pay nothing)."""

    __slots__ = ("engine",)

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def __repr__(self) -> str:
        return "<subflow status echo>"

    def on_run_start(self, run: object) -> None:
        return

    def on_run_end(self, run: object) -> None:
        return

    def on_status_change(self, run: object, task_name: str, status: TaskStatus) -> None:
        engine = self.engine
        nest = engine.nest
        own = engine.run.own_tasks
        j = engine.run._index.get(task_name, -1)
        if nest is None or j < own:
            return
        while j >= own:
            j = nest.opener_of[j - own]
            callback = engine.tasks[j].on_status_change
            if callback is not None and (j, "on_status_change") not in engine._muted:
                engine._call_task_callback(j, "on_status_change", callback, task_name, status)


def _echo_openers(engine: Engine, opener: int) -> None:
    """Add the :class:`OpenerEcho` if ``opener`` or a task enclosing it has a callback."""
    nest = engine.nest
    assert nest is not None
    if any(isinstance(m, OpenerEcho) for m in engine.monitors):
        return
    own = engine.run.own_tasks
    j = opener
    while True:
        if engine.tasks[j].on_status_change is not None:
            engine.monitors.append(OpenerEcho(engine))
            return
        if j < own:
            return
        j = nest.opener_of[j - own]
