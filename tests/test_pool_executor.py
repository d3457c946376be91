"""PoolExecutor on a process pool: the generic adapter for loky, mpi4py and the like.

The standard library's ``ProcessPoolExecutor`` (with ``spawn``: this test process runs threads)
stands in for the process pools users bring; Dask's client executor is covered in test_dask.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import pickle
from functools import partial
from typing import TYPE_CHECKING

import pytest

from flowweaver import PoolExecutor, Task, Workflow, WorkflowFailedError

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


def source() -> int:
    return 10


def plus_one(src: int) -> tuple[int, int]:
    return src + 1, os.getpid()


def flaky(counter: str) -> int:
    with open(counter, "a") as f:
        f.write("x")
    with open(counter) as f:
        count = len(f.read())
    if count < 2:
        raise ConnectionError(f"attempt {count}")
    return count


@pytest.fixture(scope="module")
def processes() -> Iterator[cf.ProcessPoolExecutor]:
    with cf.ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        yield pool


def test_a_workflow_runs_in_the_pool_processes_and_retries_there(
    processes: cf.ProcessPoolExecutor, tmp_path: Path
) -> None:
    counter = str(tmp_path / "calls")
    wf = Workflow("w")
    wf.add_task(Task(name="src", fn=source))
    wf.add_task(Task(name="next", fn=plus_one), depends_on=["src"])
    wf.add_task(Task(name="flaky", fn=partial(flaky, counter), retries=1, delay=0))
    executor = PoolExecutor(processes)
    assert executor.max_workers == 2  # read from the pool
    run = executor.execute(wf)
    value, pid = run.result("next")
    assert (value, pid != os.getpid()) == (11, True)
    assert (run.result("flaky"), run.attempts("flaky")) == (2, 2)


def test_an_unpicklable_call_fails_the_task_not_the_run(processes: cf.ProcessPoolExecutor) -> None:
    # The stdlib pool pickles functions by reference, so a lambda cannot be sent: its attempts
    # fail (retried, then reported) instead of hanging the run.
    wf = Workflow("w")
    wf.add_task(Task(name="lambda", fn=lambda: 1, retries=1, delay=0))
    wf.add_task(Task(name="fine", fn=source))
    with pytest.raises(WorkflowFailedError) as info:
        PoolExecutor(processes).execute(wf, failure_policy="continue")
    (failure,) = info.value.failures
    assert (failure.task_name, failure.attempts) == ("lambda", 2)
    assert isinstance(failure.__cause__, pickle.PicklingError | AttributeError)
    assert wf.last_run is not None and wf.last_run.result("fine") == 10
