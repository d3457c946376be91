# The seeds' code is kept as written, including what the linter would tidy.
# ruff: noqa: RET504, PERF401, F841
# The seeds' functions are unannotated, so their own calls (`asyncio.run(main())`) are too.
# mypy: disable-error-code="no-untyped-call"
"""Every example of the AntFlow seeds (000 README, 001 Pipeline guide, 002 API reference) runs
against flowweaver with only the import changed.

Each example's code is kept as written. Fragments that use top-level ``await`` are wrapped in an
``async def``; helpers the seeds leave undefined (``my_task``, ``items``, ``stage``, …) get small
stand-ins, marked ``# stand-in``. Examples that wait between retries run on a fake clock
(``fast_retries``) so the suite does not sleep; their code is unchanged.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import flowweaver._pipeline
from flowweaver import Pipeline, Stage, StatusTracker, TaskEvent

from .conftest import FakeClock, run


@pytest.fixture
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pipelines built without a clock wait on a fake one (retry waits become instant)."""
    monkeypatch.setattr(flowweaver._pipeline, "SystemClock", FakeClock)


# -- 000: the AntFlow README ------------------------------------------------------------------


def test_readme_quick_example() -> None:
    # Your actual work
    async def upload_batch(batch_data):  # type: ignore[no-untyped-def]
        # Upload to OpenAI API
        return "batch_id"

    async def check_status(batch_id):  # type: ignore[no-untyped-def]
        # Check if batch is ready
        return "result_url"

    async def download_results(result_url):  # type: ignore[no-untyped-def]
        # Download processed data
        return "processed_data"

    async def save_to_db(processed_data):  # type: ignore[no-untyped-def]
        # Save results
        return "saved"

    # Build the pipeline
    upload_stage = Stage(name="Upload", workers=10, tasks=[upload_batch])
    check_stage = Stage(name="Check", workers=10, tasks=[check_status])
    download_stage = Stage(name="Download", workers=10, tasks=[download_results])
    save_stage = Stage(name="Save", workers=5, tasks=[save_to_db])

    pipeline = Pipeline(stages=[upload_stage, check_stage, download_stage, save_stage])

    async def example() -> Any:
        # Process batches efficiently
        batches = ["batch1", "batch2", "batch3"]
        results = await pipeline.run(batches)
        return results

    results = run(example())
    assert [(r.id, r.value) for r in results] == [(0, "saved"), (1, "saved"), (2, "saved")]


def test_readme_async_executor_map(capsys: pytest.CaptureFixture[str]) -> None:
    from flowweaver import AsyncExecutor

    async def process_item(x):  # type: ignore[no-untyped-def]
        await asyncio.sleep(0.1)
        return x * 2

    async def main():  # type: ignore[no-untyped-def]
        async with AsyncExecutor(max_workers=10) as executor:
            # Using map() for parallel processing
            results = []
            async for result in executor.map(process_item, range(100)):
                results.append(result)
            print(f"Processed {len(results)} items")
            assert results == [x * 2 for x in range(100)]  # ours: in input order

    asyncio.run(main())
    assert capsys.readouterr().out == "Processed 100 items\n"


def test_readme_multi_stage_pipeline(capsys: pytest.CaptureFixture[str]) -> None:
    async def fetch(x):  # type: ignore[no-untyped-def]
        await asyncio.sleep(0.1)
        return f"data_{x}"

    async def process(x):  # type: ignore[no-untyped-def]
        await asyncio.sleep(0.1)
        return x.upper()

    async def save(x):  # type: ignore[no-untyped-def]
        await asyncio.sleep(0.1)
        return f"saved_{x}"

    async def main():  # type: ignore[no-untyped-def]
        # Define stages with different worker counts
        fetch_stage = Stage(name="Fetch", workers=10, tasks=[fetch])
        process_stage = Stage(name="Process", workers=5, tasks=[process])
        save_stage = Stage(name="Save", workers=3, tasks=[save])

        # Build pipeline
        pipeline = Pipeline(stages=[fetch_stage, process_stage, save_stage])

        # Process 100 items through all stages
        results = await pipeline.run(range(100))

        print(f"Completed: {len(results)} items")
        print(f"Stats: {pipeline.get_stats()}")
        return results

    results = asyncio.run(main())
    assert [r.value for r in results] == [f"saved_DATA_{i}" for i in range(100)]
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "Completed: 100 items"
    assert out[1].startswith("Stats: PipelineStats(items_processed=100, items_failed=0, ")


