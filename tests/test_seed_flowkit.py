"""Every example of the Flowkit seed README, with only the import line changed.

Names the seed leaves to the reader (``fetch_data``, ``requests``, ``db`` …) get small
stand-ins; the example code itself is the seed's, verbatim. ``StateManager`` and
``configure_logging`` belong to other issues and are not covered here. The seed's examples are
untyped, so mypy is told to leave their bodies alone.
"""
# mypy: disable-error-code="no-untyped-def, no-untyped-call, name-defined"

from __future__ import annotations

import datetime as _datetime
import random
from typing import Any

import pytest

from flowweaver import DAG, Flow, TaskStatus, WorkflowFailedError, task

from . import authoring_tasks
from .conftest import FakeClock


class _Response:
    def __init__(self, payload: object) -> None:
        self.payload = payload

    def json(self) -> object:
        return self.payload

    def raise_for_status(self) -> None:
        return None


class _Requests:
    """Stand-in for the seed's ``requests`` (no network in tests): fails ``failures`` times."""

    def __init__(self, payload: object, failures: int = 0) -> None:
        self.payload = payload
        self.failures = failures
        self.calls = 0

    def get(self, url: str) -> _Response:
        self.calls += 1
        if self.calls <= self.failures:
            raise ConnectionError(f"{url} unreachable (call {self.calls})")
        return _Response(self.payload)


def test_quick_start_dag_api(capsys: pytest.CaptureFixture[str]) -> None:
    saved: list[object] = []

    def fetch_data():
        return [1, 2, 3]

    def process(data):
        return [x * 10 for x in data]

    def save_to_db(data):
        saved.append(data)

    @task(retries=3)
    def extract():
        """Fetch data from source."""
        return fetch_data()

    @task()
    def transform(data):
        """Process the data."""
        return process(data)

    @task()
    def load(data):
        """Save to database."""
        save_to_db(data)
        return "Success"

    # Define pipeline using >> operator
    extract >> transform >> load

    # Execute
    dag = DAG("my_pipeline")
    results = dag.run()
    print(results)  # {'extract': ..., 'transform': ..., 'load': 'Success'}

    assert capsys.readouterr().out == (
        "{'extract': [1, 2, 3], 'transform': [10, 20, 30], 'load': 'Success'}\n"
    )
    assert saved == [[10, 20, 30]]


def test_quick_start_flow_api(capsys: pytest.CaptureFixture[str]) -> None:
    saved: list[object] = []

    def fetch_data():
        return [1, 2]

    def process(data):
        return sum(data)

    def save_to_db(data):
        saved.append(data)

    @task(retries=3)
    def extract():
        """Fetch data from source."""
        return fetch_data()

    @task()
    def transform(extract):  # Parameter name matches task name
        """Process the data."""
        return process(extract)

    @task()
    def load(transform):
        """Save to database."""
        save_to_db(transform)
        return "Success"

    # Build pipeline with chainable API
    pipeline = Flow("my_pipeline", max_workers=4).add(extract).add(transform).add(load)

    # Execute
    results = pipeline.run()
    print(results)  # {'extract': ..., 'transform': ..., 'load': 'Success'}

    assert capsys.readouterr().out == "{'extract': [1, 2], 'transform': 3, 'load': 'Success'}\n"
    assert saved == [3]


def test_tasks_core_concept() -> None:
    result = {"answer": 42}

    @task()
    def my_task(input_data):
        # Your code here
        return result

    assert my_task("anything") is result  # a task is still a plain call
    assert (my_task.name, my_task.retries, my_task.delay, my_task.backoff, my_task.when) == (
        "my_task", 0, 1.0, 2.0, None,
    )  # fmt: skip


def test_task_parameters_retry_with_exponential_back_off(clock: FakeClock) -> None:
    attempts: list[int] = []

    def risky_operation():
        attempts.append(1)
        if len(attempts) < 4:
            raise ConnectionError("flaky")
        return "ok"

    @task(retries=3, delay=2.0, backoff=2.0)
    def robust_task():
        # Will retry up to 3 times with exponential backoff
        return risky_operation()

    results = DAG("robust", tasks=[robust_task]).run(clock=clock)
    assert results == {"robust_task": "ok"}
    assert len(attempts) == 4
    # 2 s, 4 s, 8 s, each within the default jitter of ±10 %.
    for waited, base in zip(clock.sleeps, [2.0, 4.0, 8.0], strict=True):
        assert base * 0.9 <= waited <= base * 1.1


def _named(name: str, log: list[str]) -> Any:
    def body(*inputs: object) -> str:
        log.append(name)
        return name

    return task(name=name)(body)


