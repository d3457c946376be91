"""DaskExecutor specifics; its engine behaviour is checked with every executor (test_engine).

Clusters come from the session fixtures in conftest: ``dask_threads`` (workers are threads of
this process) and ``dask_processes`` (two worker processes, reached over TCP).
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import logging
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from flowweaver import (
    ConfigurationError,
    DaskExecutor,
    MissingDependencyError,
    PoolExecutor,
    ResultUnavailableError,
    Task,
    TaskStatus,
    TaskTimeoutError,
    TransferError,
    Workflow,
    WorkflowFailedError,
)
from flowweaver._dask import DaskLane

from . import _payload
from ._payload import Payload
from .conftest import HAVE_DASK, WAIT, InProcess, Recorder, SharedEvent, diamond

needs_dask = pytest.mark.skipif(not HAVE_DASK, reason="the 'dask' extra is not installed")
ROOT = Path(__file__).resolve().parent.parent


def test_without_distributed_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # makes `import distributed` fail
    with pytest.raises(MissingDependencyError) as info:
        DaskExecutor()
    assert str(info.value) == "DaskExecutor needs the 'dask' extra: pip install 'flowweaver[dask]'"
    assert isinstance(info.value, ImportError)
    assert (info.value.extra, info.value.name) == ("dask", "distributed")


@needs_dask
def test_arguments_are_validated(dask_threads: DaskExecutor) -> None:
    client = dask_threads.client
    with pytest.raises(ConfigurationError) as info:
        DaskExecutor(client, "tcp://127.0.0.1:8786")
    assert str(info.value) == (
        f"DaskExecutor takes a client or an address, not both; got client={client!r} "
        "and address='tcp://127.0.0.1:8786'"
    )
    with pytest.raises(ConfigurationError) as info:
        DaskExecutor(client="tcp://127.0.0.1:8786")  # type: ignore[arg-type]
    assert str(info.value) == (
        "DaskExecutor client must be a distributed.Client, got 'tcp://127.0.0.1:8786'"
    )
    with pytest.raises(ConfigurationError) as info:
        DaskExecutor(address="")
    assert str(info.value) == "DaskExecutor address must be a non-empty str, got ''"
    with pytest.raises(ConfigurationError) as info:
        DaskExecutor(client, max_workers=0)
    assert str(info.value) == "DaskExecutor: max_workers must be an int >= 1, got 0"
    with pytest.raises(ConfigurationError) as info:
        DaskExecutor(client, send_interval=-0.001)
    assert str(info.value) == "DaskExecutor: send_interval must be a finite number >= 0, got -0.001"


@needs_dask
def test_submit_returns_a_concurrent_future_and_passes_any_keyword(
    dask_threads: DaskExecutor, dask_processes: DaskExecutor
) -> None:
    # The pipeline sends single calls through submit(); `pure` and `key` are Dask's own
    # submit options, yet here they must reach the function.
    for executor in (dask_threads, dask_processes):
        future = executor.submit(lambda x, pure, key: (x, pure, key, os.getpid()), 1, pure=2, key=3)
        assert isinstance(future, cf.Future)
        x, pure, key, pid = future.result(timeout=WAIT)
        assert (x, pure, key) == (1, 2, 3)
        assert (pid == os.getpid()) is (executor is dask_threads)
        failing = executor.submit(lambda: 1 / 0)
        assert isinstance(failing.exception(timeout=WAIT), ZeroDivisionError)


@needs_dask
def test_results_stay_on_the_cluster_until_read_and_outputs_come_back_at_the_end(
    dask_threads: DaskExecutor,
) -> None:
    from distributed import Client

    scheduler = dask_threads.client.scheduler
    assert scheduler is not None  # a connected client has one
    with Client(scheduler.address, set_as_default=False) as client:
        run = DaskExecutor(client).execute(diamond())
    # The client is closed: the output was gathered when the run ended; `src` never was.
    assert run.result("join") == (11, 20)
    with pytest.raises(ResultUnavailableError) as info:
        run.result("src")
    assert str(info.value) == (
        "the result of task 'src' cannot be fetched: "
        "its Dask client is closed (read it before closing the client)"
    )
    assert info.value.task_name == "src"


@needs_dask
def test_a_large_intermediate_result_never_comes_back_to_the_client(
    dask_processes: DaskExecutor,
) -> None:
    # 32 MB made on a worker, read by a task on a worker. The payload cannot be unpickled in
    # this process: each time it arrives here, it is refused and leaves a mark.
    me = os.getpid()
    _payload.REFUSED.clear()
    wf = Workflow("big intermediate")
    wf.add_task(Task(name="produce", fn=lambda: Payload(b"x" * 32_000_000, me)))
    wf.add_task(
        Task(name="measure", fn=lambda produce: (len(produce.data), os.getpid())),
        depends_on=["produce"],
    )
    run = dask_processes.execute(wf)
    size, worker = run.result("measure")
    assert size == 32_000_000
    assert worker != me
    assert _payload.REFUSED == []  # it never came here, not even when the run ended
    # Reading the intermediate is the first time it travels here, and it refuses to.
    with pytest.raises(ResultUnavailableError) as info:
        run.result("produce")
    assert str(info.value) == (
        "the result of task 'produce' cannot be fetched: "
        "RuntimeError: the payload was rebuilt in the client process"
    )
    assert _payload.REFUSED == [32_000_000]  # the trap works: this is what it would have seen


@needs_dask
def test_an_unserialisable_task_fails_with_a_typed_error(dask_threads: DaskExecutor) -> None:
    lock = threading.Lock()
    wf = Workflow("w")
    wf.add_task(Task(name="locked", fn=lambda: lock))
    for k in range(5):  # ready with it, so sent in the same graph as it: they must still run
        wf.add_task(Task(name=f"fine{k}", fn=lambda k=k: f"ok{k}"))
    with pytest.raises(WorkflowFailedError) as info:
        dask_threads.execute(wf, failure_policy="continue")
    (failure,) = info.value.failures
    error = failure.__cause__
    assert isinstance(error, TransferError)
    assert isinstance(error, TypeError)
    assert str(error) == (
        "task 'locked' cannot be sent to the cluster: TypeError: cannot pickle "
        "'_thread.lock' object; a task's function, what it captures and its arguments must "
        "pickle with cloudpickle"
    )
    assert isinstance(error.__cause__, TypeError)
    assert wf.last_run is not None
    assert [wf.last_run.result(f"fine{k}") for k in range(5)] == [f"ok{k}" for k in range(5)]


@needs_dask
def test_calls_that_become_ready_together_go_to_the_scheduler_as_one_graph(
    dask_threads: DaskExecutor, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = dask_threads.client
    graphs: list[int] = []  # calls per message to the scheduler
    submit, map_ = client.submit, client.map

    def one(*args: Any, **kwargs: Any) -> Any:
        graphs.append(1)
        return submit(*args, **kwargs)

    def many(fn: Any, *iterables: list[Any], **kwargs: Any) -> Any:
        graphs.append(len(iterables[0]))
        return map_(fn, *iterables, **kwargs)

    monkeypatch.setattr(client, "submit", one)
    monkeypatch.setattr(client, "map", many)
    wf = Workflow("w")
    for k in range(6):
        wf.add_task(Task(name=f"t{k}", fn=lambda k=k: k))
    wf.add_task(Task(name="sum", fn=lambda *xs: sum(xs)), depends_on=[f"t{k}" for k in range(6)])
    run = dask_threads.execute(wf)
    assert run.result("sum") == 15
    assert graphs == [6, 1]


@needs_dask
def test_calls_of_a_burst_are_not_sent_once_the_run_stops_in_it(
    dask_threads: DaskExecutor, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[object] = []

    def record_send(*args: Any, **kwargs: Any) -> Any:
        sent.append(args)
        raise AssertionError("sent after the run stopped")

    monkeypatch.setattr(dask_threads.client, "submit", record_send)
    monkeypatch.setattr(dask_threads.client, "map", record_send)

    def refuse(*upstream: object) -> bool:
        raise ValueError("no")

    wf = Workflow("w")
    wf.add_task(Task(name="a", fn=lambda: 1))
    wf.add_task(Task(name="b", fn=lambda: 2))
    wf.add_task(Task(name="c", fn=lambda: 3, when=refuse))  # fails fast while a, b are queued
    with pytest.raises(WorkflowFailedError):
        dask_threads.execute(wf)
    assert sent == []
    assert wf.get_task_status("a") is TaskStatus.CANCELLED
    assert wf.get_task_status("b") is TaskStatus.CANCELLED


@needs_dask
def test_a_call_cancelled_before_it_was_sent_reports_its_cancellation(
    dask_threads: DaskExecutor, monkeypatch: pytest.MonkeyPatch
) -> None:
    lane = DaskLane(dask_threads.client)
    lane.send(7, int, ("3",), None, "t", None)
    assert lane.cancel(7) is True
    outcome = lane.outbox.get_nowait()
    assert outcome is not None and outcome[:2] == (7, False)
    assert isinstance(outcome[2], cf.CancelledError)

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a cancelled call was sent")

    monkeypatch.setattr(dask_threads.client, "submit", refuse)
    monkeypatch.setattr(dask_threads.client, "map", refuse)
    lane.flush()  # nothing left to send
    assert lane.outbox.empty()
    lane.close(wait=False)


def _cannot_be_rebuilt() -> object:
    raise RuntimeError("cannot be rebuilt on the scheduler")


class Unbuildable:
    """A task function that pickles but cannot be unpickled: the scheduler fails its graph."""

    def __call__(self) -> str:
        return "never"

    def __reduce__(self) -> tuple[object, ...]:
        return (_cannot_be_rebuilt, ())


@needs_dask
def test_a_graph_the_scheduler_fails_fails_only_the_call_that_broke_it(
    dask_threads: DaskExecutor,
) -> None:
    wf = Workflow("w")
    wf.add_task(Task(name="bad", fn=Unbuildable()))
    for k in range(5):  # ready with it, so sent in the same graph as it
        wf.add_task(Task(name=f"fine{k}", fn=lambda k=k: k))
    with pytest.raises(WorkflowFailedError) as info:
        dask_threads.execute(wf, failure_policy="continue")
    (failure,) = info.value.failures
    assert failure.task_name == "bad"
    assert "Error during deserialization of the task graph" in str(failure.__cause__)
    assert wf.last_run is not None
    assert [wf.last_run.result(f"fine{k}") for k in range(5)] == list(range(5))


class LockedError(Exception):
    """An exception that cannot be pickled: it holds a lock."""

    def __init__(self) -> None:
        super().__init__("holding a lock")
        self.lock = threading.Lock()


@needs_dask
def test_an_error_that_cannot_be_pickled_still_fails_its_task_once(
    dask_threads: DaskExecutor, record: Recorder
) -> None:
    def fails() -> None:
        record("ran")
        raise LockedError

    wf = Workflow("w")
    wf.add_task(Task(name="fails", fn=fails))
    wf.add_task(Task(name="fine", fn=lambda: "ok"))  # in the same graph
    with pytest.raises(WorkflowFailedError) as info:
        dask_threads.execute(wf, failure_policy="continue")
    (failure,) = info.value.failures
    assert "LockedError" in str(failure.__cause__)  # Dask sends a stand-in with its repr
    assert record.items == ["ran"]
    assert wf.last_run is not None and wf.last_run.result("fine") == "ok"


@needs_dask
def test_a_graph_cancelled_for_a_lost_dependency_costs_only_the_call_that_named_it(
    dask_threads: DaskExecutor,
) -> None:
    client = dask_threads.client
    gone = client.submit(int, "1", pure=False)
    gone.result()
    client.cancel([gone])  # the scheduler forgets it: a dependency that is lost
    lane = DaskLane(client)
    lane.send(1, int, (gone,), None, "a", None)
    lane.send(2, int, ("2",), None, "b", None)
    lane.flush()  # one graph: the scheduler cancels both calls in it
    outcomes = {}
    for _ in range(2):
        outcome = lane.outbox.get(timeout=WAIT)
        assert outcome is not None
        outcomes[outcome[0]] = outcome
    assert outcomes[1][1] is False and isinstance(outcomes[1][2], cf.CancelledError)
    assert outcomes[2][1] is True and outcomes[2][2].fetch() == 2
    lane.close(wait=False)


@needs_dask
def test_a_running_call_cancelled_from_outside_is_not_run_again(
    dask_threads: DaskExecutor, record: Recorder
) -> None:
    gate = SharedEvent()
    started = SharedBarrier(3, timeout=WAIT)  # both calls and the test

    def work(label: str) -> str:
        record(label)
        started.wait()
        gate.wait(WAIT)
        return label

    lane = DaskLane(dask_threads.client)
    lane.send(1, work, ("a",), None, "a", None)
    lane.send(2, work, ("b",), None, "b", None)
    lane.flush()
    started.wait()
    dask_threads.client.cancel([lane._futures[1]])  # someone else's cancel, not the lane's
    outcome = lane.outbox.get(timeout=WAIT)
    gate.set()
    assert outcome is not None and outcome[0] == 1
    assert isinstance(outcome[2], cf.CancelledError)
    outcome = lane.outbox.get(timeout=WAIT)
    assert outcome is not None and outcome[:2] == (2, True)
    assert sorted(map(str, record.items)) == ["a", "b"]  # neither ran twice
    lane.close(wait=False)


@needs_dask
def test_retries_and_timeouts_work_across_processes(
    dask_processes: DaskExecutor, tmp_path: Path
) -> None:
    calls = tmp_path / "calls"  # a counter that worker processes share: a file

    def flaky() -> int:
        with calls.open("a") as f:
            f.write("x")
        count = len(calls.read_text())
        if count < 3:
            raise ConnectionError(f"attempt {count}")
        return count

    async def slow() -> None:
        await asyncio.sleep(WAIT)

    wf = Workflow("w")
    wf.add_task(Task(name="flaky", fn=flaky, retries=3, delay=0))
    wf.add_task(Task(name="slow", fn=slow, timeout=0.05))
    with pytest.raises(WorkflowFailedError) as info:
        dask_processes.execute(wf, failure_policy="continue")
    run = wf.last_run
    assert run is not None
    assert (run.result("flaky"), run.attempts("flaky")) == (3, 3)
    (failure,) = info.value.failures
    timeout = failure.__cause__
    assert isinstance(timeout, TaskTimeoutError)  # raised on the worker, pickled back whole
    assert (timeout.task_name, timeout.timeout) == ("slow", 0.05)


class SharedBarrier(InProcess, threading.Barrier):
    """A barrier that tasks on in-process Dask workers share with the test."""


@needs_dask
def test_max_workers_bounds_the_calls_in_flight(dask_threads: DaskExecutor) -> None:
    moves = Recorder()  # "+" when a call starts, "-" when it ends; shared by reference
    seen = Recorder()
    pair = SharedBarrier(2, timeout=WAIT)  # two calls must run at once, or the run fails

    def work() -> None:
        moves("+")
        pair.wait()
        seen(moves.count("+") - moves.count("-"))
        moves("-")

    wf = Workflow("w")
    for i in range(6):
        wf.add_task(Task(name=f"t{i}", fn=work))
    DaskExecutor(dask_threads.client, max_workers=2).execute(wf)  # the cluster has 4 threads
    assert len(seen.items) == 6
    assert max(seen.items) == 2  # type: ignore[type-var]


@needs_dask
def test_the_current_client_is_used_and_stays_open(dask_threads: DaskExecutor) -> None:
    client = dask_threads.client
    batching = client.scheduler_comm.interval  # type: ignore[union-attr]
    with client.as_current():
        executor = DaskExecutor()
    assert executor.client is client
    executor.execute(diamond())
    assert client.scheduler_comm.interval == batching  # type: ignore[union-attr]  # not ours
    executor.shutdown()
    assert client.status == "running"


@needs_dask
def test_send_interval_sets_the_clients_batching_before_each_run(
    dask_threads: DaskExecutor,
) -> None:
    client = dask_threads.client
    comm = client.scheduler_comm
    assert comm is not None
    batching = comm.interval
    try:
        executor = DaskExecutor(client, send_interval=0.001)
        assert comm.interval == 0.001
        comm.interval = 0.05  # as a reconnected client's new comm would be
        assert executor.execute(diamond()).result("join") == (11, 20)
        assert comm.interval == 0.001
    finally:
        comm.interval = batching


@needs_dask
def test_an_address_connects_a_client_that_the_executor_owns(
    dask_processes: DaskExecutor,
) -> None:
    scheduler = dask_processes.client.scheduler
    assert scheduler is not None  # a connected client has one
    address = scheduler.address
    assert isinstance(address, str)
    assert address.startswith("tcp://")
    with DaskExecutor(address=address) as executor:
        assert executor.execute(diamond()).result("join") == (11, 20)
        # An owned client sends to the scheduler every 2 ms, not Dask's default 10 ms.
        assert executor.client.scheduler_comm.interval == 0.002  # type: ignore[union-attr]
    assert executor.client.status == "closed"
    assert dask_processes.client.status == "running"  # the cluster is not ours to stop


@needs_dask
@pytest.mark.slow
def test_with_no_client_a_local_cluster_is_started_and_closed() -> None:
    # A real user's script (spawned worker processes need the __main__ guard).
    script = (
        "from flowweaver import DaskExecutor, Task, Workflow\n"
        "if __name__ == '__main__':\n"
        "    wf = Workflow('w')\n"
        "    wf.add_task(Task(name='pid', fn=lambda: __import__('os').getpid()))\n"
        "    with DaskExecutor() as executor:\n"
        "        pid = executor.execute(wf).result('pid')\n"
        "    print(pid != __import__('os').getpid(), executor.client.status)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True closed"


@needs_dask
def test_a_dask_client_given_to_execute_runs_through_dask_executor(
    dask_threads: DaskExecutor,
) -> None:
    # Not as a plain pool: Dask's default pure=True would take a retry for the call it
    # already ran, and the task would fail three times with the same error.
    calls = Recorder()

    def flaky() -> str:
        calls("x")
        if calls.count("x") == 1:
            raise ConnectionError("first")
        return "ok"

    wf = Workflow("w")
    wf.add_task(Task(name="flaky", fn=flaky, retries=2, delay=0))
    run = wf.execute(dask_threads.client)  # type: ignore[arg-type]
    assert (run.result("flaky"), run.attempts("flaky")) == ("ok", 2)


@needs_dask
def test_pool_executor_takes_a_dask_client_executor_only_when_impure(
    dask_threads: DaskExecutor,
) -> None:
    client = dask_threads.client
    with pytest.raises(ConfigurationError) as info:
        PoolExecutor(client)  # type: ignore[arg-type]
    assert str(info.value) == (
        f"PoolExecutor cannot run on a Dask client; use DaskExecutor(client), got {client!r}"
    )
    pure = client.get_executor()
    with pytest.raises(ConfigurationError) as info:
        PoolExecutor(pure)
    assert str(info.value) == (
        "a Dask client executor must be made with client.get_executor(pure=False), or Dask "
        f"takes a retry for the call it already ran; got {pure!r}"
    )
    calls = Recorder()

    def flaky() -> int:
        calls("x")
        if calls.count("x") == 1:
            raise ConnectionError("first")
        return 1

    wf = diamond()
    wf.add_task(Task(name="flaky", fn=flaky, retries=1, delay=0))
    run = PoolExecutor(client.get_executor(pure=False)).execute(wf)
    assert run.results == {"src": 10, "left": 11, "right": 20, "join": (11, 20), "flaky": 1}
    assert run.status("flaky") is TaskStatus.COMPLETED


@needs_dask
def test_the_elements_of_a_mapped_task_go_to_the_scheduler_as_one_graph(
    dask_threads: DaskExecutor, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = dask_threads.client
    graphs: list[int] = []  # calls per message to the scheduler
    submit, map_ = client.submit, client.map

    def one(*args: Any, **kwargs: Any) -> Any:
        graphs.append(1)
        return submit(*args, **kwargs)

    def many(fn: Any, *iterables: list[Any], **kwargs: Any) -> Any:
        graphs.append(len(iterables[0]))
        return map_(fn, *iterables, **kwargs)

    monkeypatch.setattr(client, "submit", one)
    monkeypatch.setattr(client, "map", many)
    wf = Workflow("w")
    wf.add_task(Task(name="numbers", fn=lambda: list(range(8))))
    wf.add_task(Task(name="square", fn=lambda n: n * n, map_over="numbers"), ["numbers"])
    run = dask_threads.execute(wf)
    assert run.result("square") == [n * n for n in range(8)]
    assert graphs == [1, 8]  # the list, then every element of it in one graph


@needs_dask
def test_the_scheduler_messages_the_resend_rule_matches_are_the_installed_ones() -> None:
    """The resend rule matches distributed's own texts: an upgrade that rewords them must fail
    here, not silently fail every call of a burst again."""
    import inspect

    from distributed import scheduler

    from flowweaver._dask import _GRAPH_NOT_REBUILT, _LOST_DEPENDENCIES

    source = inspect.getsource(scheduler)
    assert _GRAPH_NOT_REBUILT in source
    assert f'"reason": "{_LOST_DEPENDENCIES}"' in source


_RETRIED_ON_OUR_CLUSTER = """
import os
from flowweaver import DaskExecutor, Task, Workflow

