"""Flow: add / branch / merge, parameter injection by task name, running on every executor."""

from __future__ import annotations

from typing import Any

import pytest

from flowweaver import (
    DAG,
    BindingError,
    ConfigurationError,
    DefinitionError,
    DuplicateTaskError,
    Flow,
    Task,
    TaskNameCollisionError,
    _scope,
    task,
)

from . import authoring_tasks as at


def deps(flow: Flow) -> dict[str, list[str]]:
    workflow = flow.to_workflow()
    return {t.name: workflow.get_dependencies(t.name) for t in workflow}


def t(name: str) -> Task[..., Any]:
    return Task(name=name, fn=lambda *inputs: (name, *inputs))


def test_add_branch_merge_connect_to_the_tips() -> None:
    a, b, c, d, e, f, g = (t(n) for n in "abcdefg")
    flow = Flow("shape").add(a).branch(b, c).merge(d).branch(e, f).add(g)
    assert deps(flow) == {
        "a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"], "e": ["d"], "f": ["d"],
        "g": ["e", "f"],  # add() after branches depends on all of them
    }  # fmt: skip
    assert Flow("first").branch(a, b).merge(c).run(executor="sequential") == {
        "a": ("a",), "b": ("b",), "c": ("c", ("a",), ("b",)),
    }  # fmt: skip


def test_a_parameter_named_after_an_earlier_task_injects_it() -> None:
    @task
    def extract() -> int:
        return 2

    @task
    def transform(extract: int) -> int:
        return extract * 10

    @task
    def audit(value: int, /, extract: int, *, transform: int) -> tuple[int, int, int]:
        return value, extract, transform

    @task
    def load(transform: int, extract: int) -> tuple[int, int]:
        return transform, extract

    flow = Flow("inject").add(extract).add(transform).add(load)
    # load gets transform (its tip) and extract (named, earlier): passed by name.
    assert deps(flow)["load"] == ["transform", "extract"]
    assert flow.run() == {"extract": 2, "transform": 20, "load": (20, 2)}

    keyword_only = Flow("kw").add(extract).add(transform).branch(t("x")).merge(audit)
    assert deps(keyword_only)["audit"] == ["x", "extract", "transform"]
    assert keyword_only.run()["audit"] == (("x", 20), 2, 20)


def test_positional_only_and_later_tasks_do_not_inject() -> None:
    @task
    def first(extract: int, /) -> int:  # positional-only: cannot be passed by name
        return extract

    @task
    def extract() -> int:
        return 1

    flow = Flow("no-inject").add(t("source")).add(first).add(extract)
    assert deps(flow) == {"source": [], "first": ["source"], "extract": ["first"]}


def test_fan_in_and_injection_on_every_executor(any_executor: Any) -> None:
    flow = Flow("f", max_workers=2).branch(at.one, at.two).merge(at.add).add(at.weigh)
    # weigh(add, two): `two` is an earlier task, injected; both are passed by name.
    assert deps(flow)["weigh"] == ["add", "two"]
    assert flow.run(executor=any_executor) == {"one": 1, "two": 2, "add": 3, "weigh": 6}


def test_a_tip_whose_result_has_nowhere_to_go_is_a_binding_error() -> None:
    flow = Flow("f").add(at.two).add(at.one).add(at.original_name)
    # original_name(one) gets `one` by name, and the tip... is `one`: fine.
    assert flow.run(executor="sequential")["renamed"] == 10
    crowded = Flow("crowded").add(at.one).add(at.two).add(at.original_name)
    # Its tip `two` must reach it too, but original_name takes a single parameter.
    with pytest.raises(BindingError) as info:
        crowded.run()
    assert str(info.value) == (
        "task 'renamed' cannot receive its inputs: 2 upstream results but the function takes "
        "1 parameter(s); nothing receives 'two'"
    )


def test_a_refused_branch_leaves_the_flow_as_it_was() -> None:
    x, y = t("x"), t("y")
    flow = Flow("f").add(x)
    with pytest.raises(DuplicateTaskError):
        flow.branch(y, x)
    with pytest.raises(DuplicateTaskError):
        flow.branch(y, y)
    with pytest.raises(TaskNameCollisionError):
        flow.branch(y, t("y"))
    assert deps(flow) == {"x": []}
    assert deps(flow.branch(y)) == {"x": [], "y": ["x"]}


def test_what_a_flow_refuses() -> None:
    a = t("a")
    flow = Flow("f").add(a)
    with pytest.raises(DuplicateTaskError) as dup:
        flow.add(a)
    assert str(dup.value) == "task 'a' already exists in workflow 'f'"
    with pytest.raises(TaskNameCollisionError):
        flow.add(t("a"))
    with pytest.raises(ConfigurationError) as info:
        flow.branch()
    assert str(info.value) == "flow 'f': branch() needs at least one task"
    with pytest.raises(ConfigurationError) as info:
        flow.merge(print)  # type: ignore[arg-type]
    assert str(info.value) == "flow 'f': expected a Task, got <built-in function print>"
    with pytest.raises(ConfigurationError) as info:
        Flow("f", max_workers=-1)
    assert str(info.value) == "flow 'f': max_workers must be an int >= 1, got -1"
    with pytest.raises(DefinitionError) as empty:
        Flow("empty").run()
    assert str(empty.value) == "flow 'empty' has no tasks: add tasks with .add(task) first"
    assert list(flow.tasks) == ["a"]  # the refused steps changed nothing


def test_a_flow_neither_records_nor_takes_edges_of_the_open_graph() -> None:
    a, b, c = t("a"), t("b"), t("c")
    a >> b
    Flow("f").add(c).add(a).run(executor="sequential")
    assert [(u.name, v.name) for u, v in _scope.recorded()] == [("a", "b")]
    assert list(DAG("later").tasks) == ["a", "b"]