def test_readme_status_tracker(capsys: pytest.CaptureFixture[str]) -> None:
    # Mock tasks
    async def fetch(x):  # type: ignore[no-untyped-def]
        return x

    async def process(x):  # type: ignore[no-untyped-def]
        return x * 2

    async def save(x):  # type: ignore[no-untyped-def]
        return x

    # 1. Define a callback for real-time updates
    async def log_event(event):  # type: ignore[no-untyped-def]
        print(f"Item {event.item_id}: {event.status} @ {event.stage}")

    tracker = StatusTracker(on_status_change=log_event)

    # Define stages
    stage1 = Stage(name="Fetch", workers=5, tasks=[fetch])
    stage2 = Stage(name="Process", workers=3, tasks=[process])
    stage3 = Stage(name="Save", workers=5, tasks=[save])

    pipeline = Pipeline(stages=[stage1, stage2, stage3], status_tracker=tracker)

    histories = []

    # 2. Run pipeline (logs will print in real-time)
    async def main():  # type: ignore[no-untyped-def]
        items = range(50)
        results = await pipeline.run(items)

        # 3. Get final statistics
        stats = tracker.get_stats()
        print(f"Completed: {stats['completed']}")
        print(f"Failed: {stats['failed']}")

        # Get full history for an item
        history = tracker.get_history(item_id=0)
        histories.append(history)  # (the test's probe)

    asyncio.run(main())
    out = capsys.readouterr().out.splitlines()
    assert out[-2:] == ["Completed: 50", "Failed: 0"]
    assert "Item 0: queued @ Fetch" in out
    assert "Item 49: completed @ Save" in out
    assert len(out) == 50 * 9 + 2  # queued, in_progress, completed in each of three stages
    assert [(e.stage, e.status) for e in histories[0]] == [
        (stage, status)
        for stage in ("Fetch", "Process", "Save")
        for status in ("queued", "in_progress", "completed")
    ]


# -- 001: the Pipeline guide --------------------------------------------------------------------


def test_guide_simple_pipeline() -> None:
    async def fetch(x):  # type: ignore[no-untyped-def]
        return f"data_{x}"

    async def process(x):  # type: ignore[no-untyped-def]
        return x.upper()

    # Define stages
    fetch_stage = Stage(name="Fetch", workers=3, tasks=[fetch])
    process_stage = Stage(name="Process", workers=2, tasks=[process])

    # Create pipeline
    pipeline = Pipeline(stages=[fetch_stage, process_stage])

    async def example() -> Any:
        # Run pipeline
        results = await pipeline.run(range(10))
        return results

    assert [r.value for r in run(example())] == [f"DATA_{i}" for i in range(10)]


def test_guide_multiple_tasks_per_stage() -> None:
    async def validate(x):  # type: ignore[no-untyped-def]
        if x < 0:
            raise ValueError("Negative value")
        return x

    async def transform(x):  # type: ignore[no-untyped-def]
        return x * 2

    async def format_output(x):  # type: ignore[no-untyped-def]
        return f"Result: {x}"

    stage = Stage(name="ProcessStage", workers=3, tasks=[validate, transform, format_output])

    async def example() -> Any:
        pipeline = Pipeline(stages=[stage])
        results = await pipeline.run(range(10))
        return results

    assert [r.value for r in run(example())] == [f"Result: {2 * i}" for i in range(10)]


