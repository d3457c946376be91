"""OpenTelemetry: one switch; spans and metrics of workflow and pipeline runs (in-memory SDK)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk", reason="needs the 'otel' extra")

from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from flowweaver import (
    AsyncExecutor,
    ConfigurationError,
    Pipeline,
    SequentialExecutor,
    Stage,
    Task,
    ThreadedExecutor,
    Workflow,
    configure_telemetry,
    telemetry_enabled,
)

from .conftest import run


class Telemetry:
    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.reader = InMemoryMetricReader()
        self.meters = MeterProvider(metric_readers=[self.reader])

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def metrics(self) -> dict[str, Any]:
        """Sum (counters) or count (histograms) of every flowweaver metric."""
        out: dict[str, Any] = {}
        data = self.reader.get_metrics_data()
        assert data is not None
        for resource in data.resource_metrics:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    points: list[Any] = list(metric.data.data_points)
                    if metric.name.endswith("duration"):
                        out[metric.name] = sum(p.count for p in points)
                    else:
                        out[metric.name] = sum(p.value for p in points)
        return out


@pytest.fixture
def otel() -> Iterator[Telemetry]:
    telemetry = Telemetry()
    configure_telemetry(tracer_provider=telemetry.provider, meter_provider=telemetry.meters)
    try:
        yield telemetry
    finally:
        configure_telemetry(False)


def workflow(tracer: trace.Tracer, coroutines: bool = False) -> Workflow:
    """a fails once then completes; b fails; c opens a span of its own inside its task (b and
    c as coroutine functions with ``coroutines``)."""
    left = [1]

    def a() -> int:
        if left[0]:
            left[0] -= 1
            raise ConnectionError("flaky")
        return 1

    def b(a: int) -> int:
        raise ValueError("bad input")

    def c() -> str:
        with tracer.start_as_current_span("user work"):
            return "ok"

    async def async_b(a: int) -> int:
        raise ValueError("bad input")

    async def async_c() -> str:
        with tracer.start_as_current_span("user work"):
            return "ok"

    wf = Workflow("traced")
    wf.add_task(Task("a", a, retries=1, delay=0, jitter=0))
    wf.add_task(Task("b", async_b if coroutines else b), depends_on=["a"])
    wf.add_task(Task("c", async_c if coroutines else c))
    return wf


@pytest.mark.parametrize("kind", ["sequential", "threaded", "async", "async-coroutine"])
def test_a_run_is_a_span_tree_with_retries_failures_and_user_spans_nested(
    otel: Telemetry, kind: str
) -> None:
    tracer = otel.provider.get_tracer("user")
    wf = workflow(tracer, coroutines=kind == "async-coroutine")
    executor: Any = {
        "sequential": SequentialExecutor, "threaded": ThreadedExecutor,
        "async": AsyncExecutor, "async-coroutine": AsyncExecutor,
    }[kind]()  # fmt: skip
    with tracer.start_as_current_span("caller"), pytest.raises(RuntimeError):
        executor.execute(wf, run_id="r1", failure_policy="continue")
    spans = otel.spans()
    by_name: dict[str, list[ReadableSpan]] = {}
    for span in spans:
        by_name.setdefault(span.name, []).append(span)
    assert sorted(by_name) == [
        "caller",
        "task a",
        "task b",
        "task c",
        "user work",
        "workflow traced",
    ]
    (caller,), (root,) = by_name["caller"], by_name["workflow traced"]
    assert root.parent is not None and root.parent.span_id == caller.context.span_id
    assert dict(root.attributes or {}) == {
        "flowweaver.workflow": "traced", "flowweaver.run_id": "r1",
        "flowweaver.executor": type(executor).__name__, "flowweaver.failed": 1,
        "flowweaver.cancelled": 0,
    }  # fmt: skip
    assert root.status.status_code is StatusCode.ERROR
    for span in by_name["task a"] + by_name["task b"] + by_name["task c"]:
        assert span.parent is not None and span.parent.span_id == root.context.span_id
    attempts = sorted(
        by_name["task a"], key=lambda s: str((s.attributes or {}).get("flowweaver.attempt"))
    )
    assert [s.status.status_code for s in attempts] == [StatusCode.ERROR, StatusCode.UNSET]
    assert dict(attempts[0].attributes or {}) == {
        "flowweaver.workflow": "traced", "flowweaver.run_id": "r1",
        "flowweaver.executor": type(executor).__name__, "flowweaver.task": "a",
        "flowweaver.attempt": 1,
    }  # fmt: skip
    assert [e.attributes["exception.type"] for e in attempts[0].events] == ["ConnectionError"]  # type: ignore[index]
    (b,) = by_name["task b"]
    assert b.status.status_code is StatusCode.ERROR
    assert b.status.description == "ValueError: bad input"
    assert [e.attributes["exception.message"] for e in b.events] == ["bad input"]  # type: ignore[index]
    # The task's span is current inside its code: the user's span nests under it.
    (user,), (c,) = by_name["user work"], by_name["task c"]
    assert user.parent is not None and user.parent.span_id == c.context.span_id
    assert otel.metrics() == {
        "flowweaver.tasks.completed": 2, "flowweaver.tasks.failed": 1,
        "flowweaver.tasks.retried": 1, "flowweaver.task.duration": 4,
    }  # fmt: skip


def test_a_pipeline_run_has_stage_and_task_spans_and_item_counters(otel: Telemetry) -> None:
    tracer = otel.provider.get_tracer("user")
    seen: set[int] = set()

    async def fetch(x: int) -> int:
        if x == 2 and x not in seen:
            seen.add(x)
            raise ConnectionError("again")
        return x

    def save(x: int) -> int:
        with tracer.start_as_current_span("user save"):
            if x == 3:
                raise ValueError("no 3")
            return x

    pipeline = Pipeline(
        [
            Stage("fetch", 1, [fetch], task_attempts=2, task_wait_seconds=0),
            Stage("save", 1, [save], task_attempts=1),
        ],
        name="p",
    )
    results = run(pipeline.run([1, 2, 3]))
    assert [r.value for r in results] == [1, 2]
    spans = otel.spans()
    names = sorted(s.name for s in spans)
    assert names.count("pipeline p") == 1
    (root,) = [s for s in spans if s.name == "pipeline p"]
    stages = [s for s in spans if s.name.startswith("stage ")]
    assert sorted(s.name for s in stages) == ["stage fetch"] * 3 + ["stage save"] * 3
    assert all(s.parent is not None and s.parent.span_id == root.context.span_id for s in stages)
    tasks = [s for s in spans if s.name.startswith("task ")]
    assert sorted(s.name for s in tasks) == ["task fetch"] * 4 + ["task save"] * 3
    stage_ids = {s.context.span_id for s in stages}
    assert all(t.parent is not None and t.parent.span_id in stage_ids for t in tasks)
    failed_fetch = [
        t for t in tasks if t.name == "task fetch" and t.status.status_code is StatusCode.ERROR
    ]
    assert [(t.attributes or {}).get("flowweaver.attempt") for t in failed_fetch] == [1]
    save_stage = {s.attributes["flowweaver.item_id"]: s for s in stages if s.name == "stage save"}  # type: ignore[index]
    assert save_stage["2"].status.status_code is StatusCode.ERROR
    assert dict(save_stage["2"].attributes or {}) == {
        "flowweaver.pipeline": "p", "flowweaver.stage": "save", "flowweaver.worker": "save-W0",
        "flowweaver.item_id": "2", "flowweaver.attempt": 1,
    }  # fmt: skip
    user = [s for s in spans if s.name == "user save"]
    task_ids = {t.context.span_id for t in tasks if t.name == "task save"}
    assert len(user) == 3 and all(
        u.parent is not None and u.parent.span_id in task_ids for u in user
    )
    assert otel.metrics() == {
        "flowweaver.items.processed": 2, "flowweaver.items.failed": 1,
        "flowweaver.items.retried": 1, "flowweaver.task.duration": 7,
    }  # fmt: skip


def test_the_switch() -> None:
    assert not telemetry_enabled()
    configure_telemetry()
    try:
        assert telemetry_enabled()
    finally:
        configure_telemetry(False)
    assert not telemetry_enabled()
    with pytest.raises(ConfigurationError) as info:
        configure_telemetry("yes")  # type: ignore[arg-type]
    assert str(info.value) == "configure_telemetry: enabled must be a bool, got 'yes'"


NO_OTEL = textwrap.dedent(
    """
    import sys
    import flowweaver
    wf = flowweaver.Workflow("w")
    wf.add_task(flowweaver.Task("a", lambda: 1))
    wf.execute()
    assert "opentelemetry" not in sys.modules, "imported without the switch"
    sys.modules["opentelemetry"] = None  # as if the extra were not installed
    try:
        flowweaver.configure_telemetry()
    except ImportError as error:
        print(type(error).__name__, error)
    """
)


def test_without_the_switch_nothing_is_imported_and_a_missing_extra_is_named() -> None:
    done = subprocess.run(
        [sys.executable, "-c", NO_OTEL], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        "MissingDependencyError configure_telemetry needs the 'otel' extra: "
        "pip install 'flowweaver[otel]'"
    )


def test_a_threaded_chain_with_telemetry_runs_on_one_worker_inside_its_spans(
    otel: Telemetry,
) -> None:
    seen: list[tuple[int, str]] = []

    def step(*_: object) -> None:
        span = trace.get_current_span()
        seen.append((threading.get_ident(), getattr(span, "name", "")))

    wf = Workflow("chain")
    for i in range(6):
        wf.add_task(Task(f"t{i}", step), depends_on=[f"t{i - 1}"] if i else [])
    ThreadedExecutor(max_workers=4).execute(wf)
    assert len({thread for thread, _ in seen}) == 1  # the hand-off driver: no thread hand-off
    assert [name for _, name in seen] == [f"task t{i}" for i in range(6)]
    assert sorted(s.name for s in otel.spans()) == sorted(
        ["workflow chain", *(f"task t{i}" for i in range(6))]
    )
