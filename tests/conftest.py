"""Shared fixtures: every behavioural test runs on every executor."""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import os
import threading
from collections.abc import Callable, Iterator

import pytest
from hypothesis import settings

from flowweaver import (
    AsyncExecutor,
    BaseExecutor,
    PoolExecutor,
    ProcessExecutor,
    SequentialExecutor,
    ThreadedExecutor,
    _scope,
)

# Checked by mypy only (test_decorator runs mypy on it); importing it would fail on purpose.
collect_ignore = ["typecheck_task.py"]

ExecutorFactory = Callable[[], object]

# `HYPOTHESIS_PROFILE=thorough pytest tests/test_properties.py` explores far more cases.
settings.register_profile("thorough", max_examples=400, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


def _executor(kind: str) -> Iterator[object]:
    if kind == "sequential":
        yield SequentialExecutor()
    elif kind == "threaded":
        with ThreadedExecutor(max_workers=4) as threaded:
            yield threaded
    elif kind == "async":
        yield AsyncExecutor()
    else:
        with cf.ThreadPoolExecutor(4) as pool:
            yield PoolExecutor(pool)


@pytest.fixture(params=["sequential", "threaded", "async", "pool"])
def executor(request: pytest.FixtureRequest) -> Iterator[object]:
    """Each flowweaver executor, and a foreign concurrent.futures pool through PoolExecutor."""
    yield from _executor(request.param)


@pytest.fixture(scope="session")
def process_executor() -> Iterator[ProcessExecutor]:
    """One ProcessExecutor for the whole session: worker processes are slow to start."""
    with ProcessExecutor(max_workers=2) as processes:
        yield processes


@pytest.fixture(params=["sequential", "threaded", "async", "pool", "process"])
def any_executor(request: pytest.FixtureRequest) -> Iterator[object]:
    """Every executor, ProcessExecutor included: for tests whose task functions are defined at
    module level (they must pickle)."""
    if request.param == "process":
        yield request.getfixturevalue("process_executor")
    else:
        yield from _executor(request.param)


@pytest.fixture(autouse=True)
def _fresh_open_graph() -> Iterator[None]:
    """Edges a test records with >> and never claims do not reach the next test."""
    token = _scope.open_scope()
    yield
    _scope.close_scope(token)


@pytest.fixture(params=["threaded", "async", "pool"])
def concurrent_executor(request: pytest.FixtureRequest) -> Iterator[object]:
    """The executors that run tasks at the same time (for overlap and timeout tests)."""
    if request.param == "threaded":
        with ThreadedExecutor(max_workers=4) as threaded:
            yield threaded
    elif request.param == "async":
        yield AsyncExecutor()
    else:
        with cf.ThreadPoolExecutor(4) as pool:
            yield PoolExecutor(pool)


def is_sequential(executor: object) -> bool:
    return isinstance(executor, SequentialExecutor)


def is_async(executor: object) -> bool:
    return isinstance(executor, AsyncExecutor)


class FakeClock:
    """A clock whose sleeps return at once and are recorded: retries without waiting."""

    def __init__(self) -> None:
        self.t = 0.0
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self.t += seconds

    async def sleep_async(self, seconds: float) -> None:
        self.sleep(seconds)
        await asyncio.sleep(0)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


class Recorder:
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


__all__ = ["BaseExecutor", "FakeClock", "Recorder", "is_async", "is_sequential"]