def test_guide_per_task_and_per_stage_retry_stages(fast_retries: None) -> None:
    calls: list[str] = []

    async def fetch_from_api(x: int) -> int:  # stand-in: fails once
        calls.append(f"fetch {x}")
        if calls.count(f"fetch {x}") == 1:
            raise ConnectionError("flaky")
        return x

    async def begin_transaction(x: int) -> int:  # stand-in
        calls.append(f"begin {x}")
        return x

    async def update_db(x: int) -> int:  # stand-in: fails on first pass
        if calls.count(f"begin {x}") == 1:
            raise OSError("deadlock")
        return x

    async def commit(x: int) -> int:  # stand-in
        return x

    stage = Stage(
        name="FetchStage",
        workers=5,
        tasks=[fetch_from_api],
        retry="per_task",
        task_attempts=3,
        task_wait_seconds=1.0,
    )
    stage2 = Stage(
        name="TransactionStage",
        workers=2,
        tasks=[begin_transaction, update_db, commit],
        retry="per_stage",
        stage_attempts=3,
    )
    results = run(Pipeline(stages=[stage, stage2]).run([1, 2]))
    assert [r.value for r in results] == [1, 2]
    assert (
        sorted(calls)
        == ["begin 1", "begin 1", "begin 2", "begin 2"] + ["fetch 1"] * 2 + ["fetch 2"] * 2
    )


def test_guide_basic_status_tracking(capsys: pytest.CaptureFixture[str]) -> None:
    async def my_task(x: int) -> int:  # stand-in
        return x

    items = range(7)  # stand-in

    async def example() -> None:
        tracker = StatusTracker()

        stage = Stage(name="ProcessStage", workers=3, tasks=[my_task])

        pipeline = Pipeline(stages=[stage], status_tracker=tracker)
        results = await pipeline.run(items)

        # Query statistics
        stats = tracker.get_stats()
        print(f"Completed: {stats['completed']}")
        print(f"Failed: {stats['failed']}")
        assert len(results) == 7

    run(example())
    assert capsys.readouterr().out == "Completed: 7\nFailed: 0\n"


def test_guide_real_time_event_monitoring(capsys: pytest.CaptureFixture[str]) -> None:
    async def flaky(x: int) -> int:  # stand-in
        if x == 1:
            raise ValueError("bad item")
        return x

    stage = Stage(name="S", workers=1, tasks=[flaky], task_attempts=1)  # stand-in

    async def on_status_change(event):  # type: ignore[no-untyped-def]
        print(f"{event.status.upper()}: Item {event.item_id} @ {event.stage}")

        if event.status == "failed":
            print(f"  Error: {event.metadata.get('error')}")
        elif event.status == "in_progress":
            print(f"  Worker: {event.worker}")

    tracker = StatusTracker(on_status_change=on_status_change)
    pipeline = Pipeline(stages=[stage], status_tracker=tracker)

    run(pipeline.run([0, 1]))  # (the guide stops before running it)
    assert capsys.readouterr().out.splitlines() == [
        "QUEUED: Item 0 @ S",
        "QUEUED: Item 1 @ S",
        "IN_PROGRESS: Item 0 @ S",
        "  Worker: S-W0",
        "COMPLETED: Item 0 @ S",
        "IN_PROGRESS: Item 1 @ S",
        "  Worker: S-W0",
        "FAILED: Item 1 @ S",
        "  Error: bad item",
    ]


