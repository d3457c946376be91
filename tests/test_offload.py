"""Sync calls made from an event loop (``_offload``): a call's timeout starts when it can run."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import pytest

from flowweaver import (
    AsyncExecutor,
    Task,
    TaskStatus,
    TaskTimeoutError,
    Workflow,
    WorkflowFailedError,
)

from .test_pipeline import WAIT

if TYPE_CHECKING:
    from collections.abc import Iterator

#: Short enough to keep the suite fast; the calls that must beat it return at once.
TIMEOUT = 0.2


@pytest.fixture
def gate() -> Iterator[threading.Event]:
    """Holds the stuck call; always opened at the end, so no thread outlives the test."""
    event = threading.Event()
    yield event
    event.set()


def test_a_timed_out_sync_task_on_async_executor_gives_up_its_thread(
    gate: threading.Event,
) -> None:
    def work(x: int) -> int:
        if x == 0:
            gate.wait(WAIT)
        return x

    wf = Workflow("w")
    for i in range(3):  # independent; one thread, so they run one after another
        wf.add_task(Task(name=f"t{i}", fn=lambda i=i: work(i), timeout=TIMEOUT))
    with pytest.raises(WorkflowFailedError):
        AsyncExecutor(max_workers=1).execute(wf, failure_policy="continue")
    statuses = {name: wf.get_task_status(name) for name in ("t0", "t1", "t2")}
    assert statuses == {
        "t0": TaskStatus.FAILED,
        "t1": TaskStatus.COMPLETED,  # on the thread that replaced t0's stuck one
        "t2": TaskStatus.COMPLETED,
    }
    assert isinstance(wf.last_run.failures[0].__cause__, TaskTimeoutError)  # type: ignore[union-attr]
