""">>, << and DAG: what the operators return, the discovery rule, and running on every executor."""

from __future__ import annotations

import asyncio
import contextvars
import importlib.util
import itertools
import sys
import threading
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowweaver import (
    DAG,
    BindingError,
    ConfigurationError,
    CycleError,
    DefinitionError,
    SequentialExecutor,
    Task,
    TaskNameCollisionError,
    TaskStatus,
    WorkflowFailedError,
    _scope,
    task,
)

from . import authoring_tasks as at

if TYPE_CHECKING:
    from pathlib import Path


def t(name: str) -> Task[..., Any]:
    return Task(name=name, fn=lambda *inputs: (name, *inputs))


def edges(dag: DAG) -> dict[str, list[str]]:
    workflow = dag.to_workflow()
    return {task.name: workflow.get_dependencies(task.name) for task in workflow}


# -- the operators ------------------------------------------------------------------------------


def test_each_operator_returns_what_lets_the_chain_continue() -> None:
    a, b, c, d = t("a"), t("b"), t("c"), t("d")
    assert (a >> b) is b
    branches = [b, c]
    assert (a >> branches) is branches
    assert (branches >> d) is d
    assert (d << c) is c
    assert (branches << a) is a
    recorded = [(u.name, v.name) for u, v in _scope.recorded()]
    assert recorded == [
        ("a", "b"), ("a", "b"), ("a", "c"), ("b", "d"), ("c", "d"), ("c", "d"), ("a", "b"),
        ("a", "c"),
    ]  # fmt: skip
    assert edges(DAG("ops")) == {"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"]}


def test_chains_fan_out_and_fan_in() -> None:
    a, b, c, d, e = (t(n) for n in "abcde")
    a >> [b, c] >> d >> e
    e << [a]
    assert edges(DAG("chain")) == {
        "a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"], "e": ["d", "a"],
    }  # fmt: skip


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        (lambda a: a >> 3, ">> connects tasks or workflows, or non-empty lists of them, got 3"),
        (lambda a: a >> [], ">> connects tasks or workflows, or non-empty lists of them, got []"),
        (
            lambda a: a << [a, "b"],
            "<< connects tasks or workflows, or non-empty lists of them, got [%s, 'b']",
        ),
        (lambda a: "b" >> a, ">> connects tasks or workflows, or non-empty lists of them, got 'b'"),
        (lambda a: {a} >> a, None),  # a set has no order: Python refuses it (TypeError)
    ],
)
def test_operators_refuse_anything_but_tasks_and_lists(
    expression: Any, message: str | None
) -> None:
    a = t("a")
    with pytest.raises(TypeError) as info:
        expression(a)
    if message is not None:
        assert isinstance(info.value, ConfigurationError)
        assert str(info.value) == message.replace("%s", repr(a))
    assert _scope.recorded() == []  # nothing half-recorded


# -- discovery: which tasks a DAG gets -------------------------------------------------------


def test_leak_pipeline_a_then_pipeline_b(any_executor: Any, tmp_path: Path) -> None:
    log = tmp_path / "calls.log"
    a_source = Task(name="a_source", fn=_bound(at.source, str(log), "a_source"))
    b_source = Task(name="b_source", fn=_bound(at.source, str(log), "b_source"))

    # Pipeline A, run.
    a_source >> at.a_double >> at.shared
    assert DAG("A").run(executor=any_executor) == {
        "a_source": (str(log), 1), "a_double": (str(log), 2), "shared": (str(log), 2),
    }  # fmt: skip
    assert log.read_text().split() == ["a_source", "a_double", "shared"]
    log.unlink()

    # Pipeline B reuses `shared`, which must not bring A's edge a_double >> shared along.
    b_source >> at.b_increment >> at.shared
    results = DAG("B").run(executor=any_executor)
    assert results == {
        "b_source": (str(log), 1), "b_increment": (str(log), 11), "shared": (str(log), 11),
    }  # fmt: skip
    assert log.read_text().split() == ["b_source", "b_increment", "shared"]  # A did not run


def _bound(fn: Any, *args: object) -> Any:
    import functools

    return functools.partial(fn, *args)