def test_guide_task_level_event_monitoring(
    capsys: pytest.CaptureFixture[str], fast_retries: None
) -> None:
    alerts: list[str] = []

    async def send_critical_alert(message: str) -> None:  # stand-in
        alerts.append(message)

    def handle_success(item_id: object, value: object, metadata: object) -> None:  # stand-in
        alerts.append(f"ok {item_id}")

    def handle_failure(item_id: object, error: object, metadata: object) -> None:  # stand-in
        alerts.append(f"failed {item_id}: {error}")

    async def extract(x: int) -> int:  # stand-in
        return x

    async def transform(x: int) -> int:  # stand-in
        return x

    async def validate(x: int) -> int:  # stand-in
        if x == 2:
            raise ValueError("invalid")
        return x

    async def save(x: int) -> int:  # stand-in
        return x

    async def on_task_retry(event: TaskEvent):  # type: ignore[no-untyped-def]
        print(f"⚠️  Task {event.task_name} retry #{event.attempt}")
        print(f"   Item: {event.item_id}, Error: {event.error}")

    async def on_task_fail(event: TaskEvent):  # type: ignore[no-untyped-def]
        print(f"❌ Task {event.task_name} FAILED after {event.attempt} attempts")

        if event.task_name == "save_to_database":
            await send_critical_alert(f"Database save failed for {event.item_id}")

    tracker = StatusTracker(
        # Limit specific tasks (e.g., API calls) to avoid rate limits
        task_concurrency_limits={
            "fetch_data": 5,  # Max 5 concurrent fetch_data calls
            "process_data": 20,  # Max 20 concurrent process_data calls
        },
        on_success=handle_success,
        on_failure=handle_failure,
    )
    # (the guide defines the task hooks above; attach them, as its prose says)
    tracker.on_task_retry = on_task_retry
    tracker.on_task_fail = on_task_fail

    stage = Stage(
        name="ETL",
        tasks=[extract, transform, validate, save],  # Multiple tasks
        retry="per_task",
        task_attempts=3,
    )

    pipeline = Pipeline(stages=[stage], status_tracker=tracker)
    results = run(pipeline.run([1, 2]))
    assert [r.value for r in results] == [1]
    assert capsys.readouterr().out.splitlines() == [
        "⚠️  Task validate retry #1",
        "   Item: 1, Error: invalid",
        "⚠️  Task validate retry #2",
        "   Item: 1, Error: invalid",
        "❌ Task validate FAILED after 3 attempts",
    ]
    assert alerts == ["ok 0", "failed 1: invalid"]


def test_guide_task_concurrency_limits_stage() -> None:
    async def extract(x: int) -> int:  # stand-in
        return x

    async def transform(x: int) -> int:  # stand-in
        return x + 1

    async def validate(x: int) -> int:  # stand-in
        return x

    async def save(x: int) -> int:  # stand-in
        return x

    tracker = StatusTracker()  # stand-in
    stage = Stage(
        name="ETL",
        tasks=[extract, transform, validate, save],
        retry="per_task",
        task_attempts=3,
        # Limit specific tasks (e.g., API calls) to avoid rate limits
        task_concurrency_limits={
            "extract": 5,  # Max 5 concurrent extract calls
            "save": 20,  # Max 20 concurrent save calls
        },
    )

    pipeline = Pipeline(stages=[stage], status_tracker=tracker)
    assert [r.value for r in run(pipeline.run(range(3)))] == [1, 2, 3]


def test_guide_query_item_status(capsys: pytest.CaptureFixture[str]) -> None:
    async def task(x: int) -> int:  # stand-in: every 10th item fails
        if x % 10 == 3:
            raise ValueError(f"bad {x}")
        return x

    tracker = StatusTracker()  # stand-in
    pipeline = Pipeline([Stage("S", 4, [task], task_attempts=1)], status_tracker=tracker)
    run(pipeline.run(range(50)))  # stand-in

    # Get specific item status
    status = tracker.get_status(item_id=42)
    print(f"Item 42: {status.status} @ {status.stage}")  # type: ignore[union-attr]

    # Get all failed items
    failed = tracker.get_by_status("failed")
    for event in failed:
        print(f"Item {event.item_id}: {event.metadata['error']}")

    # Get item history
    history = tracker.get_history(item_id=42)
    for event in history:
        print(f"{event.timestamp}: {event.status}")

    out = capsys.readouterr().out.splitlines()
    assert out[0] == "Item 42: completed @ S"
    assert out[1:6] == [f"Item {i}: bad {i}" for i in (3, 13, 23, 33, 43)]
    assert [line.split(": ")[1] for line in out[6:]] == ["queued", "in_progress", "completed"]


def test_guide_order_preservation() -> None:
    async def slow_first(x: int) -> int:  # stand-in: early items finish last
        await asyncio.sleep(0.001 * (10 - x))
        return x

    stage1 = Stage("A", 10, [slow_first])  # stand-in
    stage2 = Stage("B", 3, [slow_first])  # stand-in
    items = list(range(10))  # stand-in

    async def example() -> Any:
        pipeline = Pipeline(stages=[stage1, stage2])
        results = await pipeline.run(items)
        # Results maintain input order
        return results

    assert [r.value for r in run(example())] == items


