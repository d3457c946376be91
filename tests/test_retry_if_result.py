"""``retry_if_result``: a returned value that counts as a failure, on tasks, stages and the
async pool — one rule (``RetryPolicy.decide``) for values and exceptions."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from flowweaver import (
    AsyncExecutor,
    ConfigurationError,
    Pipeline,
    RejectedResultError,
    RetryPolicy,
    SequentialExecutor,
    Stage,
    StageValidationError,
    Task,
    Workflow,
    WorkflowFailedError,
    task,
)

from .conftest import FakeClock, Recorder, run
from .conftest import execute as execute_on


def is_throttled(response: dict[str, int]) -> bool:
    return response["status"] == 429


def always_throttled() -> dict[str, int]:
    return {"status": 429}


def flaky_response(calls: Recorder) -> dict[str, int]:
    """429, 429, then 200: what an HTTP client returns instead of raising."""
    calls("call")
    return {"status": 429 if calls.count("call") < 3 else 200}


def test_the_policy_retries_a_rejected_result_whatever_retry_on_and_retry_if_say() -> None:
    policy = RetryPolicy(
        retries=2, delay=1.0, jitter=0.0, retry_on=(KeyError,), retry_if=lambda e: False,
        retry_if_result=is_throttled,
    )  # fmt: skip
    rejected = RejectedResultError("fetch", {"status": 429})
    assert policy.decide(rejected, 1) == (1.0, rejected)
    assert policy.decide(rejected, 3) == (None, rejected)  # no attempt left: it is the failure
    assert policy.decide(OSError("not in retry_on"), 1)[0] is None


def test_a_rejected_result_names_the_task_and_the_value() -> None:
    error = RejectedResultError("fetch", {"status": 429})
    assert str(error) == "task 'fetch' returned a result counted as a failure: {'status': 429}"
    assert (error.task_name, error.value) == ("fetch", {"status": 429})
    assert isinstance(error, RuntimeError)
    long = str(RejectedResultError("t", "x" * 1000))
    assert long.endswith("...") and len(long) < 300


@pytest.mark.in_process("the task counts its calls in a Recorder shared with the test")
def test_a_task_retries_a_result_that_counts_as_a_failure(executor: Any, clock: FakeClock) -> None:
    calls = Recorder()
    wf = Workflow("w")
    wf.add_task(Task(name="fetch", fn=lambda: flaky_response(calls), retries=3, delay=1.0,
                     jitter=0.0, retry_if_result=is_throttled))  # fmt: skip
    assert execute_on(executor, wf, clock=clock).result("fetch") == {"status": 200}
    assert (calls.count("call"), clock.sleeps) == (3, [1.0, 2.0])


def test_the_last_rejected_result_is_the_failure_even_across_processes(any_executor: Any) -> None:
    wf = Workflow("w")
    wf.add_task(Task(name="fetch", fn=always_throttled, retries=2, delay=0.0,
                     retry_if_result=is_throttled))  # fmt: skip
    with pytest.raises(WorkflowFailedError) as caught:
        execute_on(any_executor, wf)
    (failure,) = caught.value.failures
    assert failure.attempts == 3
    cause = failure.__cause__
    assert isinstance(cause, RejectedResultError)
    assert (cause.task_name, cause.value) == ("fetch", {"status": 429})


def test_retry_after_can_read_the_rejected_value(clock: FakeClock) -> None:
    calls = Recorder()

    def fetch() -> dict[str, int]:
        calls("call")
        return {"status": 429 if calls.count("call") == 1 else 200, "retry_after": 7}

    wf = Workflow("w")
    wf.add_task(Task(name="fetch", fn=fetch, retries=1, delay=1.0, jitter=0.0,
                     retry_if_result=is_throttled,
                     retry_after=lambda e: e.value["retry_after"]))  # type: ignore[attr-defined]  # fmt: skip
    assert wf.execute(clock=clock).result("fetch")["status"] == 200
    assert clock.sleeps == [7.0]


@pytest.mark.parametrize("make", [SequentialExecutor, AsyncExecutor])
def test_async_functions_and_returned_awaitables_are_judged_once_awaited(make: Any) -> None:
    calls = Recorder()

    async def fetch() -> int:
        calls("async")
        return -1 if calls.count("async") == 1 else 1

    async def later() -> int:
        calls("later")
        return -1 if calls.count("later") == 1 else 2

    wf = Workflow("w")
    for name, fn in (("fetch", fetch), ("later", lambda: later())):
        wf.add_task(Task(name=name, fn=fn, retries=1, delay=0.0, retry_if_result=lambda v: v < 0))
    assert make().execute(wf).results == {"fetch": 1, "later": 2}


def test_a_raising_result_predicate_fails_the_task_once_and_is_logged_once(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    calls = Recorder()

    def predicate(value: object) -> bool:
        raise LookupError("bad predicate")

    wf = Workflow("w")
    wf.add_task(Task(name="fetch", fn=lambda: calls("call"), retries=3,
                     retry_if_result=predicate))  # fmt: skip
    with caplog.at_level(logging.INFO, logger="flowweaver"), pytest.raises(WorkflowFailedError):
        wf.execute(clock=clock)
    assert wf.last_run is not None
    (failure,) = wf.last_run.failures
    assert isinstance(failure.__cause__, LookupError)
    assert (calls.items, clock.sleeps, failure.attempts) == (["call"], [], 1)
    assert [r.getMessage() for r in caplog.records if "bad predicate" in r.getMessage()] == [
        str(failure)
    ]


def test_the_decorator_and_mapped_elements_take_it_too(clock: FakeClock) -> None:
    calls = Recorder()

    @task(retries=2, delay=1.0, jitter=0.0, retry_if_result=lambda v: v is None)
    def lookup(x: int) -> int | None:
        calls(x)
        return None if calls.count(x) == 1 else x * 10

    wf = Workflow("w")
    wf.add_task(Task(name="xs", fn=lambda: [1, 2]))
    wf.add_task(lookup.map(), depends_on=["xs"])
    assert wf.execute(clock=clock).result("lookup") == [10, 20]
    assert sorted(calls.items, key=repr) == [1, 1, 2, 2]


@pytest.mark.parametrize("retry", ["per_task", "per_stage"])
def test_a_stage_retries_a_result_that_counts_as_a_failure(retry: str) -> None:
    calls = Recorder()

    async def fetch(x: int) -> dict[str, int]:
        return flaky_response(calls)

    stage = Stage("S", 1, [fetch], retry=retry, task_attempts=3, stage_attempts=3,
                  task_wait_seconds=0.0, retry_if_result=is_throttled)  # fmt: skip
    results = run(Pipeline([stage], clock=FakeClock()).run([1]))
    assert [r.value for r in results] == [{"status": 200}]
    assert calls.count("call") == 3


def test_a_stage_records_the_last_rejected_result_as_the_item_failure() -> None:
    def fetch(x: int) -> dict[str, int]:  # a sync task: judged on its worker thread
        return {"status": 429}

    pipeline = Pipeline([Stage("S", 1, [fetch], task_attempts=2, task_wait_seconds=0.0,
                               retry_if_result=is_throttled)], clock=FakeClock())  # fmt: skip
    assert run(pipeline.run([1])) == []
    (failure,) = pipeline.get_error_summary().failed_items
    assert isinstance(failure.error, RejectedResultError)
    assert (failure.attempts, failure.error.value) == (2, {"status": 429})


def test_a_raising_stage_result_predicate_is_the_item_failure() -> None:
    def predicate(value: object) -> bool:
        raise LookupError("bad predicate")

    async def fetch(x: int) -> int:
        return x

    pipeline = Pipeline([Stage("S", 1, [fetch], retry_if_result=predicate)], clock=FakeClock())
    run(pipeline.run([1]))
    (failure,) = pipeline.get_error_summary().failed_items
    assert (type(failure.error), failure.attempts) == (LookupError, 1)


def test_the_async_pool_takes_retry_if_and_retry_if_result() -> None:
    calls = Recorder()

    async def fetch(x: int) -> dict[str, int]:
        return flaky_response(calls)

    async def not_found(x: int) -> dict[str, int]:
        calls("404")
        raise KeyError(x)

    async def main() -> None:
        executor = AsyncExecutor(clock=FakeClock())
        future = executor.submit(fetch, 1, retries=3, retry_if_result=is_throttled)
        assert await future.result() == {"status": 200}
        future = executor.submit(not_found, 1, retries=3, retry_if=lambda e: False)
        with pytest.raises(KeyError):
            await future.result()
        doubled = await executor.map(
            lambda x: x if x > 0 else -x, [1, -2], retries=1, retry_if_result=lambda v: v < 0
        )
        assert doubled == [1, 2]
        with pytest.raises(RejectedResultError):
            await executor.submit(always_throttled, retries=1, retry_if_result=is_throttled)
        executor.shutdown()

    run(main())
    assert (calls.count("call"), calls.count("404")) == (3, 1)


def test_a_result_predicate_that_is_not_callable_is_named() -> None:
    with pytest.raises(ConfigurationError) as caught:
        Task(name="t", fn=lambda: 1, retry_if_result=3)  # type: ignore[arg-type]
    assert str(caught.value) == "task 't': retry_if_result must be callable or None, got 3"
    with pytest.raises(StageValidationError) as caught_stage:
        Stage("S", 1, [abs], retry_if_result=3).validate()  # type: ignore[arg-type]
    assert str(caught_stage.value) == "stage 'S': retry_if_result must be callable or None, got 3"

    async def submit() -> None:
        AsyncExecutor().submit(abs, 1, retry_if_result=3)  # type: ignore[call-overload]

    with pytest.raises(ConfigurationError) as caught:
        run(submit())
    assert str(caught.value) == "submit(): retry_if_result must be callable or None, got 3"
