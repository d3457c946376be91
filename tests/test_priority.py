"""Task priorities: higher first when workers are short, today's order among equals."""

from __future__ import annotations

import threading
from collections import deque
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowweaver import (
    AsyncExecutor,
    ConfigurationError,
    SequentialExecutor,
    Task,
    ThreadedExecutor,
    Workflow,
)
from flowweaver._engine import Engine
from flowweaver._ready import PriorityReady

_ops = st.lists(st.tuples(st.sampled_from(["append", "appendleft", "pop"]), st.integers(-2, 2)))


@settings(max_examples=200, deadline=None)
@given(ops=_ops)
def test_equal_priorities_behave_exactly_as_a_deque(ops: list[tuple[str, int]]) -> None:
    plain: deque[int] = deque()
    queue = PriorityReady([], lambda i: 7)
    for n, (op, _) in enumerate(ops):
        if op == "pop":
            assert bool(queue) == bool(plain) and len(queue) == len(plain)
            if plain:
                assert queue[0] == plain[0]
                assert queue.popleft() == plain.popleft()
        else:
            getattr(plain, op)(n)
            getattr(queue, op)(n)


@settings(max_examples=200, deadline=None)
@given(ops=_ops)
def test_the_highest_priority_leaves_first_fifo_among_equals(ops: list[tuple[str, int]]) -> None:
    priority: dict[int, int] = {}
    queue = PriorityReady([], priority.__getitem__)
    inside: list[int] = []  # in arrival order
    for n, (op, p) in enumerate(ops):
        if op == "append":
            priority[n] = p
            queue.append(n)
            inside.append(n)
        elif inside:
            top = max(priority[i] for i in inside)
            first = next(i for i in inside if priority[i] == top)
            assert queue.popleft() == first
            inside.remove(first)
    assert len(queue) == len(inside)


def test_an_empty_queue_refuses_like_a_deque() -> None:
    queue = PriorityReady([], lambda i: 0)
    with pytest.raises(IndexError):
        queue.popleft()
    with pytest.raises(IndexError):
        queue[0]


def test_a_run_without_priorities_keeps_its_deque() -> None:
    wf = Workflow("w")
    wf.add_task(Task(name="a", fn=lambda: 1))
    assert type(Engine(wf, {}).ready) is deque
    wf.add_task(Task(name="b", fn=lambda: 1, priority=-1))
    assert type(Engine(wf, {}).ready) is PriorityReady


@pytest.mark.parametrize("bad", ["1", 1.0, True, None])
def test_a_priority_that_is_not_an_int_is_refused(bad: Any) -> None:
    with pytest.raises(ConfigurationError) as caught:
        Task(name="t", fn=lambda: 1, priority=bad)
    assert str(caught.value) == f"task 't': priority must be an int, got {bad!r}"


def _started_order(executor: Any, priorities: list[int]) -> list[str]:
    """Start a gate task, then make every other task ready at once behind it."""
    started: list[str] = []
    wf = Workflow("w")
    wf.add_task(Task(name="gate", fn=lambda: started.append("gate")))
    for k, p in enumerate(priorities):
        name = f"t{k}"
        wf.add_task(Task(name=name, fn=lambda name=name: started.append(name), priority=p),
                    depends_on=["gate"])  # fmt: skip
    executor.execute(wf)
    return started[1:]


@settings(max_examples=30, deadline=None)
@given(priorities=st.lists(st.integers(-3, 3), min_size=1, max_size=12))
def test_ready_tasks_start_by_priority_then_in_order(priorities: list[int]) -> None:
    expected = [f"t{k}" for k in sorted(range(len(priorities)), key=lambda k: -priorities[k])]
    assert _started_order(SequentialExecutor(), priorities) == expected


@pytest.mark.parametrize("make", [lambda: ThreadedExecutor(max_workers=1),
                                  lambda: AsyncExecutor(max_workers=1)])  # fmt: skip
def test_a_freed_worker_takes_the_highest_priority(make: Any) -> None:
    executor = make()
    assert _started_order(executor, [0, 5, -1, 5, 2]) == ["t1", "t3", "t4", "t0", "t2"]


def test_a_mapped_task_s_elements_share_its_priority() -> None:
    started: list[str] = []
    wf = Workflow("w")
    wf.add_task(Task(name="xs", fn=lambda: [1, 2]))
    wf.add_task(Task(name="low", fn=lambda: started.append("low")), depends_on=["xs"])
    wf.add_task(Task(name="each", fn=lambda x: started.append(f"each{x}"), map_over="xs",
                     depends_on=["xs"], priority=1))  # fmt: skip
    SequentialExecutor().execute(wf)
    assert started[:2] == ["each1", "each2"] and started[-1] == "low"


def test_a_retried_task_goes_first_among_its_equals() -> None:
    started: list[str] = []
    calls = threading.Event()

    def flaky() -> None:
        started.append("flaky")
        if not calls.is_set():
            calls.set()
            raise OSError("once")

    wf = Workflow("w")
    wf.add_task(Task(name="flaky", fn=flaky, retries=1, delay=0.0, priority=1))
    wf.add_task(Task(name="same", fn=lambda: started.append("same"), priority=1))
    wf.add_task(Task(name="low", fn=lambda: started.append("low")))
    SequentialExecutor().execute(wf)
    assert started == ["flaky", "flaky", "same", "low"]