def test_guide_monitoring_with_callbacks(capsys: pytest.CaptureFixture[str]) -> None:
    async def double(x: int) -> int:  # stand-in
        return 2 * x

    items = [5]  # stand-in

    async def example() -> None:
        async def on_status_change(event):  # type: ignore[no-untyped-def]
            # React immediately to status changes
            print(f"Item {event.item_id} is now {event.status}")

        tracker = StatusTracker(on_status_change=on_status_change)
        pipeline = Pipeline(stages=[Stage("S", 1, [double])], status_tracker=tracker)  # [...]
        await pipeline.run(items)

    run(example())
    assert capsys.readouterr().out.splitlines() == [
        "Item 0 is now queued",
        "Item 0 is now in_progress",
        "Item 0 is now completed",
    ]


def test_guide_monitoring_by_polling(capsys: pytest.CaptureFixture[str]) -> None:
    # As written, this example never ends: monitor_loop is `while True` inside the TaskGroup.
    # It runs verbatim here until the pipeline is done; then the test cancels it.
    async def double(x: int) -> int:  # stand-in
        return 2 * x

    pipeline = Pipeline([Stage("S", 2, [double])])  # stand-in
    items = range(20)  # stand-in
    done: list[Any] = []

    async def example() -> None:
        async def monitor_loop(pipeline):  # type: ignore[no-untyped-def]
            while True:
                # Poll current state every second
                stats = pipeline.get_stats()
                print(f"Processed: {stats.items_processed}, In-Flight: {stats.items_in_flight}")
                await asyncio.sleep(1.0)

        async with asyncio.TaskGroup() as tg:
            tg.create_task(monitor_loop(pipeline))
            done.append(await pipeline.run(items))

    async def main() -> None:
        task = asyncio.ensure_future(example())
        while not done:
            await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(main())
    assert len(done[0]) == 20
    # One poll happened (the next was a second away): the 20 items were all fed by then.
    assert capsys.readouterr().out == "Processed: 0, In-Flight: 20\n"


def test_guide_feeding_sync_and_async_iterables() -> None:
    async def ident(x: int) -> int:  # stand-in
        return x

    pipeline = Pipeline([Stage("S", 3, [ident])])  # stand-in

    async def example() -> Any:
        items = list(range(100))
        results = await pipeline.run(items)
        assert [r.value for r in results] == items

        async def data_generator():  # type: ignore[no-untyped-def]
            for i in range(100):
                await asyncio.sleep(0.01)
                yield i

        await pipeline.feed_async(data_generator())
        await pipeline.join()  # (the guide stops at the feed; join to see the results)
        return pipeline.results

    assert [r.value for r in run(example())] == list(range(100))


def test_guide_dict_input() -> None:
    async def greet(user: dict[str, str]) -> str:  # stand-in
        return f"hello {user['name']}"

    pipeline = Pipeline([Stage("Greet", 2, [greet])])  # stand-in

    async def example() -> Any:
        items = [
            {"id": "user_1", "value": {"name": "Alice"}},
            {"id": "user_2", "value": {"name": "Bob"}},
        ]
        results = await pipeline.run(items)
        return results

    results = run(example())
    assert [(r.id, r.value) for r in results] == [
        ("user_1", "hello Alice"),
        ("user_2", "hello Bob"),
    ]


def test_guide_context_manager() -> None:
    async def inc(x: int) -> int:  # stand-in
        return x + 1

    stage1, stage2 = Stage("A", 2, [inc]), Stage("B", 2, [inc])  # stand-in
    items = [1, 2, 3]  # stand-in

    async def example() -> Any:
        async with Pipeline(stages=[stage1, stage2]) as pipeline:
            results = await pipeline.run(items)
        # Pipeline is automatically shut down
        return results

    assert [r.value for r in run(example())] == [3, 4, 5]


