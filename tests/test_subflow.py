"""Subflows: a Workflow, DAG or Flow as a task of another, and workflows built by a task at run
time, run as child runs on the parent's executor (see ``_nesting``); every behavioural test
runs on every executor (conftest: ``executor``)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowweaver import (
    DAG,
    AsyncExecutor,
    ConfigurationError,
    CycleError,
    Flow,
    MemoryStore,
    Monitor,
    PoolExecutor,
    SubflowCycleError,
    Task,
    TaskFailedError,
    TaskStatus,
    ThreadedExecutor,
    Workflow,
    WorkflowFailedError,
    WorkflowRun,
    task,
)

from .conftest import HAVE_DASK, WAIT, Recorder, is_sequential
from .conftest import execute as run
from .subflow_tasks import squares_workflow

S = TaskStatus


def child_workflow(name: str = "child", scale: int = 1) -> Workflow:
    """one -> two, and an independent three."""
    wf = Workflow(name)
    wf.add_task(Task(name="one", fn=lambda: 1 * scale))
    wf.add_task(Task(name="two", fn=lambda one: one + 1), depends_on=["one"])
    wf.add_task(Task(name="three", fn=lambda: 3 * scale))
    return wf


def files_workflow(calls: Recorder | None = None, fail: str = "") -> Workflow:
    """list_files -> load (builds one parse task per file) -> total: the issue's story. The
    file named ``fail`` cannot be parsed."""
    faults = {fail}  # mutable: only its type is part of the tasks' fingerprints (resume)

    def parse(path: str) -> int:
        if calls is not None:
            calls(path)
        if path in faults:
            raise ValueError(f"cannot parse {path}")
        return len(path)

    def load(list_files: list[str]) -> Workflow:
        child = Workflow("parse_files")
        for k, path in enumerate(list_files):
            child.add_task(Task(name=f"parse_file_{k}", fn=lambda path=path: parse(path)))
        return child

    wf = Workflow("files")
    wf.add_task(Task(name="list_files", fn=lambda: ["a.csv", "bb.csv", "ccc.csv"]))
    wf.add_task(Task(name="load", fn=load), depends_on=["list_files"])
    wf.add_task(Task(name="total", fn=lambda load: sum(load.values())), depends_on=["load"])
    return wf


# -- static subflows: each authoring style -------------------------------------------------


def test_a_workflow_is_a_task_of_another(executor: Any) -> None:
    parent = Workflow("parent")
    parent.add_task(Task(name="start", fn=lambda: 10))
    parent.add_task(child_workflow(), depends_on=["start"])
    parent.add_task(Task(name="end", fn=lambda child: child["two"] * 100), depends_on=["child"])
    result = run(executor, parent)
    assert result.results == {"start": 10, "child": {"one": 1, "two": 2, "three": 3}, "end": 200}
    assert result.statuses == {
        "start": S.COMPLETED, "child": S.COMPLETED, "end": S.COMPLETED,
        "child/one": S.COMPLETED, "child/two": S.COMPLETED, "child/three": S.COMPLETED,
    }  # fmt: skip
    assert result.result("child/two") == 2
    assert result.ok and result.stats()["completed"] == 6


def test_decorator_style_links_a_dag_between_tasks() -> None:
    @task
    def fetch() -> int:
        return 2

    @task
    def two() -> int:
        return 2

    @task
    def triple(two: int) -> int:
        return two * 3

    inner = DAG("inner", edges=[(two, triple)])  # explicit: >> below goes to the outer DAG

    @task
    def report(inner: dict[str, int]) -> str:
        return f"{inner['triple']}"

    with DAG("outer") as outer:
        fetch >> inner >> report
    assert outer.run("sequential") == {
        "fetch": 2, "inner": {"two": 2, "triple": 6}, "report": "6",
    }  # fmt: skip


def test_flow_add_takes_a_flow_and_a_list_of_workflows_links_each() -> None:
    @task
    def left() -> str:
        return "l"

    @task
    def right() -> str:
        return "r"

    inner = Flow("inner").add(left)
    other = child_workflow("other")

    @task
    def join(inner: dict[str, str], other: dict[str, int]) -> str:
        return inner["left"] + str(other["one"])

    outer = Flow("outer").add(right).branch(inner, other).merge(join)
    assert outer.run("thread")["join"] == "l1"
    assert outer.last_run is not None
    assert outer.last_run.status("inner/left") is S.COMPLETED

    first = Task(name="first", fn=lambda: 0)
    with DAG("lists") as dag:
        first >> [inner, other]
    assert set(dag.run("sequential")) == {"first", "inner", "other"}


def test_nested_three_deep_names_show_the_nesting(executor: Any) -> None:
    leaf = child_workflow("leaf")
    middle = Workflow("middle")
    middle.add_task(leaf)
    outer = Workflow("outer")
    outer.add_task(middle)
    result = run(executor, outer)
    assert result.result("middle") == {"leaf": {"one": 1, "two": 2, "three": 3}}
    assert result.status("middle/leaf/two") is S.COMPLETED
    assert list(result.statuses) == [
        "middle", "middle/leaf", "middle/leaf/one", "middle/leaf/two", "middle/leaf/three",
    ]  # fmt: skip


def test_an_empty_subflow_completes_with_no_results(executor: Any) -> None:
    parent = Workflow("parent")
    parent.add_task(Workflow("empty"))
    parent.add_task(Task(name="after", fn=lambda empty: empty), depends_on=["empty"])
    assert run(executor, parent).results == {"empty": {}, "after": {}}


# -- dynamic subflows: a task returns the workflow it built ---------------------------------


def test_a_task_builds_a_workflow_from_its_inputs_and_it_runs(executor: Any) -> None:
    calls = Recorder()
    result = run(executor, files_workflow(calls))
    assert result.result("load") == {"parse_file_0": 5, "parse_file_1": 6, "parse_file_2": 7}
    assert result.result("total") == 18
    assert result.status("load/parse_file_1") is S.COMPLETED
    assert sorted(map(str, calls.items)) == ["a.csv", "bb.csv", "ccc.csv"]
    assert result.attempts("load") == 1  # the builder ran once: the child is not a retry


def test_a_builder_may_return_a_dag(executor: Any) -> None:
    def build() -> DAG:
        return DAG("built", tasks=[Task(name="x", fn=lambda: "x")])

    parent = Workflow("parent")
    parent.add_task(Task(name="build", fn=build))
    assert run(executor, parent).result("build") == {"x": "x"}


# -- where children run: no worker waits for a child ---------------------------------------


def barrier_nest(parties: int, depth: int) -> Workflow:
    """``depth`` levels of subflows; the innermost has ``parties`` tasks that each wait for the
    others at a barrier: they only pass if they all run at once."""
    barrier = threading.Barrier(parties, timeout=WAIT)
    inner = Workflow("level0")
    for k in range(parties):
        inner.add_task(Task(name=f"meet{k}", fn=lambda k=k: (barrier.wait(), k)[1]))
    for level in range(1, depth):
        outer = Workflow(f"level{level}")
        outer.add_task(Task(name="build", fn=lambda inner=inner: inner))  # dynamic
        outer.add_task(inner.as_task("static"))
        inner = outer
    top = Workflow("top")
    top.add_task(inner)
    return top


@pytest.mark.parametrize(
    "make", [lambda: ThreadedExecutor(max_workers=2), lambda: PoolExecutor(_pool(2), 2)]
)
def test_nested_children_on_two_workers_do_not_deadlock(make: Any) -> None:
    # The classic nested-pool deadlock: were a task to hold a worker while its child runs, the
    # two tasks at the barrier could never meet on a pool of two workers.
    with make() as executor:
        wf = barrier_nest(parties=2, depth=3)
        result = run(executor, wf)
    assert result.ok
    assert result.result("level2/static/static") == {"meet0": 0, "meet1": 1}
    assert result.result("level2/build/build") == {"meet0": 0, "meet1": 1}


def _pool(workers: int) -> Any:
    import concurrent.futures as cf

    return cf.ThreadPoolExecutor(workers)


def test_children_on_the_async_executor_never_block_the_loop() -> None:
    async def meet(event: asyncio.Event, other: asyncio.Event) -> str:
        event.set()
        await asyncio.wait_for(other.wait(), WAIT)  # the sibling must run meanwhile
        return "met"

    async def main() -> WorkflowRun:
        first, second = asyncio.Event(), asyncio.Event()

        def build() -> Workflow:
            child = Workflow("child")
            child.add_task(Task(name="a", fn=lambda: meet(first, second)))
            child.add_task(Task(name="b", fn=lambda: meet(second, first)))
            return child

        parent = Workflow("parent")
        parent.add_task(Task(name="build", fn=build))
        return await AsyncExecutor(max_workers=2).execute_async(parent)

    result = asyncio.run(main())
    assert result.result("build") == {"a": "met", "b": "met"}


# -- what watches a run sees the children ---------------------------------------------------


class Watch(Monitor):
    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    def on_status_change(self, run: WorkflowRun, task_name: str, status: TaskStatus) -> None:
        self.events.append((task_name, status.value))


def test_monitors_and_the_openers_callback_hear_child_tasks_by_nested_name(
    executor: Any,
) -> None:
    heard = Recorder()
    child = Workflow("child")
    child.add_task(Task(name="leaf", fn=lambda: 1, on_status_change=heard))
    parent = Workflow("parent")
    parent.add_task(child.as_task("sub", on_status_change=heard))
    watch = Watch()
    run(executor, parent, monitors=[watch])
    assert watch.events == [
        ("sub", "running"), ("sub/leaf", "running"), ("sub/leaf", "completed"),
        ("sub", "completed"),
    ]  # fmt: skip
    # The leaf's own callback and its opener's both hear it, by its nested name.
    assert [e for e in heard.items if e[0] == "sub/leaf"] == [  # type: ignore[index]
        ("sub/leaf", S.RUNNING), ("sub/leaf", S.RUNNING),
        ("sub/leaf", S.COMPLETED), ("sub/leaf", S.COMPLETED),
    ]  # fmt: skip
    assert heard.items[-1] == ("sub", S.COMPLETED)


def test_progress_counts_child_tasks(capsys: pytest.CaptureFixture[str]) -> None:
    files_workflow().execute(progress=True)
    assert "6/6 100%" in capsys.readouterr().err  # 3 own tasks and 3 children


# -- failures ------------------------------------------------------------------------------


def test_a_child_failure_fails_its_opener_with_the_child_failures_attached(
    executor: Any,
) -> None:
    calls = Recorder()
    with pytest.raises(WorkflowFailedError) as info:
        run(executor, files_workflow(calls, fail="bb.csv"), failure_policy="continue")
    (failure,) = info.value.failures  # listed once, at the outermost level
    assert failure.task_name == "load"
    assert str(failure) == (
        "task 'load' failed after 1 attempt: WorkflowFailedError: workflow 'parse_files' "
        "failed: 1 task failed ('load/parse_file_1') (1 sub-exception)"
    )
    child_failures = failure.__cause__
    assert isinstance(child_failures, WorkflowFailedError)
    (inner,) = child_failures.failures
    assert inner.task_name == "load/parse_file_1"
    assert isinstance(inner.__cause__, ValueError)
    assert sorted(map(str, calls.items)) == [
        "a.csv",
        "bb.csv",
        "ccc.csv",
    ]  # "continue": siblings ran


def test_a_child_failure_settles_everything(executor: Any) -> None:
    wf = files_workflow(fail="a.csv")
    with pytest.raises(WorkflowFailedError):
        run(executor, wf)
    latest = wf.last_run
    assert latest is not None
    statuses = latest.statuses
    assert statuses["load"] is S.FAILED
    assert statuses["load/parse_file_0"] is S.FAILED
    assert statuses["total"] is S.UPSTREAM_FAILED
    assert all(status.is_terminal for status in statuses.values())
    # Fail-fast: after the first failure nothing new starts (inline, the rest never began).
    if is_sequential(executor):
        assert statuses["load/parse_file_2"] is S.CANCELLED


def test_a_failing_static_child_under_continue_lets_independent_tasks_run(executor: Any) -> None:
    child = Workflow("child")
    child.add_task(Task(name="bad", fn=lambda: 1 / 0))
    child.add_task(Task(name="after_bad", fn=lambda bad: bad), depends_on=["bad"])
    child.add_task(Task(name="fine", fn=lambda: "ok"))
    parent = Workflow("parent")
    parent.add_task(child)
    parent.add_task(Task(name="elsewhere", fn=lambda: "ran"))
    with pytest.raises(WorkflowFailedError) as info:
        run(executor, parent, failure_policy="continue")
    assert [f.task_name for f in info.value.failures] == ["child"]
    latest = parent.last_run
    assert latest is not None
    assert latest.statuses == {
        "child": S.FAILED, "elsewhere": S.COMPLETED, "child/bad": S.FAILED,
        "child/after_bad": S.UPSTREAM_FAILED, "child/fine": S.COMPLETED,
    }  # fmt: skip


# -- bad input -----------------------------------------------------------------------------


def test_a_workflow_cannot_contain_itself() -> None:
    wf = Workflow("loop")
    with pytest.raises(SubflowCycleError) as info:
        wf.add_task(wf)
    assert (
        str(info.value)
        == "subflow cycle: workflow 'loop' would run inside itself: 'loop' -> 'loop'"
    )
    assert info.value.cycle == ("loop", "loop")
    assert len(wf) == 0  # refused: nothing was added


def test_a_cycle_through_two_levels_is_refused_and_named() -> None:
    outer, inner = Workflow("outer"), Workflow("inner")
    outer.add_task(inner)
    with pytest.raises(SubflowCycleError) as info:
        inner.add_task(outer)
    assert info.value.cycle == ("inner", "outer", "inner")
    assert isinstance(info.value, CycleError) and isinstance(info.value, ValueError)


def test_a_dag_that_would_contain_itself_is_refused_before_anything_runs() -> None:
    ran = Recorder()
    first = Task(name="first", fn=lambda: ran("first"))
    with DAG("selfish") as dag:
        first >> Workflow("placeholder")
    dag.add(dag)
    with pytest.raises(SubflowCycleError) as info:
        dag.run("sequential")
    assert info.value.cycle == ("selfish", "selfish")
    assert ran.items == []


def test_a_builder_returning_its_own_parent_fails_its_task_and_starts_nothing_more(
    executor: Any,
) -> None:
    holder: list[Workflow] = []
    parent = Workflow("parent")
    parent.add_task(Task(name="build", fn=lambda: holder[0]))
    parent.add_task(Task(name="after", fn=lambda build: build), depends_on=["build"])
    holder.append(parent)
    with pytest.raises(WorkflowFailedError) as info:
        run(executor, parent)
    (failure,) = info.value.failures
    # On Dask the builder returns a copy of its parent (it crossed a pickle): no identity to
    # see, so the cycle shows at the nesting depth limit, as the innermost cause.
    cause: BaseException | None = failure
    while isinstance(cause, TaskFailedError | WorkflowFailedError):
        cause = cause.failures[0] if isinstance(cause, WorkflowFailedError) else cause.__cause__
    assert isinstance(cause, SubflowCycleError)
    assert str(cause) == (
        "subflow cycle: workflow 'parent' would run inside itself: 'parent' -> 'parent'"
    )
    latest = parent.last_run
    assert latest is not None
    assert latest.status("build") is S.FAILED and latest.status("after") is S.UPSTREAM_FAILED
    assert all(status.is_terminal for status in latest.statuses.values())


def test_a_builder_returning_a_dag_with_a_cycle_fails_its_task(executor: Any) -> None:
    a, b = Task(name="a", fn=lambda b: b), Task(name="b", fn=lambda a: a)

    def build() -> DAG:
        return DAG("cyclic", edges=[(a, b), (b, a)])

    parent = Workflow("parent")
    parent.add_task(Task(name="build", fn=build, retries=2))
    with pytest.raises(WorkflowFailedError) as info:
        run(executor, parent)
    (failure,) = info.value.failures
    assert type(failure.__cause__) is CycleError
    assert failure.attempts == 1  # opening the child is not retried: it would fail again


def test_a_nested_name_taken_by_a_task_of_the_run_fails_the_opener() -> None:
    parent = Workflow("parent")
    parent.add_task(child_workflow("sub"))
    parent.add_task(Task(name="sub/one", fn=lambda: "mine"))
    with pytest.raises(WorkflowFailedError) as info:
        parent.execute()
    (failure,) = info.value.failures
    assert isinstance(failure.__cause__, ConfigurationError)
    assert str(failure.__cause__) == (
        "task 'sub': its subflow's task 'sub/one' has the name of a task of the run"
    )


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (3, "add_task() expects a Task or a workflow, got 3"),
        (DAG, f"add_task() expects a Task or a workflow, got {DAG!r}"),
    ],
)
def test_add_task_refuses_what_is_neither_a_task_nor_a_workflow(bad: object, message: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        Workflow().add_task(bad)  # type: ignore[arg-type]
    assert str(info.value) == message


def test_as_task_checks_its_options() -> None:
    with pytest.raises(ConfigurationError) as info:
        child_workflow().as_task("", when=None)
    assert str(info.value) == "task name must be a non-empty str, got ''"
    with pytest.raises(ConfigurationError) as info:
        child_workflow().as_task(when=3)  # type: ignore[arg-type]
    assert str(info.value) == "task 'child': when must be callable, got 3"


# -- durable: a child resumes with its parent ----------------------------------------------


def test_a_child_resumes_with_its_parent_and_committed_children_do_not_rerun(
    executor: Any,
) -> None:
    store = MemoryStore()
    calls = Recorder()
    with pytest.raises(WorkflowFailedError):
        run(executor, files_workflow(calls, fail="bb.csv"), store=store, run_id="nightly",
            failure_policy="continue")  # fmt: skip
    assert sorted(map(str, calls.items)) == ["a.csv", "bb.csv", "ccc.csv"]
    calls.items.clear()
    result = run(executor, files_workflow(calls), store=store, run_id="nightly")
    assert calls.items == ["bb.csv"]  # only the child task that had failed runs again
    assert sorted(result.restored) == ["list_files", "load/parse_file_0", "load/parse_file_2"]
    assert result.result("total") == 18
    # The child's results live under a run id derived from the parent's.
    from flowweaver._store import run_namespace

    assert set(store.entries(run_namespace("parse_files", "nightly/load"))) == {
        "parse_file_0", "parse_file_1", "parse_file_2",
    }  # fmt: skip


def test_task_failed_error_is_what_a_child_failure_is_wrapped_in() -> None:
    # The failure of an opener is an ordinary TaskFailedError: `except RuntimeError` works.
    wf = files_workflow(fail="a.csv")
    with pytest.raises(RuntimeError) as info:
        wf.execute()
    assert isinstance(info.value, WorkflowFailedError)
    assert all(isinstance(f, TaskFailedError) for f in info.value.failures)


def test_children_of_builders_on_worker_processes_are_dispatched_by_the_engine(
    any_executor: Any,
) -> None:
    # On a process pool the builder runs in a worker and its workflow comes back to the engine,
    # which sends each child task to the pool like any other call.
    result = run(any_executor, squares_workflow())
    assert result.results == {
        "numbers": [1, 2, 3],
        "build_squares": {"square_1": 1, "square_2": 4, "square_3": 9},
        "total": 14,
        "static": {"ten": 10},
    }


def test_the_cli_summary_lists_child_tasks_by_nested_name(tmp_path: Path) -> None:
    (tmp_path / "nested.py").write_text(
        "from flowweaver import Task, Workflow\n"
        "child = Workflow('child')\n"
        "child.add_task(Task(name='leaf', fn=lambda: 1))\n"
        "wf = Workflow('nested')\n"
        "wf.add_task(child)\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "flowweaver", "run", "nested.py:wf", "--executor", "thread"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = [line.split()[:3] for line in done.stdout.splitlines()[1:-1]]
    assert rows == [["child", "completed", "1"], ["child/leaf", "completed", "1"]]
    assert done.stdout.splitlines()[-1].startswith("'nested': 2 completed in ")


# -- properties: every task of every child ends, and an opener mirrors its child ------------


@st.composite
def nests(draw: st.DrawFn) -> tuple[Workflow, set[str], Recorder]:
    """A random tree of subflows (static and built), some leaves failing on some attempts."""
    calls = Recorder()
    failing: set[str] = set()
    counter = iter(range(10_000))

    def leaf(name: str, fails: int, retries: int) -> Task[..., Any]:
        attempts = [0]

        def fn() -> str:
            calls(name)
            attempts[0] += 1
            if attempts[0] <= fails:
                raise ValueError(name)
            return name

        if fails > retries:
            failing.add(name)
        return Task(name=name, fn=fn, retries=retries, delay=0.0)

    def level(depth: int) -> Workflow:
        wf = Workflow(f"w{next(counter)}")
        for _ in range(draw(st.integers(1, 3))):
            kind = draw(st.sampled_from(["leaf", "static", "built"] if depth < 3 else ["leaf"]))
            name = f"n{next(counter)}"
            if kind == "leaf":
                retries = draw(st.integers(0, 2))
                wf.add_task(leaf(name, draw(st.integers(0, 3)), retries))
            elif kind == "static":
                wf.add_task(level(depth + 1).as_task(name))
            else:
                inner = level(depth + 1)
                wf.add_task(Task(name=name, fn=lambda inner=inner: inner))
        return wf

    return level(0), failing, calls


@pytest.mark.parametrize("make", [lambda: ThreadedExecutor(max_workers=2), AsyncExecutor])
@settings(max_examples=25, deadline=None)
@given(case=nests())
def test_every_child_task_ends_and_each_opener_mirrors_its_child(
    make: Any, case: tuple[Workflow, set[str], Recorder]
) -> None:
    wf, failing, calls = case
    result: WorkflowRun | None
    try:
        result = run(make(), wf, failure_policy="continue")
    except WorkflowFailedError:
        result = wf.last_run
    assert result is not None
    statuses = result.statuses
    assert all(status.is_terminal for status in statuses.values())
    failed_leaves = {
        n for n, s in statuses.items() if s is S.FAILED and n.split("/")[-1] in failing
    }
    assert {n.split("/")[-1] for n in failed_leaves} == failing
    for name, status in statuses.items():
        kids = [n for n in statuses if n.startswith(name + "/") and "/" not in n[len(name) + 1 :]]
        if kids:  # an opener: failed exactly when one of its children failed
            assert (status is S.FAILED) == any(statuses[k] is S.FAILED for k in kids), name
    # Each leaf ran at most retries + 1 times (the most a draw asks for is 3 attempts).
    assert all(calls.count(name) <= 3 for name in set(map(str, calls.items)))


def test_mapped_tasks_and_subflows_do_not_mix_yet_and_say_so() -> None:
    child = Workflow("child")
    child.add_task(Task(name="nums", fn=lambda: [1, 2]))
    child.add_task(Task(name="sq", fn=lambda x: x * x, map_over="nums"), depends_on=["nums"])
    parent = Workflow("parent")
    parent.add_task(child)
    with pytest.raises(WorkflowFailedError) as info:
        parent.execute()
    assert str(info.value.failures[0].__cause__) == (
        "task 'child': its subflow 'child' has a mapped task ('sq'); a subflow cannot have "
        "mapped tasks yet"
    )
    mapping = Workflow("mapping")
    mapping.add_task(Task(name="nums", fn=lambda: [1, 2]))
    mapping.add_task(Task(name="sq", fn=lambda x: x * x, map_over="nums"), depends_on=["nums"])
    mapping.add_task(child_workflow())
    with pytest.raises(WorkflowFailedError) as info:
        mapping.execute(failure_policy="continue")
    assert str(info.value.failures[0].__cause__) == (
        "task 'child': a subflow cannot run in a workflow with a mapped task ('sq') yet"
    )
    latest = mapping.last_run
    assert latest is not None and latest.result("sq") == [1, 4]


@pytest.mark.skipif(not HAVE_DASK, reason="needs the dask extra")
def test_a_builder_on_a_cluster_of_worker_processes(request: pytest.FixtureRequest) -> None:
    # The builder runs on a Dask worker process; its workflow (and only it) comes back to the
    # engine, which sends the child's tasks to the cluster.
    executor = request.getfixturevalue("dask_processes")
    assert run(executor, squares_workflow()).result("total") == 14