def test_a_dag_takes_what_was_declared_before_it_and_no_more() -> None:
    a, b, c, d = t("a"), t("b"), t("c"), t("d")
    a >> b
    first = DAG("first")
    c >> d
    second = DAG("second")
    assert (list(first.tasks), list(second.tasks)) == (["a", "b"], ["c", "d"])
    assert _scope.recorded() == []
    third = DAG("third")
    with pytest.raises(DefinitionError) as info:
        third.run()
    assert str(info.value) == (
        "dag 'third' has no tasks: connect tasks with >> before DAG('third') is created, or "
        "inside 'with DAG('third') as dag:', or pass tasks=[...]"
    )


def test_a_with_block_has_a_scope_of_its_own() -> None:
    a, b, c, d, e, f = (t(n) for n in "abcdef")
    a >> b  # recorded outside: neither seen nor taken by the block
    with DAG("inner") as inner:
        c >> d
        with DAG("nested") as nested:
            e >> f
        d >> e
    assert edges(inner) == {"c": [], "d": ["c"], "e": ["d"]}
    assert edges(nested) == {"e": [], "f": ["e"]}
    assert edges(DAG("outer")) == {"a": [], "b": ["a"]}


def test_a_failing_with_block_keeps_nothing() -> None:
    a, b, c, d = (t(n) for n in "abcd")
    a >> b
    dag = DAG("x", tasks=[c])

    def define() -> None:
        with dag:
            c >> d
            raise KeyError("oops")

    with pytest.raises(KeyError):
        define()
    assert list(dag.tasks) == ["c"]
    assert [(u.name, v.name) for u, v in _scope.recorded()] == [("a", "b")]


def test_the_explicit_form_uses_no_implicit_state() -> None:
    a, b, c, lone = t("a"), t("b"), t("c"), t("lone")
    a >> c  # left for a later DAG(name)
    dag = DAG("explicit", tasks=[lone], edges=[(a, b), ([a, b], c)])
    assert edges(dag) == {"a": [], "lone": [], "b": ["a"], "c": ["a", "b"]}
    built = DAG("built", tasks=[]).add(lone).connect(a, [b, c])
    assert edges(built) == {"a": [], "lone": [], "b": ["a"], "c": ["a"]}
    assert edges(DAG("implicit")) == {"a": [], "c": ["a"]}


def test_other_threads_and_asyncio_tasks_do_not_share_the_open_graph() -> None:
    a, b, c, d = (t(n) for n in "abcd")
    a >> b
    seen: list[list[str]] = []
    thread = threading.Thread(target=lambda: seen.append(list(DAG("other thread").tasks)))
    thread.start()
    thread.join()
    assert seen == [[]]

    async def define(first: Task[..., Any], second: Task[..., Any], go: asyncio.Event,
                     wait: asyncio.Event) -> list[str]:  # fmt: skip
        first >> second
        go.set()
        await wait.wait()  # the other pipeline is defined meanwhile, in its own task
        return list(DAG("concurrent").tasks)

    async def main() -> list[list[str]]:
        one, two = asyncio.Event(), asyncio.Event()
        return list(await asyncio.gather(define(c, d, one, two), define(d, c, two, one)))

    # Each task starts from its parent's edges (a >> b) but records only into its own copy.
    assert asyncio.run(main()) == [["a", "b", "c", "d"], ["a", "b", "d", "c"]]
    assert list(DAG("main").tasks) == ["a", "b"]


# -- what a DAG refuses ------------------------------------------------------------------------


def test_two_tasks_with_one_name_are_refused_naming_both_functions() -> None:
    first = at.one
    impostor = task(name="one")(at.two.fn)
    first >> at.add
    impostor >> at.add
    dag = DAG("clash")
    message = (
        "a different task named 'one' already exists in workflow 'clash' (functions "
        "tests.authoring_tasks.one and tests.authoring_tasks.two); rename one with "
        "@task(name=...)"
    )
    with pytest.raises(TaskNameCollisionError) as info:
        dag.run()
    assert str(info.value) == message
    assert info.value.functions == ("tests.authoring_tasks.one", "tests.authoring_tasks.two")
    with pytest.raises(TaskNameCollisionError):  # still refused, never half-built
        dag.to_workflow()
    with pytest.raises(TaskNameCollisionError) as info:
        DAG("clash", tasks=[first, impostor])
    assert str(info.value) == message


