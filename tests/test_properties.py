"""Invariants over random DAGs, random failures and every executor (hypothesis).

For every run: each task runs at most ``retries + 1`` times and never before all of its
dependencies completed; results equal a reference computed without any executor; when the run
returns, every task is in a terminal state that agrees with the failure policy.
"""

from __future__ import annotations

import concurrent.futures as cf
import random
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowweaver import (
    AsyncExecutor,
    PoolExecutor,
    SequentialExecutor,
    Task,
    TaskStatus,
    ThreadedExecutor,
    Workflow,
    WorkflowFailedError,
)

from .conftest import FakeClock

if TYPE_CHECKING:
    from collections.abc import Iterator

S = TaskStatus
EXECUTORS = ["sequential", "threaded", "async", "pool"]


@contextmanager
def make_executor(kind: str) -> Iterator[Any]:
    if kind == "sequential":
        yield SequentialExecutor()
    elif kind == "threaded":
        yield ThreadedExecutor(max_workers=4)
    elif kind == "async":
        yield AsyncExecutor(max_workers=8)
    else:
        with cf.ThreadPoolExecutor(3) as pool:
            yield PoolExecutor(pool)


@dataclass(frozen=True)
class Scenario:
    deps: list[list[int]]  # deps[i] ⊆ range(i)
    failing: list[int]  # attempts that fail before success (0 = never fails)
    retries: list[int]
    is_async: list[bool]


@st.composite
def scenarios(draw: st.DrawFn, max_tasks: int = 300, failures: bool = True) -> Scenario:
    n = draw(st.integers(1, max_tasks))
    rng = random.Random(draw(st.integers(0, 2**32 - 1)))
    deps = [sorted(rng.sample(range(i), min(i, rng.randint(0, 3)))) for i in range(n)]
    rate = draw(st.sampled_from([0.0, 0.05, 0.2])) if failures else 0.0
    failing = [rng.choice([1, 2, 3]) if rng.random() < rate else 0 for _ in range(n)]
    retries = [rng.choice([0, 1, 2]) for _ in range(n)]
    is_async = [rng.random() < 0.3 for _ in range(n)]
    return Scenario(deps, failing, retries, is_async)


class Probe:
    """Builds the workflow and watches every call made by it."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.lock = threading.Lock()
        self.calls = [0] * len(scenario.deps)
        self.done: set[int] = set()
        self.early: list[int] = []  # tasks that started before a dependency completed

    def body(self, i: int, inputs: tuple[int, ...]) -> int:
        with self.lock:
            self.calls[i] += 1
            attempt = self.calls[i]
            if not all(d in self.done for d in self.scenario.deps[i]):
                self.early.append(i)
        if attempt <= self.scenario.failing[i]:
            raise ConnectionError(f"n{i} attempt {attempt}")
        with self.lock:
            self.done.add(i)
        return i + sum(inputs)

    def workflow(self) -> Workflow:
        wf = Workflow("random")
        for i, deps in enumerate(self.scenario.deps):
            if self.scenario.is_async[i]:

                async def fn(*inputs: int, i: int = i) -> int:
                    return self.body(i, inputs)

            else:

                def fn(*inputs: int, i: int = i) -> int:  # type: ignore[misc]
                    return self.body(i, inputs)

            wf.add_task(
                Task(name=f"n{i}", fn=fn, retries=self.scenario.retries[i], delay=0.0),
                depends_on=[f"n{d}" for d in deps],
            )
        return wf


def reference(scenario: Scenario) -> dict[str, int]:
    """What every task returns when nothing fails, computed by hand."""
    values: list[int] = []
    for i, deps in enumerate(scenario.deps):
        values.append(i + sum(values[d] for d in deps))
    return {f"n{i}": v for i, v in enumerate(values)}


def doomed(scenario: Scenario) -> set[int]:
    return {i for i, k in enumerate(scenario.failing) if k > scenario.retries[i]}


def downstream(scenario: Scenario, roots: set[int]) -> set[int]:
    out: set[int] = set()
    for i, deps in enumerate(scenario.deps):
        if any(d in roots or d in out for d in deps):
            out.add(i)
    return out


SETTINGS = settings(
    max_examples=max(25, settings().max_examples // 4),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@pytest.mark.parametrize("kind", EXECUTORS)
@SETTINGS
@given(scenario=scenarios(failures=False))
def test_results_equal_the_reference_on_every_executor(kind: str, scenario: Scenario) -> None:
    probe = Probe(scenario)
    with make_executor(kind) as executor:
        run = executor.execute(probe.workflow(), clock=FakeClock())
    assert run.results == reference(scenario)
    assert probe.early == []
    assert probe.calls == [1] * len(scenario.deps)


@pytest.mark.parametrize("kind", EXECUTORS)
@pytest.mark.parametrize("policy", ["continue", "fail_fast"])
@SETTINGS
@given(scenario=scenarios())
def test_failures_retries_and_end_states(kind: str, policy: str, scenario: Scenario) -> None:
    probe = Probe(scenario)
    wf = probe.workflow()
    failed_for_good = doomed(scenario)
    with make_executor(kind) as executor:
        if failed_for_good:
            with pytest.raises(WorkflowFailedError) as info:
                executor.execute(wf, clock=FakeClock(), failure_policy=policy)
            reported = {int(f.task_name[1:]) for f in info.value.failures}
        else:
            executor.execute(wf, clock=FakeClock(), failure_policy=policy)
            reported = set()
    run = wf.last_run
    assert run is not None
    statuses = [run.status(f"n{i}") for i in range(len(scenario.deps))]
    expected = reference(scenario)

    assert probe.early == []  # never before every dependency completed
    for i, calls in enumerate(probe.calls):
        assert calls <= scenario.retries[i] + 1
    assert all(s.is_terminal for s in statuses)  # nothing pending, running or retrying
    assert reported == {i for i, s in enumerate(statuses) if s is S.FAILED}
    assert reported <= failed_for_good
    blocked = downstream(scenario, reported)
    for i, status in enumerate(statuses):
        if status is S.COMPLETED:
            assert run.result(f"n{i}") == expected[f"n{i}"]
            assert scenario.failing[i] <= scenario.retries[i]
        if i in blocked:
            assert status in {S.UPSTREAM_FAILED, S.CANCELLED}
        if status is S.UPSTREAM_FAILED:
            assert i in blocked
    if policy == "continue":
        # Everything that does not need a failed task ran to the end.
        for i, status in enumerate(statuses):
            if i not in blocked and i not in failed_for_good:
                assert status is S.COMPLETED, (i, status)
        assert reported == failed_for_good - blocked
    else:
        assert S.UPSTREAM_FAILED not in statuses or reported