def flaky():
    marker = os.environ["MARKER"]
    if not os.path.exists(marker):
        open(marker, "w").close()
        raise ValueError("first attempt fails")
    return "ok"

if __name__ == "__main__":
    wf = Workflow("dask")
    wf.add_task(Task(name="flaky", fn=flaky, retries=2, delay=0.0))
    with DaskExecutor() as executor:
        print(wf.execute(executor).results)
"""


@needs_dask
def test_a_cluster_the_executor_starts_logs_no_compute_failed_for_a_retried_task(
    tmp_path: Path,
) -> None:
    script = tmp_path / "retried.py"
    script.write_text(_RETRIED_ON_OUR_CLUSTER)
    done = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True, text=True, timeout=180, check=False, cwd=tmp_path,
        env={**os.environ, "MARKER": str(tmp_path / "marker")},
    )  # fmt: skip
    assert (done.returncode, done.stdout) == (0, "{'flaky': 'ok'}\n"), done.stderr
    assert (tmp_path / "marker").exists()  # the first attempt did fail on a worker
    assert "Compute Failed" not in done.stderr


def test_the_compute_failed_filter_drops_only_those_records() -> None:
    from flowweaver._dask_logs import ComputeFailedFilter

    def record(msg: str) -> logging.LogRecord:
        return logging.LogRecord("distributed.worker", logging.ERROR, "w.py", 1, msg, (), None)

    keep = ComputeFailedFilter()
    assert not keep.filter(record("Compute Failed\nKey:       %s\n"))
    assert keep.filter(record("Could not find data: %s"))