def test_guide_error_handling_with_tracker(
    capsys: pytest.CaptureFixture[str], fast_retries: None
) -> None:
    async def risky_task(x: int) -> int:  # stand-in: 3 and 5 always fail
        if x in (3, 5):
            raise RuntimeError(f"cannot handle {x}")
        return x

    items = range(8)  # stand-in

    async def example() -> None:
        tracker = StatusTracker()

        stage = Stage(
            name="RiskyStage", workers=3, tasks=[risky_task], retry="per_task", task_attempts=3
        )

        pipeline = Pipeline(stages=[stage], status_tracker=tracker)
        results = await pipeline.run(items)

        # Get statistics
        stats = tracker.get_stats()
        print(f"Succeeded: {stats['completed']}")
        print(f"Failed: {stats['failed']}")

        # Get failed items
        failed_items = tracker.get_by_status("failed")
        for event in failed_items:
            print(f"Item {event.item_id}: {event.metadata['error']}")
        assert len(results) == 6

    run(example())
    assert capsys.readouterr().out.splitlines() == [
        "Succeeded: 6",
        "Failed: 2",
        "Item 3: cannot handle 3",
        "Item 5: cannot handle 5",
    ]


def test_guide_extracting_error_information(capsys: pytest.CaptureFixture[str]) -> None:
    async def boom(x: int) -> int:  # stand-in
        raise KeyError("missing")

    async def on_status_change(event):  # type: ignore[no-untyped-def]
        if event.status == "failed":
            error = event.metadata.get("error")
            print(f"Item {event.item_id} failed: {error}")

    tracker = StatusTracker(on_status_change=on_status_change)
    run(Pipeline([Stage("S", 1, [boom], task_attempts=1)], status_tracker=tracker).run([0]))
    assert capsys.readouterr().out == "Item 0 failed: 'missing'\n"


def test_guide_worker_level_tracking(capsys: pytest.CaptureFixture[str]) -> None:
    async def ident(x: str) -> str:  # stand-in
        return x

    stage = Stage("Work", 1, [ident])  # stand-in

    async def on_status_change(event):  # type: ignore[no-untyped-def]
        if event.status == "in_progress":
            print(f"Worker {event.worker_id}: processing {event.item_id}")
        elif event.status == "completed":
            print(f"Worker {event.worker_id}: completed {event.item_id}")

    tracker = StatusTracker(on_status_change=on_status_change)
    pipeline = Pipeline(stages=[stage], status_tracker=tracker)

    worker_names = pipeline.get_worker_names()
    assert worker_names == {"Work": ["Work-W0"]}
    run(pipeline.run(["a"]))
    assert capsys.readouterr().out == "Worker 0: processing 0\nWorker 0: completed 0\n"


def test_guide_complete_etl_example(capsys: pytest.CaptureFixture[str]) -> None:
    class ETLProcessor:
        async def extract(self, item_id):  # type: ignore[no-untyped-def]
            # Fetch from API/database
            await asyncio.sleep(0.1)
            return {"id": item_id, "data": f"raw_{item_id}"}

        async def validate(self, data):  # type: ignore[no-untyped-def]
            # Validate data
            if "data" not in data:
                raise ValueError("Invalid data")
            return data

        async def transform(self, data):  # type: ignore[no-untyped-def]
            # Transform data
            data["processed"] = data["data"].upper()
            return data

        async def enrich(self, data):  # type: ignore[no-untyped-def]
            # Enrich with additional data
            data["metadata"] = {"timestamp": "2025-10-09"}
            return data

        async def load(self, data):  # type: ignore[no-untyped-def]
            # Save to database
            await asyncio.sleep(0.1)
            data["saved"] = True
            return data

    async def main():  # type: ignore[no-untyped-def]
        processor = ETLProcessor()

        # Extract stage with high concurrency
        extract_stage = Stage(
            name="Extract",
            workers=10,
            tasks=[processor.extract],
            retry="per_task",
            task_attempts=5,
            task_wait_seconds=2.0,
        )

        # Transform stage with validation
        transform_stage = Stage(
            name="Transform",
            workers=5,
            tasks=[processor.validate, processor.transform, processor.enrich],
            retry="per_stage",  # Transactional
            stage_attempts=3,
        )

        # Load stage with retries
        load_stage = Stage(
            name="Load",
            workers=3,
            tasks=[processor.load],
            retry="per_task",
            task_attempts=5,
            task_wait_seconds=3.0,
        )

        # Build pipeline
        pipeline = Pipeline(stages=[extract_stage, transform_stage, load_stage])

        # Process items
        item_ids = range(100)
        results = await pipeline.run(item_ids)

        print(f"Processed {len(results)} items")
        print(f"Stats: {pipeline.get_stats()}")
        return results

    results = asyncio.run(main())
    assert results[7].value == {
        "id": 7, "data": "raw_7", "processed": "RAW_7",
        "metadata": {"timestamp": "2025-10-09"}, "saved": True,
    }  # fmt: skip
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "Processed 100 items"
    assert out[1].startswith("Stats: PipelineStats(items_processed=100, items_failed=0, ")


