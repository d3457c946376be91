"""Retry conditions: ``retry_if`` and a server's ``Retry-After``, on tasks and on stages."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from flowweaver import (
    ConfigurationError,
    Pipeline,
    RetryPolicy,
    Stage,
    StageValidationError,
    Task,
    Workflow,
    WorkflowFailedError,
)

from .conftest import FakeClock, Recorder, run
from .conftest import execute as execute_on


class TooManyRequestsError(Exception):
    def __init__(self, retry_after: object = None, status: int = 429) -> None:
        super().__init__(f"HTTP {status}")
        self.retry_after = retry_after
        self.status = status


def _is_429(error: BaseException) -> bool:
    return getattr(error, "status", None) == 429


def test_policy_retry_if_decides_after_retry_on() -> None:
    policy = RetryPolicy(retries=3, retry_on=(TooManyRequestsError,), retry_if=_is_429)
    assert policy.should_retry(TooManyRequestsError(status=429), 1)
    assert not policy.should_retry(TooManyRequestsError(status=404), 1)
    assert not policy.should_retry(KeyError("not in retry_on"), 1)
    assert not policy.should_retry(TooManyRequestsError(status=429), 4)


@pytest.mark.parametrize(
    ("asked", "expected"),
    [(5.0, 5.0), ("7", 7.0), (" 2.5 ", 2.5), (100, 30.0), (0.1, 1.0), (None, 1.0),
     (-3, 1.0), ("Wed, 21 Oct 2026 07:28:00 GMT", 1.0), (True, 1.0), (float("nan"), 1.0)],
)  # fmt: skip
def test_retry_after_raises_the_wait_capped_by_max_delay(asked: object, expected: float) -> None:
    policy = RetryPolicy(retries=2, delay=1.0, max_delay=30.0, jitter=0.0)
    error = TooManyRequestsError(retry_after=asked)
    assert policy.decide(error, 1) == (expected, error)


def test_a_retry_after_hook_reads_the_wait() -> None:
    policy = RetryPolicy(retries=1, delay=0.0, jitter=0.0, retry_after=lambda e: e.args[0])
    error = OSError(4.0)
    assert policy.decide(error, 1) == (4.0, error)


def test_a_raising_predicate_is_the_failure_with_the_original_as_context() -> None:
    broken = ZeroDivisionError("predicate bug")

    def predicate(error: BaseException) -> bool:
        raise broken

    original = OSError("down")
    delay, failure = RetryPolicy(retries=3, retry_if=predicate).decide(original, 1)
    assert (delay, failure, failure.__context__) == (None, broken, original)


@pytest.mark.parametrize("field", ["retry_if", "retry_after"])
def test_a_hook_that_is_not_callable_is_refused(field: str) -> None:
    bad: dict[str, Any] = {field: 42}
    with pytest.raises(ConfigurationError) as caught:
        Task(name="t", fn=lambda: 1, **bad)
    assert str(caught.value) == f"task 't': {field} must be callable or None, got 42"
    with pytest.raises(ConfigurationError) as caught:
        RetryPolicy(**{field: "x"})  # type: ignore[arg-type]
    assert str(caught.value) == f"RetryPolicy: {field} must be callable or None, got 'x'"


@pytest.mark.in_process("the task counts its calls in a Recorder shared with the test")
def test_a_task_retries_only_what_retry_if_accepts(executor: Any, clock: FakeClock) -> None:
    calls = Recorder()

    def fetch() -> str:
        calls("call")
        raise TooManyRequestsError(status=429 if calls.count("call") < 3 else 404)

    wf = Workflow("w")
    wf.add_task(Task(name="fetch", fn=fetch, retries=5, delay=1.0, jitter=0.0, retry_if=_is_429))
    with pytest.raises(WorkflowFailedError) as caught:
        execute_on(executor, wf, clock=clock)
    (failure,) = caught.value.failures
    assert failure.attempts == 3  # 429, 429, then a 404 that is not retried
    assert clock.sleeps == [1.0, 2.0]


@pytest.mark.in_process("the task's error carries a wait the test reads back")
def test_a_task_waits_what_the_server_asks(executor: Any, clock: FakeClock) -> None:
    calls = Recorder()

    def fetch() -> str:
        calls("call")
        if calls.count("call") < 3:
            raise TooManyRequestsError(retry_after=["9", 500][calls.count("call") - 1])
        return "ok"

    wf = Workflow("w")
    wf.add_task(Task(name="fetch", fn=fetch, retries=3, delay=1.0, max_delay=20.0, jitter=0.0))
    assert execute_on(executor, wf, clock=clock).result("fetch") == "ok"
    assert clock.sleeps == [9.0, 20.0]  # at least what was asked, never past max_delay


def test_a_raising_retry_if_fails_the_task_once_and_is_logged_once(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    calls = Recorder()

    def fetch() -> None:
        calls("call")
        raise OSError("down")

    def predicate(error: BaseException) -> bool:
        raise LookupError("bad predicate")

    wf = Workflow("w")
    wf.add_task(Task(name="fetch", fn=fetch, retries=3, retry_if=predicate))
    with caplog.at_level(logging.INFO, logger="flowweaver"), pytest.raises(WorkflowFailedError):
        wf.execute(clock=clock)
    assert wf.last_run is not None
    (failure,) = wf.last_run.failures
    assert isinstance(failure.__cause__, LookupError)
    assert isinstance(failure.__cause__.__context__, OSError)
    assert (calls.items, clock.sleeps, failure.attempts) == (["call"], [], 1)
    assert [r.getMessage() for r in caplog.records if "bad predicate" in r.getMessage()] == [
        str(failure)
    ]


def test_a_mapped_task_element_obeys_retry_if(clock: FakeClock) -> None:
    def each(x: int) -> int:
        raise TooManyRequestsError(status=404 if x else 429)

    wf = Workflow("w")
    wf.add_task(Task(name="xs", fn=lambda: [0, 1]))
    wf.add_task(Task(name="each", fn=each, map_over="xs", retries=2, delay=1.0, jitter=0.0,
                     depends_on=["xs"],
                     retry_if=_is_429, allow_failed_elements=True))  # fmt: skip
    record = wf.execute(clock=clock).elements("each")
    assert record is not None
    assert sorted(f.attempts for f in record.failures) == [1, 3]


def test_a_stage_retries_only_what_retry_if_accepts() -> None:
    clock, calls = FakeClock(), Recorder()

    async def fetch(x: int) -> int:
        calls(x)
        raise TooManyRequestsError(status=429 if calls.count(x) < 2 else 404, retry_after=3)

    stage = Stage("S", 1, [fetch], task_attempts=5, task_wait_seconds=1.0, retry_if=_is_429)
    pipeline = Pipeline([stage], clock=clock)
    assert run(pipeline.run([7])) == []
    (failure,) = pipeline.get_error_summary().failed_items
    assert (failure.attempts, calls.items, clock.sleeps) == (2, [7, 7], [3.0])


def test_a_per_stage_retry_obeys_retry_if() -> None:
    calls = Recorder()

    async def fetch(x: int) -> int:
        calls(x)
        raise TooManyRequestsError(status=404)

    stage = Stage("S", 1, [fetch], retry="per_stage", stage_attempts=3, retry_if=_is_429)
    pipeline = Pipeline([stage], clock=FakeClock())
    run(pipeline.run([1]))
    assert calls.items == [1]


def test_a_raising_stage_predicate_is_the_item_failure() -> None:
    def predicate(error: BaseException) -> bool:
        raise LookupError("bad predicate")

    async def fetch(x: int) -> int:
        raise OSError("down")

    pipeline = Pipeline([Stage("S", 1, [fetch], retry_if=predicate)], clock=FakeClock())
    run(pipeline.run([1]))
    (failure,) = pipeline.get_error_summary().failed_items
    assert (type(failure.error), failure.attempts) == (LookupError, 1)


def test_bad_stage_retry_if_is_named() -> None:
    with pytest.raises(StageValidationError) as caught:
        Stage("S", 1, [abs], retry_if=3).validate()  # type: ignore[arg-type]
    assert str(caught.value) == "stage 'S': retry_if must be callable or None, got 3"
    policy = RetryPolicy(retry_if=_is_429)
    with pytest.raises(StageValidationError) as caught:
        Stage("S", 1, [abs], retry_policy=policy, retry_if=_is_429).validate()
    assert str(caught.value) == "stage 'S': retry_if is given twice: here and in retry_policy"
