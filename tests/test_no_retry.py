"""Failures that cannot succeed on another attempt are not retried, whatever the settings."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from flowweaver import (
    ExecutorShutdownError,
    ProcessExecutor,
    RetryPolicy,
    Task,
    TaskTimeoutError,
    TransferError,
    WorkerDiedError,
    WorkerStartError,
    Workflow,
    WorkflowFailedError,
)
from flowweaver._retry import NEVER_RETRIED

if TYPE_CHECKING:
    from .conftest import FakeClock


def test_a_lambda_sent_to_a_process_fails_on_its_first_attempt(clock: FakeClock) -> None:
    retried: list[int] = []
    workflow = Workflow("w")
    workflow.add_task(
        Task(
            name="a", fn=lambda: 1, retries=3, retry_on=(Exception, TransferError),
            on_retry=lambda name, n: retried.append(n),
        )
    )  # fmt: skip
    with ProcessExecutor(max_workers=1) as executor, pytest.raises(WorkflowFailedError) as info:
        workflow.execute(executor, clock=clock)
    (failure,) = info.value.failures
    assert isinstance(failure.__cause__, TransferError)
    assert (failure.attempts, retried, clock.sleeps) == (1, [], [])


def test_the_policy_refuses_what_can_never_succeed_and_retries_the_rest() -> None:
    assert (TransferError, ExecutorShutdownError, WorkerStartError) == NEVER_RETRIED
    policy = RetryPolicy(retries=3, retry_on=(Exception,))
    assert not policy.should_retry(TransferError("t", "a lambda cannot be pickled"), 1)
    assert not policy.should_retry(ExecutorShutdownError("shut down"), 1)
    assert not policy.should_retry(WorkerStartError("t", 86, "job.py"), 1)
    assert policy.should_retry(WorkerDiedError("t", -9), 1)
    assert policy.should_retry(TaskTimeoutError("t", 1.0), 1)
    assert policy.should_retry(ConnectionError("reset"), 3)
    assert not policy.should_retry(ConnectionError("reset"), 4)
