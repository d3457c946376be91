"""The engine's rules, checked on every executor (see conftest: `executor`)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
import time
from typing import Any

import pytest

from flowweaver import (
    AsyncExecutor,
    ConfigurationError,
    FailurePolicy,
    Monitor,
    SequentialExecutor,
    Task,
    TaskFailedError,
    TaskStatus,
    TaskTimeoutError,
    ThreadedExecutor,
    Workflow,
    WorkflowFailedError,
    WorkflowRun,
)

from .conftest import WAIT, Box, FakeClock, Recorder, SharedEvent, diamond, is_sequential
from .conftest import execute as run

S = TaskStatus


def test_results_flow_by_name_and_position(executor: Any) -> None:
    outcome = run(executor, diamond())
    assert outcome.results == {"src": 10, "left": 11, "right": 20, "join": (11, 20)}
    assert outcome.ok
    assert all(status is S.COMPLETED for status in outcome.statuses.values())


def test_seed_accessors_read_the_latest_run(executor: Any) -> None:
    wf = diamond()
    run(executor, wf)
    assert wf.get_task_result("join") == (11, 20)
    assert wf.get_task_status("join") is S.COMPLETED
    assert wf.get_task("join").status is S.COMPLETED  # type: ignore[union-attr]
    assert wf.get_task("join").result == (11, 20)  # type: ignore[union-attr]
    stats = wf.get_workflow_stats()
    assert {k: stats[k] for k in ("total_tasks", "completed", "failed", "pending", "running")} == {
        "total_tasks": 4, "completed": 4, "failed": 0, "pending": 0, "running": 0,
    }  # fmt: skip
    assert stats["total_time_seconds"] > 0


def test_sync_and_async_functions_mix(executor: Any) -> None:
    async def double(x: int) -> int:
        await asyncio.sleep(0)
        return x * 2

    wf = Workflow("mixed")
    wf.add_task(Task(name="a", fn=lambda: 3))
    wf.add_task(Task(name="b", fn=double), depends_on=["a"])
    wf.add_task(Task(name="c", fn=lambda b: double(b)), depends_on=["b"])  # returns a coroutine
    assert run(executor, wf).results == {"a": 3, "b": 6, "c": 12}


@pytest.mark.in_process("the task counts its calls in a Recorder shared with the test")
def test_retries_until_success_with_back_off_from_the_clock(
    executor: Any, clock: FakeClock, record: Recorder
) -> None:
    attempts = Recorder()

    def flaky() -> str:
        attempts("call")
        if attempts.count("call") < 3:
            raise ConnectionError("not yet")
        return "ok"

    wf = Workflow("retry")
    wf.add_task(Task(name="flaky", fn=flaky, retries=3, delay=1.0, backoff=2.0, jitter=0.0,
                     on_retry=record, on_status_change=lambda n, s: record(s)))  # fmt: skip
    outcome = run(executor, wf, clock=clock)
    assert outcome.result("flaky") == "ok"
    assert outcome.attempts("flaky") == 3
    assert clock.sleeps == [1.0, 2.0]
    assert [item for item in record.items if isinstance(item, tuple)] == [
        ("flaky", 1),
        ("flaky", 2),
    ]
    assert [item for item in record.items if isinstance(item, TaskStatus)] == [
        S.RUNNING, S.RETRYING, S.RUNNING, S.RETRYING, S.RUNNING, S.COMPLETED,
    ]  # fmt: skip


def test_exhausted_retries_fail_with_attempts_and_cause(executor: Any, clock: FakeClock) -> None:
    wf = Workflow("w")
    wf.add_task(Task(name="bad", fn=lambda: 1 / 0, retries=2, delay=0.5))
    with pytest.raises(WorkflowFailedError) as info:
        run(executor, wf, clock=clock)
    (failure,) = info.value.failures
    assert (failure.task_name, failure.attempts) == ("bad", 3)
    assert isinstance(failure.__cause__, ZeroDivisionError)
    assert len(clock.sleeps) == 2
    assert wf.get_task("bad").error == "ZeroDivisionError: division by zero"  # type: ignore[union-attr]


def test_only_listed_exception_types_are_retried(executor: Any, clock: FakeClock) -> None:
    wf = Workflow("w")
    wf.add_task(Task(name="bad", fn=lambda: [][1], retries=5, retry_on=(ConnectionError,)))
    with pytest.raises(WorkflowFailedError):
        run(executor, wf, clock=clock)
    assert wf.last_run is not None and wf.last_run.attempts("bad") == 1
    assert clock.sleeps == []


@pytest.mark.in_process("the tasks wait on an event the test's callback sets")
def test_fail_fast_stops_starting_and_settles_everything(executor: Any) -> None:
    failed = SharedEvent()
    started = Recorder()

    def gate() -> str:
        started("gate")
        failed.wait(WAIT)
        return "gate"

    def bad() -> None:
        raise ValueError("boom")

    wf = Workflow("w")
    wf.add_task(Task(name="bad", fn=bad,
                     on_status_change=lambda n, s: failed.set() if s is S.FAILED else None))  # fmt: skip
    wf.add_task(Task(name="after_bad", fn=lambda: started("after_bad")), depends_on=["bad"])
    wf.add_task(Task(name="gate", fn=gate))
    wf.add_task(Task(name="late", fn=lambda: started("late")), depends_on=["gate"])
    with pytest.raises(WorkflowFailedError) as info:
        run(executor, wf)
    assert str(info.value).startswith("workflow 'w' failed: 1 task failed ('bad')")
    statuses = wf.last_run.statuses  # type: ignore[union-attr]
    assert statuses["bad"] is S.FAILED
    assert statuses["after_bad"] is S.UPSTREAM_FAILED
    assert statuses["late"] is S.CANCELLED
    assert statuses["gate"] in {S.COMPLETED, S.CANCELLED}
    assert "after_bad" not in started.items and "late" not in started.items
    assert not any(s in {S.PENDING, S.RUNNING, S.RETRYING} for s in statuses.values())


def test_continue_policy_runs_independent_branches_to_the_end(executor: Any) -> None:
    wf = Workflow("w")
    wf.add_task(Task(name="bad", fn=lambda: 1 / 0))
    wf.add_task(Task(name="child", fn=lambda bad: bad), depends_on=["bad"])
    wf.add_task(Task(name="grandchild", fn=lambda child: child), depends_on=["child"])
    wf.add_task(Task(name="ok1", fn=lambda: 1))
    wf.add_task(Task(name="ok2", fn=lambda ok1: ok1 + 1), depends_on=["ok1"])
    wf.add_task(Task(name="bad2", fn=lambda ok2: [][ok2]), depends_on=["ok2"])
    with pytest.raises(WorkflowFailedError) as info:
        run(executor, wf, failure_policy="continue")
    assert sorted(f.task_name for f in info.value.failures) == ["bad", "bad2"]
    assert wf.last_run is not None
    assert wf.last_run.statuses == {
        "bad": S.FAILED, "child": S.UPSTREAM_FAILED, "grandchild": S.UPSTREAM_FAILED,
        "ok1": S.COMPLETED, "ok2": S.COMPLETED, "bad2": S.FAILED,
    }  # fmt: skip
    assert wf.last_run.results == {"ok1": 1, "ok2": 2}


def test_when_predicate_skips_and_downstream_gets_none(executor: Any) -> None:
    wf = Workflow("w")
    wf.add_task(Task(name="size", fn=lambda: 1500))
    wf.add_task(Task(name="big", fn=lambda v: f"big {v}", when=lambda v: v > 1000),
                depends_on=["size"])  # fmt: skip
    wf.add_task(Task(name="small", fn=lambda v: f"small {v}", when=lambda v: v <= 1000),
                depends_on=["size"])  # fmt: skip
    wf.add_task(Task(name="load", fn=lambda big, small: big or small), depends_on=["big", "small"])
    wf.add_task(Task(name="only_small", fn=lambda small: "ran", skip_if_upstream_skipped=True),
                depends_on=["small"])  # fmt: skip
    outcome = run(executor, wf)
    assert outcome.results == {
        "size": 1500, "big": "big 1500", "small": None, "load": "big 1500", "only_small": None,
    }  # fmt: skip
    assert outcome.status("small") is S.SKIPPED
    assert outcome.status("only_small") is S.SKIPPED
    assert outcome.attempts("small") == 0
    assert outcome.ok


def test_a_failing_when_predicate_fails_the_task(executor: Any) -> None:
    wf = Workflow("w")
    wf.add_task(Task(name="a", fn=lambda: 1, when=lambda: 1 / 0))
    with pytest.raises(WorkflowFailedError) as info:
        run(executor, wf)
    assert isinstance(info.value.failures[0].__cause__, ZeroDivisionError)


@pytest.mark.in_process("the task counts its calls in a Recorder shared with the test")
def test_a_raising_callback_is_logged_and_never_changes_the_outcome(
    executor: Any, caplog: pytest.LogCaptureFixture
) -> None:
    calls = Recorder()

    def angry(name: str, status: TaskStatus) -> None:
        calls(status)
        raise RuntimeError("callback bug")

    def angry_retry(name: str, attempt: int) -> None:
        raise RuntimeError("retry callback bug")

    flaky_calls = Recorder()

    def flaky() -> int:
        flaky_calls("x")
        if flaky_calls.count("x") == 1:
            raise ConnectionError
        return 5

    wf = Workflow("w")
    wf.add_task(Task(name="a", fn=lambda: 1, on_status_change=angry))
    wf.add_task(Task(name="b", fn=flaky, retries=1, delay=0, on_retry=angry_retry))
    with caplog.at_level(logging.ERROR, logger="flowweaver"):
        outcome = run(executor, wf)
    assert outcome.results == {"a": 1, "b": 5}
    assert calls.items == [S.RUNNING]  # disabled after its first failure
    assert flaky_calls.count("x") == 2  # the task ran again because of its retry, not the callback
    messages = [r.getMessage() for r in caplog.records]
    assert (
        "on_status_change of task 'a' raised; it is disabled for the rest of this run" in messages
    )
    assert "on_retry of task 'b' raised; it is disabled for the rest of this run" in messages


class Tally(Monitor):
    def __init__(self) -> None:
        self.events: list[tuple[str, str, TaskStatus | None]] = []

    def on_run_start(self, run: WorkflowRun) -> None:
        self.events.append(("start", run.workflow, None))

    def on_status_change(self, run: WorkflowRun, task_name: str, status: TaskStatus) -> None:
        self.events.append(("status", task_name, status))

    def on_run_end(self, run: WorkflowRun) -> None:
        self.events.append(("end", run.workflow, None))


class Broken(Monitor):
    def __init__(self) -> None:
        self.calls = 0

    def on_status_change(self, run: WorkflowRun, task_name: str, status: TaskStatus) -> None:
        self.calls += 1
        raise RuntimeError("monitor bug")


def test_monitors_see_every_transition_and_a_broken_one_is_dropped(executor: Any) -> None:
    tally, broken = Tally(), Broken()
    outcome = run(executor, diamond(), monitors=[broken, tally])
    assert outcome.ok
    assert tally.events[0] == ("start", "diamond", None)
    assert tally.events[-1] == ("end", "diamond", None)
    transitions = [(name, status) for kind, name, status in tally.events if kind == "status"]
    assert len(transitions) == 8
    for name in ("src", "left", "right", "join"):
        assert [s for n, s in transitions if n == name] == [S.RUNNING, S.COMPLETED]
    assert broken.calls == 1


@pytest.mark.in_process("the task counts its calls across runs in a Recorder shared with the test")
def test_runs_are_independent(executor: Any) -> None:
    counter = Recorder()

    def count() -> int:
        counter("x")
        if counter.count("x") == 1:
            raise ValueError("first run fails")
        return counter.count("x")

    wf = Workflow("w")
    wf.add_task(Task(name="n", fn=count))
    with pytest.raises(WorkflowFailedError):
        run(executor, wf)
    first = wf.last_run
    second = run(executor, wf)
    assert first is not None and first is not second
    assert (first.status("n"), first.result("n")) == (S.FAILED, None)
    assert (second.status("n"), second.result("n"), second.error("n")) == (S.COMPLETED, 2, None)
    assert wf.get_task_status("n") is S.COMPLETED
    assert second.failures == []


def test_run_options_are_validated(executor: Any) -> None:
    wf = diamond()
    with pytest.raises(ConfigurationError) as info:
        run(executor, wf, failure_policy="sometimes")
    assert str(info.value) == (
        "failure_policy must be one of ['fail_fast', 'continue'], got 'sometimes'"
    )
    with pytest.raises(ConfigurationError) as info:
        run(executor, wf, retries=3)
    assert str(info.value).startswith("unknown run option(s) ['retries']")
    assert wf.last_run is None  # nothing started


def test_run_id_is_kept(executor: Any) -> None:
    assert run(executor, diamond(), run_id="nightly-42").run_id == "nightly-42"


@pytest.mark.in_process("the task adds a task to the test's Workflow object")
def test_a_task_added_during_a_run_is_not_part_of_it(executor: Any) -> None:
    wf = Workflow("w")
    box = Box(wf)  # the very workflow, even where calls are pickled (in-process Dask)

    def grow() -> str:
        if "late" not in box.value:
            box.value.add_task(Task(name="late", fn=lambda: "late"), depends_on=["first"])
        return "first"

    wf.add_task(Task(name="first", fn=grow))
    outcome = run(executor, wf)
    assert outcome.results == {"first": "first"}
    assert len(outcome) == 1
    assert run(executor, wf).results == {"first": "first", "late": "late"}


@pytest.mark.in_process("the task waits on an event the test sets")
def test_a_sync_task_that_overruns_its_timeout_fails_and_is_retried(executor: Any) -> None:
    release = SharedEvent()
    calls = Recorder()
    inline = is_sequential(executor)  # outside the task: an executor does not pickle

    def stuck() -> str:
        calls("call")
        if inline:
            time.sleep(0.05)  # inline calls cannot be interrupted: the overrun is seen after
        else:
            release.wait(WAIT)
        return "late"

    wf = Workflow("w")
    wf.add_task(Task(name="stuck", fn=stuck, timeout=0.01, retries=1, delay=0))
    try:
        with pytest.raises(WorkflowFailedError) as info:
            run(executor, wf)
    finally:
        release.set()
    (failure,) = info.value.failures
    assert isinstance(failure.__cause__, TaskTimeoutError)
    assert failure.attempts == 2
    assert calls.count("call") == 2
    assert wf.last_run is not None and wf.last_run.result("stuck") is None  # late result discarded


@pytest.mark.in_process("the task records its cancellation for the test")
def test_an_async_task_past_its_timeout_is_cancelled(executor: Any) -> None:
    cancelled = Recorder()

    async def slow() -> None:
        try:
            await asyncio.sleep(WAIT)
        except asyncio.CancelledError:
            cancelled("yes")
            raise

    wf = Workflow("w")
    wf.add_task(Task(name="slow", fn=slow, timeout=0.02))
    with pytest.raises(WorkflowFailedError) as info:
        run(executor, wf)
    assert isinstance(info.value.failures[0].__cause__, TaskTimeoutError)
    assert cancelled.items == ["yes"]


@pytest.mark.in_process("the tasks signal each other through an event")
def test_a_task_starts_as_soon_as_its_own_dependencies_are_done(concurrent_executor: Any) -> None:
    # Two chains a1 -> a2 and b1 -> b2. a1 only returns once b2 has started: with layer
    # barriers, b2 (layer 2) would wait for a1 (layer 1) and this would deadlock.
    b2_started = SharedEvent()

    def a1() -> str:
        if not b2_started.wait(WAIT):
            raise AssertionError("b2 did not start while a1 was running")
        return "a1"

    def b2(b1: str) -> str:
        b2_started.set()
        return b1 + "b2"

    wf = Workflow("two chains")
    wf.add_task(Task(name="a1", fn=a1))
    wf.add_task(Task(name="b1", fn=lambda: "b1"))
    wf.add_task(Task(name="a2", fn=lambda a1: a1 + "a2"), depends_on=["a1"])
    wf.add_task(Task(name="b2", fn=b2), depends_on=["b1"])
    outcome = concurrent_executor.execute(wf)
    assert outcome.results == {"a1": "a1", "b1": "b1", "a2": "a1a2", "b2": "b1b2"}


@pytest.mark.parametrize("make", [lambda: ThreadedExecutor(max_workers=2),
                                  lambda: AsyncExecutor(max_workers=2)])  # fmt: skip
def test_max_workers_bounds_concurrency(make: Any) -> None:
    lock = threading.Lock()
    active = [0, 0]  # now, peak
    pair = threading.Barrier(2, timeout=WAIT)

    def work() -> None:
        with lock:
            active[0] += 1
            active[1] = max(active[1], active[0])
        pair.wait()  # two tasks must run at once for this to pass
        with lock:
            active[0] -= 1

    wf = Workflow("w")
    for i in range(6):
        wf.add_task(Task(name=f"t{i}", fn=work))
    make().execute(wf)
    assert active[1] == 2


def test_sequential_order_is_deterministic_ready_queue_order() -> None:
    order: list[str] = []
    wf = Workflow("w")
    for name, deps in [("a", []), ("b", []), ("c", ["a"]), ("d", ["b"]), ("e", ["c", "d"])]:
        wf.add_task(Task(name=name, fn=lambda name=name: order.append(name)), depends_on=deps)
    for _ in range(3):
        order.clear()
        SequentialExecutor().execute(wf)
        assert order == ["a", "b", "c", "d", "e"]


@pytest.mark.in_process("the task sends Ctrl-C to the test's own process")
def test_keyboard_interrupt_cancels_the_rest_and_propagates(executor: Any) -> None:
    started = Recorder()
    release = SharedEvent()

    def trigger() -> str:
        started("trigger")
        os.kill(os.getpid(), signal.SIGINT)  # a real Ctrl-C: it wakes a blocked main thread
        release.wait(WAIT)  # still running when the run gives up; released by the test
        return "t"

    wf = Workflow("w")
    wf.add_task(Task(name="trigger", fn=trigger))
    wf.add_task(Task(name="after", fn=lambda: started("after")), depends_on=["trigger"])
    try:
        with pytest.raises(KeyboardInterrupt):
            run(executor, wf)
    finally:
        release.set()
    statuses = wf.last_run.statuses  # type: ignore[union-attr]
    assert statuses == {"trigger": S.CANCELLED, "after": S.CANCELLED}
    assert started.items == ["trigger"]
    assert wf.last_run is not None and wf.last_run.finished_at is not None


def test_execute_async_works_inside_a_running_loop(executor: Any) -> None:
    async def main() -> WorkflowRun:
        outcome: WorkflowRun = await executor.execute_async(diamond())
        return outcome

    assert asyncio.run(main()).results["join"] == (11, 20)


def test_workflow_execute_and_execute_async_default_executors() -> None:
    assert diamond().execute().results["join"] == (11, 20)
    assert asyncio.run(diamond().execute_async()).results["join"] == (11, 20)


def test_failure_policy_accepts_the_enum() -> None:
    wf = Workflow("w")
    wf.add_task(Task(name="bad", fn=lambda: 1 / 0))
    wf.add_task(Task(name="fine", fn=lambda: 1))
    with pytest.raises(WorkflowFailedError):
        SequentialExecutor().execute(wf, failure_policy=FailurePolicy.CONTINUE)
    assert wf.get_task_status("fine") is S.COMPLETED


def test_task_failed_error_is_what_task_execute_raises() -> None:
    with pytest.raises(TaskFailedError):
        Task(name="x", fn=lambda: 1 / 0).execute()
