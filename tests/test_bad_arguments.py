"""Malformed arguments to public entry points: each a ConfigurationError (a ValueError and a
TypeError) naming the argument and quoting the bad value — never a raw TypeError or
AttributeError from deep inside."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from flowweaver import (
    DAG,
    AsyncExecutor,
    ConfigurationError,
    JSONSerializer,
    Pipeline,
    ProcessExecutor,
    SequentialExecutor,
    Stage,
    StatusTracker,
    Task,
    ThreadedExecutor,
    Workflow,
    configure_logging,
    task,
)

from .conftest import run


def double(x: int) -> int:
    return 2 * x


def workflow() -> Workflow:
    made = Workflow("w")
    made.add_task(Task(name="a", fn=lambda: 1))
    return made


def pipeline() -> Pipeline:
    return Pipeline([Stage("s1", 1, [double])])


async def feeding(**kwargs: Any) -> None:
    p = pipeline()
    await p.start()
    try:
        await p.feed(**kwargs)
    finally:
        await p.shutdown()


async def streaming(items: Any) -> None:
    async for _ in pipeline().stream(items):
        pass


def dag() -> DAG:
    return DAG("d", tasks=[task(lambda: 1)])


NOT_A_WORKFLOW = "execute() needs a Workflow, got {!r}"
MONITORS = "execute: monitors must be a list or tuple of Monitor objects, got {!r}"
ITEMS = "{}: items must be an iterable or async iterable of items, got {!r}"
TASKS = "{}: tasks must be a callable or a non-empty list of callables, got {!r}"

CASES: list[tuple[str, Callable[[], object], str]] = [
    ("monitors=5", lambda: workflow().execute(monitors=5), MONITORS.format(5)),  # type: ignore[arg-type]
    ("monitors=None", lambda: workflow().execute(monitors=None), MONITORS.format(None)),  # type: ignore[arg-type]
    ("monitors=[5]", lambda: workflow().execute(monitors=[5]), MONITORS.format([5])),  # type: ignore[list-item]
    ("progress='yes'", lambda: workflow().execute(progress="yes"),  # type: ignore[arg-type]
     "execute: progress must be a bool, got 'yes'"),
    ("sequential('x')", lambda: SequentialExecutor().execute("x"), NOT_A_WORKFLOW.format("x")),  # type: ignore[arg-type]
    ("threaded(5)", lambda: ThreadedExecutor().execute(5), NOT_A_WORKFLOW.format(5)),  # type: ignore[arg-type]
    ("async(None)", lambda: AsyncExecutor().execute(None), NOT_A_WORKFLOW.format(None)),  # type: ignore[arg-type]
    ("process([])", lambda: ProcessExecutor().execute([]), NOT_A_WORKFLOW.format([])),  # type: ignore[arg-type]
    ("execute_async('x')", lambda: run(SequentialExecutor().execute_async("x")),  # type: ignore[arg-type]
     NOT_A_WORKFLOW.format("x")),
    ("pipeline.run(5)", lambda: run(pipeline().run(5)), ITEMS.format("Pipeline.run", 5)),  # type: ignore[arg-type]
    ("pipeline.run(None)", lambda: run(pipeline().run(None)),  # type: ignore[arg-type]
     ITEMS.format("Pipeline.run", None)),
    ("pipeline.run('abc')", lambda: run(pipeline().run("abc")),
     ITEMS.format("Pipeline.run", "abc")),
    ("pipeline.stream(5)", lambda: run(streaming(5)), ITEMS.format("Pipeline.stream", 5)),
    ("feed(5)", lambda: run(feeding(items=5)), ITEMS.format("Pipeline.feed", 5)),
    ("feed(target_stage=['s1'])", lambda: run(feeding(items=[1], target_stage=["s1"])),
     "target_stage must be a stage name (a str) or None, got ['s1']"),
    ("StatusTracker(task_concurrency_limits=5)",
     lambda: StatusTracker(task_concurrency_limits=5),  # type: ignore[arg-type]
     "StatusTracker: task_concurrency_limits must be a mapping (a dict), got 5"),
    ("quick([1], 5)", lambda: run(Pipeline.quick([1], 5)),  # type: ignore[arg-type]
     TASKS.format("Pipeline.quick", 5)),
    ("quick([1], [double, 5])", lambda: run(Pipeline.quick([1], [double, 5])),  # type: ignore[list-item]
     TASKS.format("Pipeline.quick", [double, 5])),
    ("quick(5, double)", lambda: run(Pipeline.quick(5, double)),  # type: ignore[arg-type]
     ITEMS.format("Pipeline.quick", 5)),
    ("create().add('s', 5)", lambda: Pipeline.create().add("s", 5),  # type: ignore[arg-type]
     TASKS.format("stage 's'", 5)),
    ("Pipeline(collect_results='yes')",
     lambda: Pipeline([Stage("s", 1, [double])], collect_results="yes"),  # type: ignore[arg-type]
     "Pipeline: collect_results must be a bool, got 'yes'"),
    ("pipeline.run(progress='x')", lambda: run(pipeline().run([1], progress="x")),  # type: ignore[arg-type]
     "run(): progress must be a bool, got 'x'"),
    ("configure_logging('LOUD')", lambda: configure_logging("LOUD"),
     "configure_logging: level must be a LogLevel, an int >= 0 or one of ['DEBUG', 'INFO', "
     "'SYSTEM', 'SUCCESS', 'WARNING', 'ERROR'], got 'LOUD'"),
    ("JSONSerializer(classes=5)", lambda: JSONSerializer(classes=5),  # type: ignore[arg-type]
     "JSONSerializer: classes must be an iterable of classes, got 5"),
]  # fmt: skip


@pytest.mark.parametrize(("label", "call", "message"), CASES, ids=[c[0] for c in CASES])
def test_a_malformed_argument_is_a_configuration_error_naming_it(
    label: str, call: Callable[[], object], message: str
) -> None:
    with pytest.raises(ConfigurationError) as info:
        call()
    assert str(info.value) == message
    assert isinstance(info.value, ValueError) and isinstance(info.value, TypeError)


def test_a_dag_given_to_execute_says_how_to_run_it() -> None:
    graph = dag()
    with pytest.raises(ConfigurationError) as info:
        SequentialExecutor().execute(graph)  # type: ignore[arg-type]
    assert str(info.value) == (
        f"execute() needs a Workflow, got {graph!r} (a DAG or Flow: call its run(), or pass "
        "its to_workflow())"
    )
    assert SequentialExecutor().execute(graph.to_workflow()).ok


def test_well_formed_arguments_still_work() -> None:
    assert workflow().execute(monitors=(), progress=False).ok
    assert [r.value for r in run(Pipeline.quick(iter([1, 2]), (double,)))] == [2, 4]
    assert StatusTracker(task_concurrency_limits=None).task_concurrency_limits == {}
