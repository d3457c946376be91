"""The rule for observers that do not return, and Ctrl-C whatever an observer does (issue 11).

An async observer's awaitable runs for at most ``observer_timeout`` seconds; then it is
cancelled, logged as a warning and disabled for the rest of the run, as one that raises. Once a
run is asked to stop, every observer awaitable shares ``STOP_GRACE``: a hanging observer never
holds up a stop. Each test here hangs forever on the code before the rule.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from time import monotonic
from typing import TYPE_CHECKING, Any
from unittest import mock

import pytest

from flowweaver import (
    ConfigurationError,
    Monitor,
    Pipeline,
    Stage,
    StatusTracker,
    Task,
    TaskStatus,
    Workflow,
    _events,
)
from flowweaver._events import STOP_GRACE

from .conftest import WAIT, Recorder, SharedEvent, execute, is_async, run

if TYPE_CHECKING:
    from flowweaver import WorkflowRun

#: How soon after a stop a run must have ended (a bound, generous on a loaded machine).
STOPS_WITHIN = 1.0 + STOP_GRACE


def ctrl_c_now() -> None:
    """Send SIGINT to the main thread, as a terminal's Ctrl-C reaches it (``os.kill`` from
    another thread may leave the signal with that thread while the main one sleeps)."""
    signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)


async def forever() -> None:
    await asyncio.Event().wait()  # an async webhook without a timeout


class HangingMonitor(Monitor):
    """An async monitor whose status hook never returns (it records each call first)."""

    def __init__(self, started: SharedEvent | None = None) -> None:
        self.calls = Recorder()
        self.started = started

    async def on_status_change(  # type: ignore[override]
        self, run: WorkflowRun, task_name: str, status: TaskStatus
    ) -> None:
        self.calls((task_name, status))
        if self.started is not None:
            self.started.set()
        await forever()


def hanging_callback(calls: Recorder, started: SharedEvent | None = None) -> Any:
    async def notify(name: str, status: TaskStatus) -> None:
        calls((name, status))
        if started is not None:
            started.set()
        await forever()

    return notify


def chain(callback: Any = None) -> Workflow:
    wf = Workflow("w")
    wf.add_task(Task(name="a", fn=lambda: 1, on_status_change=callback))
    wf.add_task(Task(name="b", fn=lambda a: a + 1, on_status_change=callback), depends_on=["a"])
    return wf


@pytest.mark.in_process("the observer records its calls in the test's memory")
@pytest.mark.parametrize("observer", ["callback", "monitor"])
def test_a_hanging_async_observer_is_cut_off_logged_and_disabled(
    executor: Any, observer: str, caplog: pytest.LogCaptureFixture
) -> None:
    calls = Recorder()
    monitor = HangingMonitor()
    if observer == "callback":
        wf, options = chain(hanging_callback(calls)), {}
        what = "on_status_change of task 'a'"
    else:
        wf, options = chain(), {"monitors": [monitor]}
        calls = monitor.calls
        what = f"monitor {monitor!r}.on_status_change"
    with caplog.at_level(logging.WARNING, logger="flowweaver"):
        outcome = execute(executor, wf, observer_timeout=0.05, **options)
    assert outcome.results == {"a": 1, "b": 2}  # it never changes an outcome
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert (
        f"{what} did not return within 0.05 s; it was cancelled and is disabled for the rest of this run"
        in warnings
    )
    if not is_async(executor):
        # Awaited on the driver: disabled after its first call (the async executor awaits
        # observers beside the run, so several calls may start before the first times out).
        assert calls.items == [("a", TaskStatus.RUNNING)]


@pytest.mark.in_process("the observer signals the test through a shared event")
@pytest.mark.parametrize("observer", ["callback", "monitor"])
def test_ctrl_c_stops_a_run_whose_async_observer_never_returns(
    executor: Any, observer: str
) -> None:
    started = SharedEvent()
    calls = Recorder()
    if observer == "callback":
        wf, options = chain(hanging_callback(calls, started)), {}
    else:
        wf, options = chain(), {"monitors": [HangingMonitor(started)]}
    stopped_at: list[float] = []

    def ctrl_c() -> None:
        if started.wait(WAIT):
            stopped_at.append(monotonic())
            ctrl_c_now()  # a real Ctrl-C, while the observer hangs

    threading.Thread(target=ctrl_c, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        execute(executor, wf, observer_timeout=None, **options)  # no bound but the stop's
    assert monotonic() - stopped_at[0] < STOPS_WITHIN
    assert wf.last_run is not None and wf.last_run.finished_at is not None
    assert all(status.is_terminal for status in wf.last_run.statuses.values())


@pytest.mark.in_process("the observer signals the test through a shared event")
def test_cancelling_execute_async_is_not_held_up_by_a_hanging_observer(executor: Any) -> None:
    started = SharedEvent()
    wf = chain(hanging_callback(Recorder(), started))

    async def main() -> float:
        running = asyncio.ensure_future(executor.execute_async(wf, observer_timeout=None))
        assert await asyncio.to_thread(started.wait, WAIT)
        cancelled_at = monotonic()
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running
        return monotonic() - cancelled_at

    assert run(main()) < STOPS_WITHIN
    assert wf.last_run is not None
    assert all(status.is_terminal for status in wf.last_run.statuses.values())


def test_a_sync_observer_blocked_when_ctrl_c_comes_is_not_called_again() -> None:
    calls = Recorder()

    def notify(name: str, status: TaskStatus) -> None:
        calls((name, status))
        if status is TaskStatus.RUNNING:
            ctrl_c_now()  # as if Ctrl-C came while it was blocked
            threading.Event().wait(WAIT)  # the KeyboardInterrupt is raised in here

    wf = chain(notify)
    # Any time blocked is longer than a grace of 0: the interrupted observer counts as blocking.
    with mock.patch.object(_events, "STOP_GRACE", 0.0), pytest.raises(KeyboardInterrupt):
        wf.execute()  # (the default executor)
    # Not called with the cancellations: a blocked sync observer would block the stop again.
    assert calls.items == [("a", TaskStatus.RUNNING)]
    assert wf.last_run is not None
    assert wf.last_run.statuses == {"a": TaskStatus.CANCELLED, "b": TaskStatus.CANCELLED}


def test_a_shared_callback_is_disabled_once_for_every_task(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls = Recorder()
    wf = Workflow("w")
    notify = hanging_callback(calls)
    for i in range(5):
        wf.add_task(Task(name=f"t{i}", fn=lambda: 1, on_status_change=notify))
    with caplog.at_level(logging.WARNING, logger="flowweaver"):
        wf.execute(observer_timeout=0.05)  # one timeout for the run, not one per task
    assert calls.items == [("t0", TaskStatus.RUNNING)]


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), float("inf"), True, "1"])
def test_observer_timeout_must_be_a_positive_number_or_none(bad: object) -> None:
    with pytest.raises(ConfigurationError) as info:
        chain().execute(observer_timeout=bad)  # type: ignore[arg-type]
    assert str(info.value) == (
        f"execute(): observer_timeout must be a finite number > 0 or None, got {bad!r}"
    )
    with pytest.raises(ConfigurationError) as info:
        Pipeline([Stage("S", 1, [forever])], observer_timeout=bad)  # type: ignore[arg-type]
    assert str(info.value) == (
        f"Pipeline: observer_timeout must be a finite number > 0 or None, got {bad!r}"
    )


# -- pipelines -----------------------------------------------------------------------------------


async def double(x: int) -> int:
    return 2 * x


def test_a_hanging_tracker_callback_is_cut_off_and_the_run_completes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls = Recorder()

    async def on_status_change(event: Any) -> None:
        calls(event.status.value)
        await forever()

    tracker = StatusTracker(on_status_change=on_status_change)
    pipeline = Pipeline([Stage("S", 2, [double])], status_tracker=tracker, observer_timeout=0.05)
    with caplog.at_level(logging.WARNING, logger="flowweaver"):
        results = run(pipeline.run(range(5)))
    assert [r.value for r in results] == [0, 2, 4, 6, 8]
    assert tracker.get_stats()["completed"] == 5  # recorded, although nobody heard of it
    assert (
        "status tracker callback on_status_change did not return within 0.05 s; it was "
        "cancelled and is disabled for the rest of this run"
    ) in [r.getMessage() for r in caplog.records]


@pytest.mark.parametrize("hook", ["on_status_change", "on_failure", "on_task_start"])
def test_wait_for_ends_a_pipeline_whose_tracker_callback_hangs(hook: str) -> None:
    async def fails(x: int) -> int:
        raise ValueError(x)

    async def hang(*_: object) -> None:
        await forever()

    tracker = StatusTracker()
    setattr(tracker, hook, hang)  # callbacks are attributes (replaceable between runs)
    pipeline = Pipeline([Stage("S", 2, [fails], task_attempts=1)], status_tracker=tracker)

    async def main() -> float:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(pipeline.run(range(5)), 0.2)  # the wait_for(…, 2)
        return monotonic()

    start = monotonic()
    ended = run(main())
    assert ended - start < 0.2 + STOPS_WITHIN
    stats = pipeline.get_stats()
    assert stats.items_in_flight == 0 and stats.items_failed >= 1


def test_one_ctrl_c_stops_a_pipeline_whose_tracker_callback_hangs() -> None:
    hanging = asyncio.Event()
    stopped_at: list[float] = []

    async def on_status_change(event: Any) -> None:
        hanging.set()
        await forever()

    async def ctrl_c() -> None:
        await hanging.wait()
        stopped_at.append(monotonic())
        ctrl_c_now()  # a real Ctrl-C: asyncio.run cancels main()

    async def main() -> None:
        tracker = StatusTracker(on_status_change=on_status_change)
        pipeline = Pipeline([Stage("S", 1, [double])], status_tracker=tracker)
        interrupting = asyncio.ensure_future(ctrl_c())
        await pipeline.run(range(3))
        await interrupting

    with pytest.raises(KeyboardInterrupt):
        asyncio.run(main())
    assert monotonic() - stopped_at[0] < STOPS_WITHIN