def test_the_shift_that_closes_a_cycle_raises_with_the_path_and_records_nothing() -> None:
    a, b, c, d = (t(n) for n in "abcd")
    d >> a >> b >> c
    with pytest.raises(CycleError) as info:
        c >> a
    assert info.value.cycle == ("a", "c", "b", "a")  # a depends on c, c on b, b on a
    assert str(info.value) == "'a' >> 'b' >> 'c' >> 'a' would close a dependency cycle"
    with pytest.raises(CycleError) as info:
        [d, c] >> a  # one edge of a list closes it: none of them is recorded
    assert info.value.cycle == ("a", "c", "b", "a")
    with pytest.raises(CycleError) as info:
        a << c
    assert info.value.cycle == ("a", "c", "b", "a")
    with pytest.raises(CycleError) as info:
        a >> a
    assert info.value.cycle == ("a", "a")
    assert str(info.value) == "'a' >> 'a' would close a dependency cycle"
    assert [(u.name, v.name) for u, v in _scope.recorded()] == [("d", "a"), ("a", "b"), ("b", "c")]
    assert DAG("fine").run()["c"] == ("c", ("b", ("a", ("d",))))


def test_a_cycle_in_explicit_edges_is_reported_with_its_path() -> None:
    a, b, c = (t(n) for n in "abc")
    with pytest.raises(CycleError) as info:
        DAG("loop", edges=[(a, b), (b, c), (c, a)]).run()
    assert info.value.cycle == ("a", "c", "b", "a")
    assert str(info.value) == "dependency cycle: 'a' -> 'c' -> 'b' -> 'a'"


def test_a_cycle_check_sees_only_its_own_context_and_scope() -> None:
    a, b = t("a"), t("b")
    a >> b
    with DAG("inner") as dag:
        b >> a  # the edge outside the block is not this block's
    assert dag.to_workflow().get_dependencies("a") == ["b"]
    contextvars.copy_context().run(lambda: b >> t("x"))  # the copy's edges stay its own
    with pytest.raises(CycleError):
        b >> a


def test_a_function_that_cannot_take_its_inputs_is_refused_before_running() -> None:
    at.one >> at.pid  # pid() takes no parameters: fine (rule 1)
    [at.one, at.two, at.three] >> at.add  # add(x, y) cannot take three results
    with pytest.raises(BindingError) as info:
        DAG("binding").run()
    assert str(info.value) == (
        "task 'add' cannot receive its inputs: 3 upstream results but the function takes 2 "
        "parameter(s); nothing receives 'three'"
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": ""}, "dag name must be a non-empty str, got ''"),
        ({"max_workers": 0}, "dag 'd': max_workers must be an int >= 1, got 0"),
        ({"tasks": "ab"}, "tasks must be an iterable of tasks, got 'ab'"),
        ({"tasks": [1]}, "expected a Task, got 1"),
        ({"edges": [(1,)]}, "edges must be (upstream, downstream) pairs, got (1,)"),
        (
            {"edges": [(1, 2)]},
            "connect() connects tasks or workflows, or non-empty lists of them, got 1",
        ),
    ],
)
def test_bad_arguments_are_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        DAG(**{"name": "d", **kwargs})
    assert str(info.value) == message


# -- running -----------------------------------------------------------------------------------


def test_fan_in_arguments_arrive_in_declared_order(any_executor: Any) -> None:
    [at.three, at.one, at.two] >> at.ordered
    at.one >> at.ordered  # already there: not added twice, order unchanged
    assert DAG("order").run(executor=any_executor) == {
        "three": 3, "one": 1, "two": 2, "ordered": (3, 1, 2),
    }  # fmt: skip


@pytest.mark.parametrize("name", ["sequential", "thread", "async", "process"])
def test_executor_names(name: str) -> None:
    [at.one, at.two] >> at.add >> at.original_name
    dag = DAG("named", max_workers=2)
    assert dag.run(executor=name) == {"one": 1, "two": 2, "add": 3, "renamed": 30}


