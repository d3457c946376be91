"""Shared fixtures: every behavioural test runs on every executor."""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import importlib.util
import os
import subprocess
import sys
import threading
import weakref
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, ClassVar, TypeVar

import pytest
from hypothesis import settings

from flowweaver import (
    AsyncExecutor,
    BaseExecutor,
    DaskExecutor,
    PoolExecutor,
    ProcessExecutor,
    SequentialExecutor,
    Task,
    ThreadedExecutor,
    Workflow,
    WorkflowRun,
    _scope,
)
from flowweaver.testing import FakeClock as FakeClock  # noqa: PLC0414 - re-exported to tests

# Checked by mypy only (test_decorator runs mypy on it); importing it would fail on purpose.
collect_ignore = ["typecheck_task.py"]

T = TypeVar("T")

ExecutorFactory = Callable[[], object]

#: Seconds a test waits for an event before it declares a deadlock (a hang fails, never stalls).
WAIT = 10.0

# `HYPOTHESIS_PROFILE=thorough pytest tests/test_properties.py` explores far more cases.
settings.register_profile("thorough", max_examples=400, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

#: The Dask executors join every behavioural test when the `dask` extra is installed: on a
#: cluster whose workers are threads of this process, and (where a test can work across
#: processes) on one whose workers are separate processes.
HAVE_DASK = importlib.util.find_spec("distributed") is not None
DASK_EXECUTORS = ["dask", "dask-processes"] if HAVE_DASK else []


#: The smaller conformance set that runs on Dask workers in other processes (issue 7): the
#: engine's behavioural tests. Elsewhere, tests share live recorders with their tasks.
CROSS_PROCESS_MODULES = frozenset({"tests.test_engine"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run the process-worker Dask cluster only on the cross-process conformance set."""
    kept: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        module = getattr(getattr(item, "module", None), "__name__", "")
        if params.get("executor") == "dask-processes" and module not in CROSS_PROCESS_MODULES:
            dropped.append(item)
        else:
            kept.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "in_process(reason): the test shares live objects with its tasks, so it is skipped "
        "on executors whose workers are other processes",
    )
    config.addinivalue_line(
        "markers",
        "not_on_dask(reason): the behaviour is Dask's own on a cluster (documented), so the "
        "test is skipped on Dask executors",
    )


def _dask_cluster(
    processes: bool, workers: int, threads: int, lookahead: int = 0
) -> Iterator[object]:
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            processes=processes, n_workers=workers, threads_per_worker=threads,
            dashboard_address=":0",
        ) as cluster,
        Client(cluster, set_as_default=False) as client,
    ):  # fmt: skip
        yield DaskExecutor(client, lookahead=lookahead)


@pytest.fixture(scope="session")
def dask_threads() -> Iterator[object]:
    """A Dask cluster whose workers are threads of this process (starts in milliseconds)."""
    yield from _dask_cluster(processes=False, workers=1, threads=4)


@pytest.fixture(scope="session")
def dask_processes() -> Iterator[object]:
    """A Dask cluster of two worker processes: every call and result crosses a process. Its
    executor sends calls ahead (``lookahead=``), so the conformance set runs with it too."""
    yield from _dask_cluster(processes=True, workers=2, threads=2, lookahead=1000)


def _make(request: pytest.FixtureRequest, kind: str) -> Iterator[object]:
    if kind == "sequential":
        yield SequentialExecutor()
    elif kind == "threaded":
        with ThreadedExecutor(max_workers=4) as threaded:
            yield threaded
    elif kind == "async":
        yield AsyncExecutor()
    elif kind == "pool":
        with cf.ThreadPoolExecutor(4) as pool:
            yield PoolExecutor(pool)
    elif kind == "process":
        yield request.getfixturevalue("process_executor")
    elif kind.startswith("dask") and (marker := request.node.get_closest_marker("not_on_dask")):
        pytest.skip(f"on a Dask cluster: {marker.args[0]}")
    elif kind == "dask":
        yield request.getfixturevalue("dask_threads")
    else:
        marker = request.node.get_closest_marker("in_process")
        if marker is not None:
            pytest.skip(f"workers are other processes: {marker.args[0]}")
        yield request.getfixturevalue("dask_processes")


@pytest.fixture(params=["sequential", "threaded", "async", "pool", *DASK_EXECUTORS])
def executor(request: pytest.FixtureRequest) -> Iterator[object]:
    """Each flowweaver executor, a foreign concurrent.futures pool through PoolExecutor, and
    Dask clusters (threads, processes) when the `dask` extra is installed."""
    yield from _make(request, request.param)


@pytest.fixture(scope="session")
def process_executor() -> Iterator[ProcessExecutor]:
    """One ProcessExecutor for the whole session: worker processes are slow to start."""
    with ProcessExecutor(max_workers=2) as processes:
        yield processes


@pytest.fixture(params=["sequential", "threaded", "async", "pool", "process"])
def any_executor(request: pytest.FixtureRequest) -> Iterator[object]:
    """Every local executor, ProcessExecutor included: for tests whose task functions are
    defined at module level (they must pickle)."""
    yield from _make(request, request.param)


@pytest.fixture(autouse=True)
def _fresh_open_graph() -> Iterator[None]:
    """Edges a test records with >> and never claims do not reach the next test."""
    token = _scope.open_scope()
    yield
    _scope.close_scope(token)


@pytest.fixture(params=["threaded", "async", "pool", *DASK_EXECUTORS])
def concurrent_executor(request: pytest.FixtureRequest) -> Iterator[object]:
    """The executors that run tasks at the same time (for overlap and timeout tests)."""
    yield from _make(request, request.param)


def is_sequential(executor: object) -> bool:
    return isinstance(executor, SequentialExecutor)


def is_async(executor: object) -> bool:
    return isinstance(executor, AsyncExecutor)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


class InProcess:
    """Pickles as a reference to this very object, so that a task sent to a worker thread of
    this process (Dask's ``LocalCluster(processes=False)`` pickles every call even so) still
    shares it with the test. It cannot cross to another process: such tests are marked
    ``in_process``."""

    _live: ClassVar[weakref.WeakValueDictionary[int, InProcess]] = weakref.WeakValueDictionary()

    def __reduce__(self) -> tuple[object, ...]:
        InProcess._live[id(self)] = self
        return (_same_object, (id(self), os.getpid()))


def _same_object(key: int, pid: int) -> InProcess:
    if os.getpid() != pid:
        raise RuntimeError("test state shared in-process cannot cross to another process")
    return InProcess._live[key]


class Box(InProcess):
    """Any object, shared by reference with tasks on in-process Dask workers."""

    def __init__(self, value: object) -> None:
        self.value: Any = value


class SharedEvent(InProcess, threading.Event):
    """A ``threading.Event`` that tasks on in-process Dask workers share with the test."""


class Recorder(InProcess):
    """Thread-safe list of what happened, for callbacks and side effects."""

    def __init__(self) -> None:
        self.items: list[object] = []
        self._lock = threading.Lock()

    def __call__(self, *item: object) -> None:
        with self._lock:
            self.items.append(item if len(item) != 1 else item[0])

    def count(self, value: object) -> int:
        with self._lock:
            return self.items.count(value)


@pytest.fixture
def record() -> Recorder:
    return Recorder()


def run(coro: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(coro)``, failing with TimeoutError instead of hanging past ``WAIT``."""

    async def bounded() -> T:
        async with asyncio.timeout(WAIT):
            return await coro

    return asyncio.run(bounded())


async def settle() -> None:
    """Let every runnable coroutine run until all of them wait (no timers involved)."""
    for _ in range(20):
        await asyncio.sleep(0)


__all__ = [
    "WAIT",
    "BaseExecutor",
    "Box",
    "FakeClock",
    "Recorder",
    "SharedEvent",
    "is_async",
    "is_sequential",
    "run",
    "settle",
]


def outputs_under_hash_seeds(script: str) -> set[str]:
    """What ``python -c script`` prints under three string hash seeds (one text: stable)."""
    return {
        subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, check=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
        ).stdout
        for seed in ("1", "2", "3")
    }  # fmt: skip


def execute(executor: Any, workflow: Workflow, **options: Any) -> WorkflowRun:
    """``executor.execute(workflow, **options)``, typed."""
    result: WorkflowRun = executor.execute(workflow, **options)
    return result


def diamond() -> Workflow:
    """src -> (left, right) -> join, passing values by name and by position."""
    wf = Workflow("diamond")
    wf.add_task(Task(name="src", fn=lambda: 10))
    wf.add_task(Task(name="left", fn=lambda src: src + 1), depends_on=["src"])
    wf.add_task(Task(name="right", fn=lambda x: x * 2), depends_on=["src"])
    wf.add_task(
        Task(name="join", fn=lambda right, left: (left, right)), depends_on=["left", "right"]
    )
    return wf