def test_pipeline_operators_linear_chain() -> None:
    log: list[str] = []
    task1, task2, task3 = (_named(f"task{i}", log) for i in (1, 2, 3))
    # Linear chain
    task1 >> task2 >> task3
    dag = DAG("chain", max_workers=1)
    assert dag.run() == {"task1": "task1", "task2": "task2", "task3": "task3"}
    assert log == ["task1", "task2", "task3"]
    assert dag.to_workflow().get_dependencies("task3") == ["task2"]


def test_pipeline_operators_fan_out_and_fan_in() -> None:
    log: list[str] = []
    task1, task2, task3, task4 = (_named(f"task{i}", log) for i in (1, 2, 3, 4))
    # Branching (fan-out)
    task1 >> [task2, task3, task4]
    fan_out = DAG("fan-out").to_workflow()
    assert fan_out.get_dependents("task1") == ["task2", "task3", "task4"]

    # Merging (fan-in)
    [task1, task2] >> task3
    fan_in = DAG("fan-in").to_workflow()
    assert fan_in.get_dependencies("task3") == ["task1", "task2"]
    assert "task4" not in fan_in  # the fan-out above was claimed by its own DAG


def test_pipeline_operators_complex_pipeline() -> None:
    log: list[str] = []
    names = ["extract", "transform", "validate", "enrich", "load", "notify"]
    extract, transform, validate, enrich, load, notify = (_named(n, log) for n in names)
    # Complex pipeline
    extract >> transform >> [validate, enrich] >> load >> notify
    workflow = DAG("complex").to_workflow()
    assert [t.name for t in workflow] == names
    assert workflow.get_dependencies("load") == ["validate", "enrich"]
    assert workflow.get_dependencies("notify") == ["load"]


def test_dag_execution_on_threads_or_processes() -> None:
    fetch_data = authoring_tasks.fetch_data
    process_batch_1 = authoring_tasks.process_batch_1
    aggregate = authoring_tasks.add
    fetch_data >> process_batch_1
    [authoring_tasks.one, authoring_tasks.two] >> aggregate
    dag = DAG("my_workflow", max_workers=4)
    results = dag.run(executor="thread")  # or "process"
    assert results == {
        "fetch_data": range(1000), "process_batch_1": 55278, "one": 1, "two": 2, "add": 3,
    }  # fmt: skip
    assert dag.run(executor="process") == results


def test_keras_style_flow_api() -> None:
    @task()
    def fetch_user():
        return {"id": 1, "name": "Alice"}

    @task()
    def fetch_orders():
        return ["order1", "order2"]

    @task()
    def fetch_recommendations():
        return ["item1", "item2"]

    @task()
    def combine(fetch_user, fetch_orders, fetch_recommendations):
        return {
            "user": fetch_user,
            "orders": fetch_orders,
            "recommendations": fetch_recommendations,
        }

    # Build pipeline with method chaining
    pipeline = (
        Flow("user_pipeline", max_workers=5)
        .add(fetch_user)  # Start
        .branch(fetch_orders, fetch_recommendations)  # Parallel branches
        .merge(combine)  # Merge results
    )

    results = pipeline.run()

    assert results["combine"] == {
        "user": {"id": 1, "name": "Alice"},
        "orders": ["order1", "order2"],
        "recommendations": ["item1", "item2"],
    }
    workflow = pipeline.to_workflow()
    # merge() joins the two branches; the parameter named fetch_user adds that dependency.
    assert workflow.get_dependencies("combine") == [
        "fetch_orders", "fetch_recommendations", "fetch_user",
    ]  # fmt: skip
    assert workflow.get_dependencies("fetch_orders") == ["fetch_user"]


def test_retry_logic_delays_double_with_jitter(clock: FakeClock) -> None:
    requests = _Requests({"data": [1, 2]}, failures=5)

    @task(retries=5, delay=1.0, backoff=2.0)
    def flaky_api_call():
        response = requests.get("https://api.example.com/data")
        response.raise_for_status()
        return response.json()

    results = DAG("flaky", tasks=[flaky_api_call]).run(clock=clock)
    assert results == {"flaky_api_call": {"data": [1, 2]}}
    # Retry delays: 1s → 2s → 4s → 8s → 16s (with random jitter)
    for waited, base in zip(clock.sleeps, [1.0, 2.0, 4.0, 8.0, 16.0], strict=True):
        assert base * 0.9 <= waited <= base * 1.1


