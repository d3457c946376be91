"""One rule for what user code raises, everywhere it runs (``_calls.INTERRUPTS``).

``KeyboardInterrupt`` and ``SystemExit`` propagate; the worker's own cancellation stops it;
anything else — ``BaseException`` subclasses and a call's own ``CancelledError`` included — is
the failure of the task, item, pool call or observer that raised it. Never a hang.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

import pytest

from flowweaver import (
    Monitor,
    Pipeline,
    Stage,
    StatusTracker,
    Task,
    Workflow,
)

from .test_pipeline import WAIT, run

if TYPE_CHECKING:
    from flowweaver import TaskStatus, WorkflowRun


class Abort(BaseException):
    """Not an Exception, not an interrupt: a failure like any other."""


def abort_sync(x: int) -> int:
    if x == 0:
        raise Abort(f"abort {x}")
    return x


async def abort_async(x: int) -> int:
    return abort_sync(x)


# -- observers ---------------------------------------------------------------------------------


def test_a_base_exception_from_a_stage_callback_never_fails_the_item(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def on_success(item_id: Any, value: Any, meta: Any) -> None:
        raise Abort("hook")

    async def status(event: Any) -> None:
        raise Abort("tracker")

    tracker = StatusTracker(on_status_change=status)
    stage = Stage("S", 1, [abort_async], on_success=on_success)
    pipeline = Pipeline([stage], status_tracker=tracker)
    with caplog.at_level(logging.ERROR, logger="flowweaver"):
        results = run(pipeline.run([1, 2]))
    assert [r.value for r in results] == [1, 2]
    assert [r.getMessage() for r in caplog.records] == [
        "status tracker callback on_status_change raised; it is disabled for the rest of this run",
        "on_success of stage 'S' raised; it is disabled for the rest of this run",
    ]


def test_a_base_exception_from_a_dashboard_never_stops_the_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[str] = []

    class Board:
        async def on_start(self, pipeline: Any, total: int | None) -> None:
            raise Abort("start")

        def on_update(self, snapshot: Any) -> None:
            calls.append("update")

        def on_finish(self, results: Any, summary: Any) -> None:
            calls.append("finish")

    pipeline = Pipeline([Stage("S", 1, [abort_async])])
    with caplog.at_level(logging.ERROR, logger="flowweaver"):
        results = run(pipeline.run([1], custom_dashboard=Board()))
    assert [r.value for r in results] == [1]
    assert calls == ["update", "finish"]
    assert [r.getMessage() for r in caplog.records] == [
        "dashboard on_start raised; it is disabled for the rest of this run"
    ]


class Aborting(Monitor):
    def on_status_change(self, run: WorkflowRun, task_name: str, status: TaskStatus) -> None:
        raise Abort("monitor")


def test_a_base_exception_from_an_observer_never_changes_a_workflows_outcome(
    executor: Any, caplog: pytest.LogCaptureFixture
) -> None:
    async def on_change(name: str, status: TaskStatus) -> None:
        raise Abort("async callback")

    wf = Workflow("w")
    wf.add_task(Task(name="a", fn=lambda: 1, on_status_change=on_change))
    monitor = Aborting()
    with caplog.at_level(logging.ERROR, logger="flowweaver"):
        run_ = wf.execute(executor, monitors=[monitor])
    assert run_.results == {"a": 1}
    messages = sorted(r.getMessage() for r in caplog.records)
    assert messages == [
        f"monitor {monitor!r}.on_status_change raised; it is disabled for the rest of this run",
        "on_status_change of task 'a' raised; it is disabled for the rest of this run",
    ]


def test_await_safely_lets_its_own_cancellation_through() -> None:
    from flowweaver._events import await_safely

    disabled: list[str] = []
    started = asyncio.Event()

    async def slow() -> None:
        started.set()
        await asyncio.sleep(WAIT * 10)

    async def main() -> None:
        waiter = asyncio.ensure_future(
            await_safely(slow(), "observer %s", "x", on_error=lambda: disabled.append("x"))
        )
        await started.wait()
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter

    run(main())
    assert disabled == []  # being cancelled is not the observer's failure
