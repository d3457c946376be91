"""Task: validation, direct calls, and the seed's run-state fields."""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import pickle

import pytest

from flowweaver import ConfigurationError, Task, TaskFailedError, TaskStatus, TaskTimeoutError


def test_calling_a_task_calls_its_function() -> None:
    task = Task(name="double", fn=lambda x: x * 2)
    assert task(21) == 42


def test_tasks_are_immutable_definitions() -> None:
    task = Task(name="a", fn=lambda: 1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        task.retries = 3  # type: ignore[misc]
    assert dataclasses.replace(task, retries=3).retries == 3


def test_depends_on_is_stored_as_a_tuple() -> None:
    assert Task(name="b", fn=lambda: 1, depends_on=["a"]).depends_on == ("a",)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": ""}, "task name must be a non-empty str, got ''"),
        ({"name": 3}, "task name must be a non-empty str, got 3"),
        ({"fn": 42}, "task 't': fn must be callable, got 42"),
        ({"retries": -1}, "task 't': retries must be an int >= 0, got -1"),
        ({"retries": 1.5}, "task 't': retries must be an int >= 0, got 1.5"),
        ({"timeout": 0}, "task 't': timeout must be a finite number > 0, got 0"),
        ({"timeout": -1.0}, "task 't': timeout must be a finite number > 0, got -1.0"),
        ({"delay": -1}, "task 't': delay must be a finite number >= 0, got -1"),
        ({"delay": True}, "task 't': delay must be a finite number >= 0, got True"),
        ({"retries": False}, "task 't': retries must be an int >= 0, got False"),
        ({"jitter": 2.0}, "task 't': jitter must be between 0 and 1, got 2.0"),
        ({"on_retry": "x"}, "task 't': on_retry must be callable, got 'x'"),
        ({"on_status_change": 1}, "task 't': on_status_change must be callable, got 1"),
        ({"when": True}, "task 't': when must be callable, got True"),
        ({"depends_on": "a"}, "task 't': depends_on must be a sequence of task names, got 'a'"),
        ({"depends_on": ["a", ""]},
         "task 't': depends_on must be a sequence of task names, got ['a', '']"),
    ],
)  # fmt: skip
def test_bad_arguments_are_refused_with_exact_messages(
    kwargs: dict[str, object], message: str
) -> None:
    arguments: dict[str, object] = {"name": "t", "fn": lambda: None, **kwargs}
    with pytest.raises(ConfigurationError) as info:
        Task(**arguments)  # type: ignore[arg-type]
    assert str(info.value) == message


def test_is_async_sees_coroutine_functions_and_async_callables() -> None:
    async def fetch() -> int:
        return 1

    class Caller:
        async def __call__(self) -> int:
            return 2

    assert Task(name="a", fn=fetch).is_async()
    assert Task(name="b", fn=Caller()).is_async()
    assert not Task(name="c", fn=lambda: fetch()).is_async()


def test_status_result_and_error_before_any_run() -> None:
    task = Task(name="a", fn=lambda: 1)
    assert (task.status, task.result, task.error) == (TaskStatus.PENDING, None, None)


def test_execute_runs_a_task_alone_with_retries() -> None:
    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError("try again")
        return "ok"

    task = Task(name="flaky", fn=flaky, retries=2, delay=0.0)
    task.execute()
    assert (task.status, task.result, len(calls)) == (TaskStatus.COMPLETED, "ok", 3)


def test_execute_raises_task_failed_error_with_the_cause() -> None:
    task = Task(name="broken", fn=lambda: 1 / 0)
    with pytest.raises(TaskFailedError) as info:
        task.execute()
    assert isinstance(info.value.__cause__, ZeroDivisionError)
    assert task.status is TaskStatus.FAILED
    assert task.error == "ZeroDivisionError: division by zero"


def test_execute_async_records_and_raises_like_execute() -> None:
    async def broken() -> None:
        raise KeyError("missing")

    task = Task(name="broken", fn=broken)
    with pytest.raises(TaskFailedError) as info:
        asyncio.run(task.execute_async())
    assert isinstance(info.value.__cause__, KeyError)
    assert task.status is TaskStatus.FAILED
    assert task.error == "KeyError: 'missing'"


def test_execute_async_cancels_an_overrunning_coroutine() -> None:
    finished: list[bool] = []

    async def slow() -> None:
        await asyncio.sleep(30)
        finished.append(True)

    task = Task(name="slow", fn=slow, timeout=0.05)
    with pytest.raises(TaskFailedError) as info:
        asyncio.run(task.execute_async())
    assert isinstance(info.value.__cause__, TaskTimeoutError)
    assert finished == []


def _double(x: int) -> int:
    return 2 * x


def test_a_task_keeps_only_the_options_it_sets() -> None:
    # A million tasks should not each carry every default: the rarely set fields live in one
    # dict, present only on a task that sets one of them, and read back like any field.
    plain = Task(name="a", fn=_double)
    assert plain._options is None
    assert (plain.retries, plain.delay, plain.cache, plain.map_over, plain.priority) == (
        0, 1.0, False, None, 0,
    )  # fmt: skip
    tuned = Task(name="b", fn=_double, retries=2, depends_on=["a"], priority=5)
    assert tuned._options == {"retries": 2, "depends_on": ("a",), "priority": 5}
    assert "retries=2" in repr(tuned) and "priority=5" in repr(tuned)
    assert dataclasses.replace(tuned, retries=0).retries == 0
    assert dataclasses.replace(tuned, retries=0).priority == 5


def test_a_task_pickles_and_copies_with_its_options() -> None:
    task = Task(name="b", fn=_double, retries=2, timeout=3.0, depends_on=["a"])
    for twin in (pickle.loads(pickle.dumps(task)), copy.copy(task), copy.deepcopy(task)):
        assert (twin.name, twin.fn, twin.retries, twin.timeout, twin.depends_on) == (
            "b", _double, 2, 3.0, ("a",),
        )  # fmt: skip
        with pytest.raises(dataclasses.FrozenInstanceError):
            twin.priority = 1  # type: ignore[misc]