def test_conditional_execution() -> None:
    @task()
    def check_data():
        return 1500  # Some metric

    @task(when=lambda x: x > 1000)
    def handle_large_data(value):
        return f"Processing large dataset: {value}"

    @task(when=lambda x: x <= 1000)
    def handle_small_data(value):
        return f"Processing small dataset: {value}"

    check_data >> [handle_large_data, handle_small_data]

    dag = DAG("conditional")
    assert dag.run() == {
        "check_data": 1500,
        "handle_large_data": "Processing large dataset: 1500",
        "handle_small_data": None,
    }
    assert dag.last_run is not None
    assert dag.last_run.status("handle_small_data") is TaskStatus.SKIPPED


def test_branching_and_merging_positional_fan_in(executor: Any) -> None:
    def get_raw_data():
        return [1, 2, 3, 4]

    def process_method_a(data):
        return sum(data)

    def process_method_b(data):
        return max(data)

    def process_method_c(data):
        return len(data)

    def combine_results(result_a, result_b, result_c):
        return (result_a, result_b, result_c)

    @task()
    def fetch_data():
        return get_raw_data()

    @task()
    def process_a(data):
        return process_method_a(data)

    @task()
    def process_b(data):
        return process_method_b(data)

    @task()
    def process_c(data):
        return process_method_c(data)

    @task()
    def aggregate(data, result_a, result_b, result_c):
        return combine_results(result_a, result_b, result_c)

    # Fan-out to parallel processing, then fan-in
    fetch_data >> [process_a, process_b, process_c]
    [fetch_data, process_a, process_b, process_c] >> aggregate

    results = DAG("branching").run(executor=executor)
    assert results["aggregate"] == (10, 4, 4)


def test_etl_pipeline(capsys: pytest.CaptureFixture[str]) -> None:
    requests = _Requests([{"id": 1, "value": 5}, {"id": 2, "value": 7}], failures=1)
    inserted: list[object] = []
    emails: list[str] = []

    class _Db:
        def bulk_insert(self, rows: list[object]) -> None:
            inserted.extend(rows)

    db = _Db()
    datetime = _datetime.datetime

    def send_email(message):
        emails.append(message)

    @task(retries=3)
    def extract_from_api():
        """Extract data from API."""
        response = requests.get("https://api.example.com/data")
        return response.json()

    @task()
    def transform_data(raw_data):
        """Clean and transform data."""
        return [
            {"id": item["id"], "value": item["value"] * 2, "timestamp": datetime.now()}
            for item in raw_data
        ]

    @task()
    def load_to_database(transformed_data):
        """Load data into database."""
        db.bulk_insert(transformed_data)
        return f"Loaded {len(transformed_data)} records"

    @task()
    def send_notification(result):
        """Notify completion."""
        send_email(f"ETL completed: {result}")
        return "Notification sent"

    # Build pipeline
    extract_from_api >> transform_data >> load_to_database >> send_notification

    # Execute
    dag = DAG("etl_pipeline", max_workers=2)
    results = dag.run(clock=FakeClock())  # the clock only spares the test the 1 s back-off

    assert results["load_to_database"] == "Loaded 2 records"
    assert results["send_notification"] == "Notification sent"
    assert [row["value"] for row in inserted] == [10, 14]  # type: ignore[index]
    assert emails == ["ETL completed: Loaded 2 records"]
    assert requests.calls == 2  # the first call failed and was retried
    assert dag.last_run is not None and dag.last_run.attempts("extract_from_api") == 2


def _approval_workflow(size: int, **run: Any) -> tuple[DAG, dict[str, Any]]:
    """The seed's approval workflow, verbatim, with ``fetch_data_size`` returning ``size``
    (and ``run`` passed to ``dag.run()``, for the every-executor test)."""

    def fetch_data_size():
        return size

    @task()
    def extract():
        return fetch_data_size()

    @task()
    def transform(data_size):
        return data_size * 2

    @task(when=lambda x: x > 2000)
    def require_manual_approval(size):
        """Large datasets need approval."""
        print(f"Large dataset ({size}) - manual approval required")
        return "MANUAL_APPROVAL"

    @task(when=lambda x: x <= 2000)
    def auto_approve(size):
        """Small datasets auto-approved."""
        print(f"Small dataset ({size}) - auto-approved")
        return "AUTO_APPROVED"

    @task()
    def load(transform_result, manual=None, auto=None):
        approval = manual or auto
        print(f"Loading {transform_result} with {approval}")
        return f"LOADED_{approval}"

    # Build conditional pipeline
    extract >> transform
    transform >> [require_manual_approval, auto_approve]
    [transform, require_manual_approval, auto_approve] >> load

    # Execute
    dag = DAG("approval_workflow")
    results = dag.run(**run)
    return dag, results