def test_unknown_executors_are_refused() -> None:
    dag = DAG("d", tasks=[at.one])
    with pytest.raises(ConfigurationError) as info:
        dag.run(executor="threads")
    assert str(info.value) == (
        "executor must be one of ['sequential', 'thread', 'async', 'process'] or an executor "
        "object, got 'threads'"
    )
    with pytest.raises(ConfigurationError) as info:
        dag.run(executor=object())  # type: ignore[arg-type]
    assert str(info.value).startswith("expected a flowweaver executor or a concurrent.futures")


def test_run_options_are_forwarded_and_failures_raise(executor: Any) -> None:
    @task
    def bad() -> None:
        raise ValueError("boom")

    @task
    def after(bad: None) -> str:
        return "never"

    bad >> after
    dag = DAG("failing").add(at.one)  # claims bad >> after, adds one
    with pytest.raises(WorkflowFailedError) as info:
        dag.run(executor=executor, failure_policy="continue", run_id="nightly-7")
    assert [f.task_name for f in info.value.failures] == ["bad"]
    run = dag.last_run
    assert run is not None and run.run_id == "nightly-7"
    assert run.statuses == {
        "one": TaskStatus.COMPLETED, "bad": TaskStatus.FAILED,
        "after": TaskStatus.UPSTREAM_FAILED,
    }  # fmt: skip
    with pytest.raises(ConfigurationError) as conf:
        dag.run(executor=executor, retries=2)  # type: ignore[call-arg]
    assert str(conf.value).startswith("unknown run option(s) ['retries']")


def test_when_sees_every_input_and_skips_propagate_on_request(executor: Any) -> None:
    @task(when=lambda left, right: left + right > 2)
    def big(left: int, right: int) -> str:
        return "big"

    @task(when=lambda left, right: left + right > 100)
    def huge(left: int, right: int) -> str:
        return "huge"

    @task
    def report(big: str | None, huge: str | None) -> tuple[str | None, str | None]:
        return big, huge

    @task(skip_if_upstream_skipped=True)
    def only_if_huge(huge: str | None) -> str:
        return "ran"

    left, right = Task(name="left", fn=lambda: 1), Task(name="right", fn=lambda: 2)
    [left, right] >> big
    [left, right] >> huge
    [big, huge] >> report
    huge >> only_if_huge
    dag = DAG("conditions")
    assert dag.run(executor=executor) == {
        "left": 1, "right": 2, "big": "big", "huge": None, "report": ("big", None),
        "only_if_huge": None,
    }  # fmt: skip
    run = dag.last_run
    assert run is not None
    assert [run.status(n) for n in ("huge", "report", "only_if_huge")] == [
        TaskStatus.SKIPPED, TaskStatus.COMPLETED, TaskStatus.SKIPPED,
    ]  # fmt: skip


def test_the_compiled_workflow_is_reused_until_the_dag_changes() -> None:
    dag = DAG("d", tasks=[at.one])
    workflow = dag.to_workflow()
    assert dag.to_workflow() is workflow
    before = dag.last_run
    assert before is None
    dag.run(executor="sequential")
    assert dag.last_run is workflow.last_run is not None
    dag.connect(at.one, at.pid)
    assert dag.to_workflow() is not workflow
    assert (len(dag), "pid" in dag, at.pid in dag, "two" in dag) == (2, True, True, False)
    assert [at.pid] not in dag  # not a task (and unhashable): simply not in it
    assert repr(dag) == "<DAG 'd' with 2 tasks>"


def test_run_async_inside_a_running_loop() -> None:
    async def main() -> dict[str, Any]:
        [at.one, at.two] >> at.add
        return await DAG("async").run_async()

    assert asyncio.run(main()) == {"one": 1, "two": 2, "add": 3}


def test_a_dag_runs_on_an_executor_object_it_does_not_own() -> None:
    executor = SequentialExecutor()
    at.one >> at.original_name
    assert DAG("own").run(executor=executor) == {"one": 1, "renamed": 10}


def _one() -> int:
    return 1


def _count(*inputs: int) -> int:
    return len(inputs)


