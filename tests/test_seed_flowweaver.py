"""Every example of the FlowWeaver seed README, with only the import line changed.

Names the seed leaves to the reader (``requests``, ``risky_operation`` …) are given small
stand-ins here; the example code itself is the seed's, verbatim where it runs as written.
"""
# The seed's "Data Pipeline" loops over a list of differently typed Tasks (mypy joins them to
# `object`); an inline ignore would make the formatter re-wrap that verbatim call.
# mypy: disable-error-code="arg-type, attr-defined"

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any

import pytest

from flowweaver import (
    AsyncExecutor,
    SequentialExecutor,
    Task,
    TaskStatus,
    ThreadedExecutor,
    Workflow,
)


def test_quick_start_sequential_workflow(capsys: pytest.CaptureFixture[str]) -> None:
    # Define tasks
    extract = Task(name="extract", fn=lambda: {"data": [1, 2, 3, 4, 5]})
    transform = Task(name="transform", fn=lambda: {"doubled": [2, 4, 6, 8, 10]})
    load = Task(name="load", fn=lambda: print("✓ Data loaded"))

    # Build workflow
    workflow = Workflow(name="ETL Pipeline")
    workflow.add_task(extract)
    workflow.add_task(transform, depends_on=["extract"])
    workflow.add_task(load, depends_on=["transform"])

    # Execute
    executor = SequentialExecutor()
    executor.execute(workflow)

    # Access results
    data = workflow.get_task_result("extract")
    print(data)  # {'data': [1, 2, 3, 4, 5]}

    assert capsys.readouterr().out == "✓ Data loaded\n{'data': [1, 2, 3, 4, 5]}\n"


def test_async_workflow_with_parallel_execution(capsys: pytest.CaptureFixture[str]) -> None:
    async def fetch_user(user_id: int) -> dict:  # type: ignore[type-arg]
        # Simulated async I/O
        await asyncio.sleep(0.1)
        return {"id": user_id, "name": f"User{user_id}"}

    async def fetch_orders(user_id: int) -> dict:  # type: ignore[type-arg]
        await asyncio.sleep(0.1)
        return {"user_id": user_id, "orders": []}

    workflow = Workflow(name="Data Fetch")

    # Create tasks for multiple users - these will run in parallel
    for user_id in range(1, 4):
        task = Task(name=f"user_{user_id}", fn=lambda uid=user_id: fetch_user(uid))
        workflow.add_task(task)

    # Run in parallel (completes in ~0.1s, not 0.3s)
    executor = AsyncExecutor()
    executor.execute(workflow)

    stats = workflow.get_workflow_stats()
    print(f"Completed {stats['completed']} tasks in {stats['total_time_seconds']:.3f}s")

    assert capsys.readouterr().out.startswith("Completed 3 tasks in ")
    assert workflow.get_task_result("user_2") == {"id": 2, "name": "User2"}
    # How long it took is a benchmark's business (benchmarks/); the overlap itself is proven
    # with a barrier in test_async_executor.py.


class _Response:
    def json(self) -> dict[str, int]:
        return {"value": 1}