def test_approval_workflow_large_dataset(capsys: pytest.CaptureFixture[str]) -> None:
    dag, results = _approval_workflow(1500)
    assert results == {
        "extract": 1500,
        "transform": 3000,
        "require_manual_approval": "MANUAL_APPROVAL",
        "auto_approve": None,
        "load": "LOADED_MANUAL_APPROVAL",
    }
    assert capsys.readouterr().out == (
        "Large dataset (3000) - manual approval required\nLoading 3000 with MANUAL_APPROVAL\n"
    )
    assert dag.last_run is not None
    assert dag.last_run.status("auto_approve") is TaskStatus.SKIPPED
    assert dag.last_run.status("load") is TaskStatus.COMPLETED


def test_approval_workflow_small_dataset_on_every_executor(
    executor: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    _, results = _approval_workflow(500, executor=executor)
    assert results == {
        "extract": 500,
        "transform": 1000,
        "require_manual_approval": None,
        "auto_approve": "AUTO_APPROVED",
        "load": "LOADED_AUTO_APPROVED",
    }
    assert capsys.readouterr().out == (
        "Small dataset (1000) - auto-approved\nLoading 1000 with AUTO_APPROVED\n"
    )


def test_parallel_processing_verbatim(executor: Any) -> None:
    @task()
    def fetch_data():
        """Fetch initial dataset."""
        return range(1000)

    @task()
    def process_batch_1(data):
        """Process first batch."""
        return sum(list(data)[:333])

    @task()
    def process_batch_2(data):
        """Process second batch."""
        return sum(list(data)[333:666])

    @task()
    def process_batch_3(data):
        """Process third batch."""
        return sum(list(data)[666:])

    @task()
    def aggregate_results(data, b1, b2, b3):
        """Combine all results."""
        total = b1 + b2 + b3
        return f"Total: {total}"

    # Parallel processing pipeline
    fetch_data >> [process_batch_1, process_batch_2, process_batch_3]
    [fetch_data, process_batch_1, process_batch_2, process_batch_3] >> aggregate_results

    # Execute with parallel workers
    dag = DAG("parallel_processing", max_workers=3)
    results = dag.run(executor="thread")

    assert results["aggregate_results"] == "Total: 499500"
    assert dag.run(executor=executor) == results


@pytest.mark.parametrize("executor", ["thread", "process"])
def test_parallel_processing_with_module_level_tasks(executor: str) -> None:
    # The same example with the tasks defined in a module, so that "process" can pickle them
    # (the seed's own implementation cannot: its decorator shadows the functions).
    fetch_data = authoring_tasks.fetch_data
    process_batch_1 = authoring_tasks.process_batch_1
    process_batch_2 = authoring_tasks.process_batch_2
    process_batch_3 = authoring_tasks.process_batch_3
    aggregate_results = authoring_tasks.aggregate_results

    # Parallel processing pipeline
    fetch_data >> [process_batch_1, process_batch_2, process_batch_3]
    [fetch_data, process_batch_1, process_batch_2, process_batch_3] >> aggregate_results

    # Execute with parallel workers
    dag = DAG("parallel_processing", max_workers=3)
    results = dag.run(executor=executor)
    assert results == {
        "fetch_data": range(1000),
        "process_batch_1": 55278,
        "process_batch_2": 166167,
        "process_batch_3": 278055,
        "aggregate_results": "Total: 499500",
    }


def test_api_reference_signatures_and_defaults() -> None:
    dag, flow = DAG(), Flow()
    assert (dag.name, dag.max_workers, flow.name, flow.max_workers) == (
        "workflow", None, "flow", None,
    )  # fmt: skip

    @task()
    def t():
        return random.random()

    assert (t.retries, t.delay, t.backoff, t.when) == (0, 1.0, 2.0, None)
    assert isinstance(DAG("v", tasks=[t]).visualize(), str)
    assert isinstance(Flow("v").add(t).visualize(), str)


def test_failures_raise_runtime_error_with_every_failed_task() -> None:
    @task()
    def broken():
        raise ValueError("nope")

    @task()
    def after(broken):
        return broken

    broken >> after
    with pytest.raises(RuntimeError) as info:
        DAG("failing").run()
    assert isinstance(info.value, WorkflowFailedError)
    assert (
        str(info.value) == "workflow 'failing' failed: 1 task failed ('broken') (1 sub-exception)"
    )
    assert [f.task_name for f in info.value.failures] == ["broken"]