class _CountingTask(Task[..., Any]):
    """A Task that counts equality comparisons: a list scan compares, a dict lookup does not."""

    compared = 0

    def __eq__(self, other: object) -> bool:
        type(self).compared += 1
        return self is other

    __hash__ = Task.__hash__


def test_many_upstreams_into_one_task_take_no_pairwise_comparisons() -> None:
    # `[many] >> t` was quadratic (each edge scanned the upstreams so far for a repeat):
    # 50,000 upstreams took 12 s. Counting comparisons says so without a stopwatch.
    n = 3_000
    ups = [_CountingTask(name=f"u{k}", fn=_one) for k in range(n)]
    sink = _CountingTask(name="sink", fn=_count)
    _CountingTask.compared = 0
    with DAG("wide") as dag:
        ups >> sink
        ups[:10] >> sink  # repeats are still ignored, each in O(1)
    workflow = dag.to_workflow()
    assert _CountingTask.compared <= n  # quadratic was ~n²/2 = 4.5 million
    assert workflow.get_dependencies("sink") == [f"u{k}" for k in range(n)]


def test_a_single_decorated_task_is_a_dag() -> None:
    calls: list[str] = []

    @task
    def flaky() -> str:
        calls.append("ran")
        return "ok"

    assert DAG("flaky").run() == {"flaky": "ok"}
    assert calls == ["ran"]
    with pytest.raises(DefinitionError, match="has no tasks"):
        DAG("again").run()  # the previous DAG took it


def test_lone_tasks_of_imported_modules_never_join(tmp_path: Path) -> None:
    (tmp_path / "lone_helpers.py").write_text(
        "from flowweaver import task\n\n@task\ndef helper() -> int:\n    return 1\n"
    )
    spec = importlib.util.spec_from_file_location("lone_helpers", tmp_path / "lone_helpers.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["lone_helpers"] = module
    try:
        spec.loader.exec_module(module)  # its @task is declared in this context

        @task
        def mine() -> int:
            return 2

        assert DAG("mine").run() == {"mine": 2}
    finally:
        del sys.modules["lone_helpers"]


def test_once_there_is_an_edge_lone_tasks_do_not_join() -> None:
    @task
    def first() -> int:
        return 1

    @task
    def second(first: int) -> int:
        return first + 1

    @task
    def unrelated() -> int:
        return 0

    first >> second
    assert DAG("edges").run() == {"first": 1, "second": 2}


def test_lone_tasks_decorated_inside_a_with_block_belong_to_it() -> None:
    @task
    def outside() -> int:
        return 0

    with DAG("block") as dag:

        @task
        def inside() -> int:
            return 1

    assert dag.run() == {"inside": 1}
    assert DAG("rest").run() == {"outside": 0}


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 7), st.integers(0, 7)), max_size=40))
def test_every_shift_that_closes_a_loop_is_refused_and_only_those(
    pairs: list[tuple[int, int]],
) -> None:
    nodes = [t(f"n{k}") for k in range(8)]
    kept: set[tuple[int, int]] = set()

    def reaches(a: int, b: int) -> bool:  # the reference: a plain search over kept edges
        todo, seen = [a], {a}
        while todo:
            x = todo.pop()
            if x == b:
                return True
            for u, v in kept:
                if u == x and v not in seen:
                    seen.add(v)
                    todo.append(v)
        return False

    token = _scope.open_scope()
    try:
        for up, down in pairs:
            closes = reaches(down, up)
            if closes:
                with pytest.raises(CycleError) as info:
                    nodes[up] >> nodes[down]
                cycle = info.value.cycle
                assert cycle[0] == cycle[-1] == f"n{down}"
                # each node depends on the next: every step is a kept edge, or the new one
                steps = {(f"n{v}", f"n{u}") for u, v in kept | {(up, down)}}
                assert all((a, b) in steps for a, b in itertools.pairwise(cycle))
            else:
                nodes[up] >> nodes[down]
                kept.add((up, down))
        index = _scope._INDEX.get()
        assert index is not None
        assert all(index.order[nodes[u]] < index.order[nodes[v]] for u, v in kept)
    finally:
        _scope.close_scope(token)