class _Requests:
    """Stand-in for the seed's `requests` (no network in tests)."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.calls = 0

    def get(self, url: str) -> _Response:
        self.calls += 1
        if self.calls <= self.failures:
            raise ConnectionError(url)
        return _Response()


def test_real_time_monitoring_with_callbacks(capsys: pytest.CaptureFixture[str]) -> None:
    requests = _Requests(failures=2)

    def on_task_start(task_name: str, status: Any) -> None:
        print(f"📌 {task_name} started")

    def on_task_complete(task_name: str, status: Any) -> None:
        print(f"✅ {task_name} completed")

    def on_retry_attempt(task_name: str, attempt: int) -> None:
        print(f"🔄 {task_name} retry attempt #{attempt}")

    # Task with retry and monitoring
    task = Task(
        name="api_call",
        fn=lambda: requests.get("https://api.example.com/data").json(),
        retries=3,
        timeout=5.0,
        on_status_change=lambda name, status: (
            on_task_start(name, status) if status.value == "running"
            else on_task_complete(name, status) if status.value == "completed"
            else None
        ),
        on_retry=on_retry_attempt,
        delay=0.0,  # not in the seed: keeps the test from waiting 1 s + 2 s of back-off
    )  # fmt: skip
    workflow = Workflow(name="monitored")
    workflow.add_task(task)
    SequentialExecutor().execute(workflow)
    assert capsys.readouterr().out == (
        "📌 api_call started\n🔄 api_call retry attempt #1\n"
        "📌 api_call started\n🔄 api_call retry attempt #2\n"
        "📌 api_call started\n✅ api_call completed\n"
    )
    assert task.result == {"value": 1}


def test_data_pipeline_with_error_handling(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)  # no data.csv here: extract fails, as in the seed

    def extract_csv(path: str) -> list[dict]:  # type: ignore[type-arg]
        """Extract data from CSV file"""
        import csv

        with open(path) as f:
            return list(csv.DictReader(f))

    def validate_data(data: list[dict]) -> list[dict]:  # type: ignore[type-arg]
        """Remove invalid records"""
        return [r for r in data if len(r) > 0]

    def transform_data(data: list[dict]) -> list[dict]:  # type: ignore[type-arg]
        """Apply transformations"""
        return [{**r, "processed": True} for r in data]

    def load_database(data: list[dict]) -> int:  # type: ignore[type-arg]
        """Load to database - with retry"""
        # Simulated DB connection
        if not data:
            raise ValueError("No data to load")
        return len(data)

    # Create workflow with error handling
    workflow = Workflow(name="Data Pipeline")

    extract_task = Task(name="extract", fn=lambda: extract_csv("data.csv"))
    validate_task = Task(name="validate", fn=lambda: validate_data([]), depends_on=["extract"])
    transform_task = Task(name="transform", fn=lambda: transform_data([]), depends_on=["validate"])
    load_task = Task(
        name="load",
        fn=lambda: load_database([]),
        depends_on=["transform"],
        retries=2,  # Retry up to 2 times on failure
        timeout=30.0,
    )

    for task in [extract_task, validate_task, transform_task, load_task]:
        workflow.add_task(task) if task.name == "extract" else workflow.add_task(
            task, depends_on=task.depends_on if hasattr(task, "depends_on") else []
        )

    executor = SequentialExecutor()
    try:
        executor.execute(workflow)
        stats = workflow.get_workflow_stats()
        print(f"✅ Pipeline completed: {stats}")
    except RuntimeError as e:
        print(f"❌ Pipeline failed: {e}")

    out = capsys.readouterr().out
    assert out.startswith(
        "❌ Pipeline failed: workflow 'Data Pipeline' failed: 1 task failed ('extract')"
    )
    assert workflow.get_dependencies("load") == ["transform"]
    assert workflow.get_task_status("extract") is TaskStatus.FAILED
    assert workflow.get_task_status("load") is TaskStatus.UPSTREAM_FAILED


def test_data_pipeline_succeeds_with_the_file_present(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data.csv").write_text("id,value\n1,a\n2,b\n")
    rows: list[dict[str, str]] = []
    workflow = Workflow(name="Data Pipeline")
    import csv

    def extract_csv(path: str) -> list[dict[str, str]]:
        with open(path) as f:
            return list(csv.DictReader(f))

    def load(extract: list[dict[str, str]]) -> int:
        rows.extend(extract)
        return len(rows)

    workflow.add_task(Task(name="extract", fn=lambda: extract_csv("data.csv")))
    workflow.add_task(Task(name="load", fn=load, depends_on=["extract"]))
    SequentialExecutor().execute(workflow)
    assert workflow.get_task_result("load") == 2


def test_conditional_execution_pattern() -> None:
    workflow = Workflow(name="Conditional Processing")

    def check_condition() -> bool:
        return random.choice([True, False])

    def process_if_true() -> str:
        return "Condition was true!"

    def process_if_false() -> str:
        return "Condition was false!"

    # Create parallel branches based on condition
    condition_task = Task(name="check", fn=check_condition)

    true_branch = Task(name="true_path", fn=process_if_true)
    false_branch = Task(name="false_path", fn=process_if_false)

    workflow.add_task(condition_task)
    # Note: In a real scenario, use a wrapper task that selectively executes branches
    workflow.add_task(true_branch, depends_on=["check"])
    workflow.add_task(false_branch, depends_on=["check"])

    executor = SequentialExecutor()  # Sequential for this example
    executor.execute(workflow)

    assert workflow.get_task_result("true_path") == "Condition was true!"
    assert workflow.get_task_result("false_path") == "Condition was false!"


def test_cycle_detection_and_dependency_validation(capsys: pytest.CaptureFixture[str]) -> None:
    task_a = Task(name="a", fn=lambda: 1)
    task_b = Task(name="b", fn=lambda: 2)
    task_c = Task(name="c", fn=lambda: 3)
    workflow = Workflow()
    workflow.add_task(task_a)
    workflow.add_task(task_b)
    # This will raise ValueError immediately
    workflow.add_task(task_c, depends_on=["a", "b"])
    with pytest.raises(ValueError, match="dependency cycle: 'a' -> 'c' -> 'a'"):
        workflow.add_task(task_a, depends_on=["c"])  # ❌ Circular dependency detected!

    try:
        workflow.add_task(Task(name="d", fn=lambda: 4), depends_on=["nonexistent_task"])
    except ValueError as e:
        print(f"Dependency error: {e}")

    other = Workflow(name="other")
    task_a, task_b = Task(name="task_a", fn=lambda: 1), Task(name="task_b", fn=lambda: 2)
    try:
        other.add_task(task_a, depends_on=["task_b"])
        other.add_task(task_b, depends_on=["task_a"])  # Circular!
    except ValueError as e:
        print(f"Cycle detected: {e}")

    assert capsys.readouterr().out == (
        "Dependency error: task 'd' depends on 'nonexistent_task', which does not exist in "
        "workflow 'Workflow'\n"
        "Cycle detected: task 'task_a' depends on 'task_b', which does not exist in workflow "
        "'other'\n"
    )


def test_task_failures_example(capsys: pytest.CaptureFixture[str]) -> None:
    def risky_operation() -> None:
        raise OSError("disk on fire")

    workflow = Workflow(name="fault-tolerant")
    task = Task(name="risky", fn=risky_operation, retries=3, delay=0.0)
    workflow.add_task(task)

    executor = SequentialExecutor()
    try:
        executor.execute(workflow)
    except RuntimeError:
        # Get detailed error info
        failed_task = workflow.get_task("risky")
        print(f"Task failed: {failed_task.error}")  # type: ignore[union-attr]

    assert capsys.readouterr().out == "Task failed: OSError: disk on fire\n"


def test_best_practice_snippets_build_valid_tasks(capsys: pytest.CaptureFixture[str]) -> None:
    def extract_fn() -> int:
        return 1

    fetch_api = expensive_calc = some_function = extract_fn
    Task(name="extract_customer_data", fn=extract_fn)
    Task(name="api_call", fn=fetch_api, timeout=10.0)
    Task(name="compute", fn=expensive_calc, timeout=60.0)
    Task(name="sum", fn=lambda: 1 + 1)

    def log_status(task_name: str, status: TaskStatus) -> None:
        print(f"[{task_name}] {status.value}")

    task = Task(name="important_step", fn=some_function, on_status_change=log_status, retries=2)
    task.execute()
    assert capsys.readouterr().out == "[important_step] running\n[important_step] completed\n"


def test_configuration_and_statistics_example() -> None:
    # Enable debug logging
    logging.getLogger("flowweaver").setLevel(logging.DEBUG)
    try:
        io_heavy, cpu_bound, multicore = False, True, True
        # Use different executor strategies based on workload
        if io_heavy:
            executor: Any = AsyncExecutor()
        elif cpu_bound and multicore:
            executor = ThreadedExecutor(max_workers=4)
        else:
            executor = SequentialExecutor()
        workflow = Workflow("stats")
        for i in range(10):
            workflow.add_task(Task(name=f"t{i}", fn=lambda i=i: i))
        workflow.execute(executor)
    finally:
        logging.getLogger("flowweaver").setLevel(logging.NOTSET)

    stats = workflow.get_workflow_stats()
    assert {k: stats[k] for k in ("total_tasks", "completed", "failed", "pending", "running")} == {
        "total_tasks": 10, "completed": 10, "failed": 0, "pending": 0, "running": 0,
    }  # fmt: skip
    assert isinstance(stats["total_time_seconds"], float)