# -- 002: the API reference ------------------------------------------------------------------


def test_api_usage_example(capsys: pytest.CaptureFixture[str]) -> None:
    async def fetch_data(url):  # type: ignore[no-untyped-def]
        # ... fetch logic ...
        data = f"<html of {url}>"  # stand-in
        return data

    async def process_data(data):  # type: ignore[no-untyped-def]
        # ... process logic ...
        result = len(data)  # stand-in
        return result

    async def main():  # type: ignore[no-untyped-def]
        # Define stages
        stage1 = Stage(name="Fetch", workers=5, tasks=[fetch_data])
        stage2 = Stage(name="Process", workers=2, tasks=[process_data])
        # Create pipeline
        pipeline = Pipeline(stages=[stage1, stage2])
        # Run
        urls = ["http://example.com/1", "http://example.com/2"]
        results = await pipeline.run(urls)
        for result in results:
            print(f"ID: {result.id}, Value: {result.value}")

    asyncio.run(main())
    assert capsys.readouterr().out == "ID: 0, Value: 30\nID: 1, Value: 30\n"


def test_api_get_worker_names() -> None:
    async def fetch(x: int) -> int:  # stand-in
        return x

    async def process(x: int) -> int:  # stand-in
        return x

    pipeline = Pipeline(
        stages=[
            Stage(name="Fetch", workers=3, tasks=[fetch]),
            Stage(name="Process", workers=2, tasks=[process]),
        ]
    )
    assert pipeline.get_worker_names() == {
        "Fetch": ["Fetch-W0", "Fetch-W1", "Fetch-W2"],
        "Process": ["Process-W0", "Process-W1"],
    }


def test_api_run_with_displays(capsys: pytest.CaptureFixture[str]) -> None:
    class MyDashboard:  # stand-in
        def __init__(self) -> None:
            self.calls: list[str] = []

        def on_start(self, pipeline: Any, total_items: int | None) -> None:
            self.calls.append(f"start {total_items}")

        def on_update(self, snapshot: Any) -> None:
            self.calls.append(f"update {snapshot.pipeline_stats.items_processed}")

        def on_finish(self, results: Any, summary: Any) -> None:
            self.calls.append(f"finish {len(results)} {summary.total_failed}")

    async def double(x: int) -> int:  # stand-in
        return 2 * x

    pipeline = Pipeline([Stage("S", 2, [double])])  # stand-in
    items = list(range(5))  # stand-in
    dashboard = MyDashboard()

    async def example() -> None:
        # Simple progress bar
        results = await pipeline.run(items, progress=True)

        # Compact dashboard with faster updates
        results = await pipeline.run(items, dashboard="compact", dashboard_update_interval=0.2)

        # Custom dashboard with slower updates (lower CPU usage)
        results = await pipeline.run(
            items, custom_dashboard=dashboard, dashboard_update_interval=1.0
        )
        assert [r.value for r in results] == [0, 2, 4, 6, 8]

    run(example())
    assert dashboard.calls == ["start 5", "update 5", "finish 5 0"]
    err = capsys.readouterr().err.splitlines()
    # progress=True: the progress line (stderr is not a terminal: plain lines, the last one
    # at the end); dashboard="compact": the last frame, then a summary line.
    assert err[0].startswith("pipeline  [########################]  5/5 100%  ")
    assert "flowweaver pipeline: S" in err[1]
    assert any("5/5  100%" in line for line in err)
    assert any(
        "ok 5 failed 0 in flight 0 queued 0 remaining 0" in " ".join(line.split()) for line in err
    )
    assert err[-1].startswith("pipeline finished in ")
    assert err[-1].endswith(" s: 5 succeeded, 0 failed")
