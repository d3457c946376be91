"""Workflow: validation on add, Kahn plans, queries. Pure: no run, no threads."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flowweaver import (
    BindingError,
    ConfigurationError,
    CycleError,
    DuplicateTaskError,
    Task,
    TaskStatus,
    UnknownDependencyError,
    UnknownTaskError,
    Workflow,
)


def t(name: str) -> Task[[], None]:
    return Task(name=name, fn=lambda: None)


def names(plan: list[list[Task[..., object]]]) -> list[list[str]]:
    return [[task.name for task in layer] for layer in plan]


def test_execution_plan_is_kahn_layers() -> None:
    # The seed's picture: a, b -> c -> d.
    wf = Workflow("w")
    wf.add_task(t("a"))
    wf.add_task(t("b"))
    wf.add_task(t("c"), depends_on=["a", "b"])
    wf.add_task(t("d"), depends_on=["c"])
    assert names(wf.get_execution_plan()) == [["a", "b"], ["c"], ["d"]]


def test_a_layer_is_the_longest_dependency_chain() -> None:
    wf = Workflow("w")
    for name, deps in [("a", []), ("b", ["a"]), ("c", ["b"]), ("x", ["a"]), ("y", ["c", "x"])]:
        wf.add_task(t(name), depends_on=deps)
    assert names(wf.get_execution_plan()) == [["a"], ["b", "x"], ["c"], ["y"]]


def test_empty_workflow_has_an_empty_plan() -> None:
    assert Workflow().get_execution_plan() == []


def test_duplicate_name_is_refused() -> None:
    wf = Workflow("etl")
    wf.add_task(t("a"))
    with pytest.raises(DuplicateTaskError) as info:
        wf.add_task(t("a"))
    assert str(info.value) == "task 'a' already exists in workflow 'etl'"
    assert info.value.task_name == "a"


def test_unknown_dependency_is_refused() -> None:
    wf = Workflow("etl")
    with pytest.raises(UnknownDependencyError) as info:
        wf.add_task(t("c"), depends_on=["nonexistent_task"])
    assert str(info.value) == (
        "task 'c' depends on 'nonexistent_task', which does not exist in workflow 'etl'"
    )


def test_self_dependency_is_a_cycle() -> None:
    with pytest.raises(CycleError) as info:
        Workflow().add_task(t("a"), depends_on=["a"])
    assert info.value.cycle == ("a", "a")


def test_redefining_a_task_to_close_a_loop_reports_the_cycle() -> None:
    # The seed's example: c depends on a and b; then a is re-added depending on c.
    wf = Workflow("w")
    wf.add_task(t("a"))
    wf.add_task(t("b"))
    wf.add_task(t("c"), depends_on=["a", "b"])
    with pytest.raises(CycleError) as info:
        wf.add_task(t("a"), depends_on=["c"])
    assert info.value.cycle == ("a", "c", "a")
    assert str(info.value) == "dependency cycle: 'a' -> 'c' -> 'a'"


def test_long_cycle_path_is_reported_in_order() -> None:
    wf = Workflow("w")
    wf.add_task(t("a"))
    wf.add_task(t("b"), depends_on=["a"])
    wf.add_task(t("c"), depends_on=["b"])
    with pytest.raises(CycleError) as info:
        wf.add_task(t("a"), depends_on=["c"])
    assert info.value.cycle == ("a", "c", "b", "a")


def test_dependency_listed_twice_is_refused() -> None:
    wf = Workflow("w")
    wf.add_task(t("a"))
    with pytest.raises(ConfigurationError) as info:
        wf.add_task(t("b"), depends_on=["a", "a"])
    assert str(info.value) == "task 'b' lists dependency 'a' twice"


@pytest.mark.parametrize(
    ("task", "deps", "message"),
    [
        ("not a task", None, "add_task() expects a Task or a workflow, got 'not a task'"),
        (Task(name="b", fn=lambda: 1), "a", "task 'b': depends_on must be a sequence of task "
                                             "names, got 'a'"),
        (Task(name="b", fn=lambda: 1), [1], "task 'b': dependency names must be str, got 1"),
    ],
)  # fmt: skip
def test_malformed_add_task_arguments(task: object, deps: object, message: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        Workflow().add_task(task, depends_on=deps)  # type: ignore[arg-type]
    assert str(info.value) == message


def test_a_function_that_cannot_take_its_inputs_is_refused_on_add() -> None:
    wf = Workflow("w")
    wf.add_task(t("a"))
    wf.add_task(t("b"))
    with pytest.raises(BindingError):
        wf.add_task(Task(name="c", fn=lambda only: only), depends_on=["a", "b"])


def test_failed_add_leaves_the_workflow_unchanged() -> None:
    wf = Workflow("w")
    wf.add_task(t("a"))
    before = (names(wf.get_execution_plan()), wf.get_all_tasks(), wf.get_dependents("a"))
    bad_adds: tuple[Callable[[], None], ...] = (
        lambda: wf.add_task(t("b"), depends_on=["a", "missing"]),
        lambda: wf.add_task(t("a")),
        lambda: wf.add_task(Task(name="c", fn=lambda x, y: x), depends_on=["a"]),
        lambda: wf.add_task(t("d"), depends_on=["a", "a"]),
    )
    for bad in bad_adds:
        with pytest.raises(ValueError):
            bad()
        assert (
            names(wf.get_execution_plan()),
            wf.get_all_tasks(),
            wf.get_dependents("a"),
        ) == before
    assert len(wf) == 1


def test_task_depends_on_is_used_when_add_task_gets_none() -> None:
    wf = Workflow("w")
    wf.add_task(t("a"))
    wf.add_task(Task(name="b", fn=lambda: 1, depends_on=["a"]))
    wf.add_task(Task(name="c", fn=lambda: 1, depends_on=["a"]), depends_on=[])
    assert wf.get_dependencies("b") == ["a"]
    assert wf.get_dependencies("c") == []


def test_queries() -> None:
    wf = Workflow("w")
    a, b = t("a"), t("b")
    wf.add_task(a)
    wf.add_task(b, depends_on=["a"])
    assert wf.get_task("a") is a
    assert wf.get_task("zzz") is None
    assert wf.get_dependencies("b") == ["a"]
    assert wf.get_dependents("a") == ["b"]
    assert wf.get_all_tasks() == {"a": a, "b": b}
    assert "a" in wf and "zzz" not in wf
    assert list(wf) == [a, b]
    with pytest.raises(UnknownTaskError) as info:
        wf.get_dependencies("zzz")
    assert str(info.value) == "workflow 'w' has no task named 'zzz'"


def test_status_result_and_stats_before_any_run() -> None:
    wf = Workflow("w")
    wf.add_task(t("a"))
    assert wf.get_task_status("a") is TaskStatus.PENDING
    assert wf.get_task_status("zzz") is None
    assert wf.get_task_result("a") is None
    stats = wf.get_workflow_stats()
    assert (stats["total_tasks"], stats["pending"], stats["completed"], stats["failed"]) == (
        1,
        1,
        0,
        0,
    )
    assert stats["running"] == 0 and stats["total_time_seconds"] == 0.0


def test_workflow_name_is_validated() -> None:
    with pytest.raises(ConfigurationError) as info:
        Workflow("")
    assert str(info.value) == "workflow name must be a non-empty str, got ''"


@st.composite
def dags(draw: st.DrawFn) -> list[list[int]]:
    n = draw(st.integers(0, 60))
    return [
        sorted(draw(st.sets(st.integers(0, i - 1), max_size=min(i, 4)))) if i else []
        for i in range(n)
    ]


@given(dags())
def test_every_task_is_planned_once_after_all_its_dependencies(graph: list[list[int]]) -> None:
    wf = Workflow("w")
    for i, deps in enumerate(graph):
        wf.add_task(t(f"n{i}"), depends_on=[f"n{d}" for d in deps])
    layer_of = {task.name: k for k, layer in enumerate(wf.get_execution_plan()) for task in layer}
    assert len(layer_of) == len(graph)
    for i, deps in enumerate(graph):
        expected = 1 + max((layer_of[f"n{d}"] for d in deps), default=-1)
        assert layer_of[f"n{i}"] == expected  # as early as possible, after every dependency


@given(dags(), st.data())
def test_every_cycle_closed_by_a_redefinition_is_reported(
    graph: list[list[int]], data: st.DataObject
) -> None:
    wf = Workflow("w")
    for i, deps in enumerate(graph):
        wf.add_task(t(f"n{i}"), depends_on=[f"n{d}" for d in deps])
    if not graph:
        return
    node = data.draw(st.integers(0, len(graph) - 1))
    target = data.draw(st.integers(0, len(graph) - 1))
    # Does `target` (transitively) depend on `node`? Then node -> target closes a cycle.
    reach, stack = {target}, [target]
    while stack:
        for d in graph[stack.pop()]:
            if d not in reach:
                reach.add(d)
                stack.append(d)
    with pytest.raises((CycleError, DuplicateTaskError)) as info:
        wf.add_task(t(f"n{node}"), depends_on=[f"n{target}"])
    if node in reach:
        assert isinstance(info.value, CycleError)
        cycle = info.value.cycle
        assert cycle[0] == cycle[-1] == f"n{node}"
        for later, earlier in itertools.pairwise(cycle[1:]):  # skip the new, closing edge
            assert earlier in wf.get_dependencies(later)  # each step is a real dependency
    else:
        assert isinstance(info.value, DuplicateTaskError)
