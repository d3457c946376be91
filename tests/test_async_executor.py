"""AsyncExecutor specifics: loops, cancellation, uvloop."""

from __future__ import annotations

import asyncio
import logging
import sys
import threading

import pytest

from flowweaver import (
    AsyncExecutor,
    EventLoopError,
    Task,
    TaskStatus,
    Workflow,
    WorkflowFailedError,
)

from .conftest import WAIT


def test_a_sync_lambda_returning_a_coroutine_is_awaited_concurrently() -> None:
    # The seed: fn=lambda uid=uid: fetch_user(uid). A barrier of three proves all three
    # coroutines were waiting at the same time (no sleeps, no timing).
    barrier: list[asyncio.Barrier] = []

    async def fetch_user(user_id: int) -> dict[str, object]:
        if not barrier:
            barrier.append(asyncio.Barrier(3))
        async with asyncio.timeout(WAIT):
            await barrier[0].wait()
        return {"id": user_id, "name": f"User{user_id}"}

    wf = Workflow("Data Fetch")
    for user_id in range(1, 4):
        wf.add_task(Task(name=f"user_{user_id}", fn=lambda uid=user_id: fetch_user(uid)))
    run = AsyncExecutor().execute(wf)
    assert run.results == {f"user_{u}": {"id": u, "name": f"User{u}"} for u in range(1, 4)}


def test_execute_inside_a_running_loop_is_refused_clearly() -> None:
    async def main() -> None:
        AsyncExecutor().execute(Workflow("w"))

    with pytest.raises(EventLoopError) as info:
        asyncio.run(main())
    assert str(info.value) == (
        "AsyncExecutor.execute() cannot run inside a running event loop; use "
        "'await executor.execute_async(workflow)' (or 'await workflow.execute_async()')"
    )


def test_cancelling_execute_async_cancels_tasks_and_settles_the_run() -> None:
    cancelled: list[str] = []

    started: list[asyncio.Event] = []

    async def forever() -> None:
        started[0].set()
        try:
            await asyncio.sleep(WAIT * 10)
        except asyncio.CancelledError:
            cancelled.append("forever")
            raise

    wf = Workflow("w")
    wf.add_task(Task(name="forever", fn=forever))
    wf.add_task(Task(name="after", fn=lambda: None), depends_on=["forever"])

    async def main() -> None:
        started.append(asyncio.Event())
        running = asyncio.ensure_future(AsyncExecutor().execute_async(wf))
        await asyncio.wait_for(started[0].wait(), WAIT)
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running

    asyncio.run(main())
    assert cancelled == ["forever"]
    assert wf.last_run is not None
    assert wf.last_run.statuses == {"forever": TaskStatus.CANCELLED, "after": TaskStatus.CANCELLED}


def test_wait_for_timeout_on_a_run_stops_it() -> None:
    gate = threading.Event()
    wf = Workflow("w")
    wf.add_task(Task(name="blocked", fn=lambda: gate.wait(WAIT)))

    async def main() -> None:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(AsyncExecutor().execute_async(wf), timeout=0.05)

    try:
        asyncio.run(main())
    finally:
        gate.set()
    assert wf.get_task_status("blocked") is TaskStatus.CANCELLED


def test_fail_fast_cancels_tasks_in_flight() -> None:
    cancelled: list[str] = []

    async def slow() -> None:
        try:
            await asyncio.sleep(WAIT * 10)
        except asyncio.CancelledError:
            cancelled.append("slow")
            raise

    async def bad() -> None:
        await asyncio.sleep(0)
        raise ValueError("boom")

    wf = Workflow("w")
    wf.add_task(Task(name="slow", fn=slow))
    wf.add_task(Task(name="bad", fn=bad))
    with pytest.raises(WorkflowFailedError):
        AsyncExecutor().execute(wf)
    assert cancelled == ["slow"]
    assert wf.last_run is not None
    assert wf.last_run.statuses == {"slow": TaskStatus.CANCELLED, "bad": TaskStatus.FAILED}


def test_async_status_callbacks_are_awaited() -> None:
    seen: list[tuple[str, str]] = []

    async def on_status(name: str, status: TaskStatus) -> None:
        await asyncio.sleep(0)
        seen.append((name, status.value))

    wf = Workflow("w")
    wf.add_task(Task(name="a", fn=lambda: 1, on_status_change=on_status))
    AsyncExecutor().execute(wf)
    assert seen == [("a", "running"), ("a", "completed")]


def test_uvloop_runs_the_workflow_on_uvloop() -> None:
    pytest.importorskip("uvloop")
    loops: list[str] = []

    async def which() -> str:
        loops.append(type(asyncio.get_running_loop()).__module__)
        return "ok"

    wf = Workflow("w")
    wf.add_task(Task(name="a", fn=which))
    assert AsyncExecutor(use_uvloop=True).execute(wf).result("a") == "ok"
    assert loops[0].startswith("uvloop")


def test_uvloop_missing_falls_back_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # makes `import uvloop` fail
    wf = Workflow("w")
    wf.add_task(Task(name="a", fn=lambda: 5))
    with caplog.at_level(logging.WARNING, logger="flowweaver"):
        assert AsyncExecutor(use_uvloop=True).execute(wf).result("a") == 5
    assert [r.getMessage() for r in caplog.records] == [
        "use_uvloop=True but uvloop is not installed (pip install 'flowweaver[uvloop]'); "
        "running on the default asyncio event loop"
    ]
