"""ProcessExecutor: worker processes we manage, timeouts that kill, pickling with a clear error.

Tasks here are module-level functions (tests/authoring_tasks.py): they must pickle. Most tests
share the session's two-worker executor (processes are slow to start); the ones that count on
a single worker make their own.
"""

from __future__ import annotations

import concurrent.futures as cf
import functools
import os
import pickle
import threading
from typing import TYPE_CHECKING, Any

import pytest

from flowweaver import (
    ConfigurationError,
    ProcessExecutor,
    Task,
    TaskFailedError,
    TaskStatus,
    TaskTimeoutError,
    TransferError,
    WorkerDiedError,
    Workflow,
    WorkflowFailedError,
)

from . import authoring_tasks as at
from .conftest import FakeClock

if TYPE_CHECKING:
    from pathlib import Path

WAIT = 30.0


def gone(pid: int) -> bool:
    """True when no process has that id any more (it was killed and reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def only_failure(info: pytest.ExceptionInfo[WorkflowFailedError]) -> TaskFailedError:
    (failure,) = info.value.failures
    return failure


def test_tasks_run_in_other_processes(process_executor: ProcessExecutor) -> None:
    wf = Workflow("w")
    wf.add_task(at.pid)
    wf.add_task(Task(name="seven", fn=functools.partial(at.add.fn, 3, 4)))
    run = process_executor.execute(wf)
    assert run.result("pid") != os.getpid()
    assert run.result("seven") == 7


def test_decorated_module_level_functions_pickle_by_reference(
    process_executor: ProcessExecutor,
) -> None:
    # The decorator shadows the function in its module: plain pickle cannot find it...
    with pytest.raises(pickle.PicklingError):
        pickle.dumps(at.add.fn)
    # ...but the executor sends it as a reference to the task, and functions nested in
    # arguments (a task object, a partial) travel the same way.
    assert process_executor.submit(at.add.fn, 2, 3).result(WAIT) == 5
    assert process_executor.submit(functools.partial(at.add, 1), 1).result(WAIT) == 2
    assert process_executor.submit(at.add, 5, 5).result(WAIT) == 10


def test_async_functions_run_in_the_worker(process_executor: ProcessExecutor) -> None:
    wf = Workflow("w")
    wf.add_task(Task(name="double", fn=functools.partial(at.async_double, 21)))
    assert process_executor.execute(wf).result("double") == 42


def test_a_lambda_or_closure_fails_its_task_with_a_clear_error(
    process_executor: ProcessExecutor,
) -> None:
    offset = 1
    closure = lambda: offset  # noqa: E731
    wf = Workflow("w")
    wf.add_task(Task(name="closure", fn=closure))
    wf.add_task(Task(name="after", fn=at.one.fn))
    with pytest.raises(WorkflowFailedError) as info:
        process_executor.execute(wf, failure_policy="continue")
    failure = only_failure(info)
    cause = failure.__cause__
    assert isinstance(cause, TransferError)
    assert isinstance(cause, pickle.PicklingError)
    assert str(cause) == (
        f"task 'closure' cannot be sent to a worker process: its function {closure!r} cannot be "
        f"pickled (AttributeError: Can't pickle local object "
        f"'test_a_lambda_or_closure_fails_its_task_with_a_clear_error.<locals>.<lambda>'); "
        "a function must be defined at module level to run in a process; run it on "
        "ThreadedExecutor (executor='thread') instead"
    )
    assert wf.last_run is not None and wf.last_run.result("after") == 1  # the rest ran


def test_unpicklable_arguments_results_and_exceptions_are_named(
    process_executor: ProcessExecutor,
) -> None:
    lock = threading.Lock()
    future = process_executor.submit(at.ordered.fn, lock)
    error = future.exception(WAIT)
    assert isinstance(error, TransferError)
    assert str(error) == (
        "task 'ordered' cannot be sent to a worker process: its arguments cannot be pickled "
        "(TypeError: cannot pickle '_thread.lock' object); run it on ThreadedExecutor "
        "(executor='thread') instead"
    )
    error = process_executor.submit(at.return_unpicklable).exception(WAIT)
    assert isinstance(error, TransferError) and error.returning
    assert str(error).startswith(
        "task 'return_unpicklable' ran in a worker process but its outcome cannot be sent "
        "back: its result cannot be pickled (AttributeError: Can't pickle local object"
    )
    error = process_executor.submit(at.raise_unpicklable).exception(WAIT)
    assert isinstance(error, TransferError)
    assert str(error) == (
        "task 'raise_unpicklable' ran in a worker process but its outcome cannot be sent back: "
        "its exception Unpicklable('bad') cannot be pickled (TypeError: no pickling this one)"
    )


def test_an_exception_keeps_its_type_and_the_worker_traceback(
    process_executor: ProcessExecutor,
) -> None:
    error = process_executor.submit(at.raise_value_error, "broken").exception(WAIT)
    assert isinstance(error, ValueError)
    assert str(error) == "broken"
    (note,) = error.__notes__
    assert note.startswith("in the worker process:\nTraceback (most recent call last):")
    assert "in raise_value_error" in note


def test_a_timed_out_task_is_killed_and_the_next_task_runs(tmp_path: Path) -> None:
    stuck = Task(name="stuck", fn=functools.partial(at.block_then_write, str(tmp_path)),
                 timeout=1.0)  # fmt: skip
    wf = Workflow("w")
    wf.add_task(stuck)
    wf.add_task(Task(name="after_stuck", fn=lambda stuck: stuck), depends_on=["stuck"])
    wf.add_task(at.pid)  # independent: must run even though the only worker was killed
    with ProcessExecutor(max_workers=1) as executor:
        executor.submit(at.one.fn).result(WAIT)  # warm the worker: the timeout is for the task
        with pytest.raises(WorkflowFailedError) as info:
            executor.execute(wf, failure_policy="continue")
        started = int((tmp_path / "started").read_text())
        assert gone(started)  # killed: it cannot write "done", ever
        assert not (tmp_path / "done").exists()
        failure = only_failure(info)
        assert (failure.task_name, type(failure.__cause__)) == ("stuck", TaskTimeoutError)
        run = wf.last_run
        assert run is not None
        assert run.status("after_stuck") is TaskStatus.UPSTREAM_FAILED
        assert run.result("pid") not in (started, os.getpid())  # on the replacement worker
        assert executor.submit(at.add.fn, 1, 1).result(WAIT) == 2  # and the pool goes on


def test_a_timed_out_attempt_is_retried_on_a_fresh_worker(
    process_executor: ProcessExecutor, tmp_path: Path
) -> None:
    process_executor.submit(at.one.fn).result(WAIT)
    wf = Workflow("w")
    wf.add_task(Task(name="slow", fn=functools.partial(at.slow_first_attempt, str(tmp_path)),
                     timeout=1.5, retries=1, delay=0.0))  # fmt: skip
    run = process_executor.execute(wf, clock=FakeClock())
    first = int((tmp_path / "first-attempt").read_text())
    assert gone(first)
    assert run.attempts("slow") == 2
    assert run.result("slow").startswith("attempt in ")
    assert run.result("slow") != f"attempt in {first}"


def test_a_worker_that_dies_fails_its_task_and_is_replaced(
    process_executor: ProcessExecutor,
) -> None:
    wf = Workflow("w")
    wf.add_task(Task(name="crash", fn=functools.partial(at.exit_abruptly, 3)))
    with pytest.raises(WorkflowFailedError) as info:
        process_executor.execute(wf)
    cause = only_failure(info).__cause__
    assert isinstance(cause, WorkerDiedError)
    assert (str(cause), cause.exitcode) == (
        "the worker process running task 'crash' died (exit code 3)", 3,
    )  # fmt: skip
    assert process_executor.submit(at.two.fn).result(WAIT) == 2


def test_ctrl_c_stops_the_run_and_kills_what_it_still_runs(
    process_executor: ProcessExecutor, tmp_path: Path
) -> None:
    wf = Workflow("w")
    wf.add_task(
        Task(
            name="interrupt",
            fn=functools.partial(at.interrupt_then_block, os.getpid(), str(tmp_path)),
        )
    )
    wf.add_task(Task(name="after", fn=at.one.fn), depends_on=["interrupt"])  # fmt: skip
    with pytest.raises(KeyboardInterrupt):
        process_executor.execute(wf)
    assert wf.last_run is not None
    assert wf.last_run.statuses == {"interrupt": TaskStatus.CANCELLED,
                                    "after": TaskStatus.CANCELLED}  # fmt: skip
    assert gone(int((tmp_path / "started").read_text()))  # the run left nothing running
    assert not (tmp_path / "done").exists()
    assert process_executor.submit(at.two.fn).result(WAIT) == 2


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_submit_futures_can_be_cancelled_before_they_start(tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    with ProcessExecutor(max_workers=1) as executor:
        blocker = executor.submit(at.read_fifo, str(gate))  # holds the only worker
        queued = executor.submit(at.one.fn)
        assert queued.cancel()
        later = executor.submit(at.two.fn)
        executor.shutdown(wait=False, cancel_futures=True)
        assert later.cancelled()
        with pytest.raises(cf.CancelledError):
            later.result(WAIT)
        gate.write_text("go")  # opening the pipe for writing releases the blocker
        assert blocker.result(WAIT) == "go"  # a running call finishes after shutdown
        assert queued.cancelled()
    # A new use after shutdown starts new workers.
    assert executor.submit(at.three.fn).result(WAIT) == 3
    executor.shutdown()


def test_shutdown_waits_for_submitted_calls() -> None:
    executor = ProcessExecutor(max_workers=2)
    futures = [executor.submit(at.add.fn, i, i) for i in range(6)]
    executor.shutdown(wait=True)
    assert [f.result(0) for f in futures] == [0, 2, 4, 6, 8, 10]
    executor.shutdown()  # idempotent


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_workers": 0}, "ProcessExecutor: max_workers must be an int >= 1, got 0"),
        ({"start_method": "fork"}, "ProcessExecutor: start_method must be one of "),
    ],
)
def test_bad_arguments_are_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        ProcessExecutor(**kwargs)
    assert str(info.value).startswith(message)


def test_spawn_works_too_and_repr_says_which() -> None:
    with ProcessExecutor(max_workers=1, start_method="spawn") as executor:
        assert repr(executor) == "ProcessExecutor(max_workers=1, start_method='spawn')"
        assert executor.submit(at.add.fn, 20, 22).result(WAIT) == 42
