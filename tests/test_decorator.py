"""@task: a function becomes a Task of the one model, with every Task option and its types."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import subprocess
import sys
from pathlib import Path

import pytest

from flowweaver import ConfigurationError, Limiter, Task, TaskStatus, task
from flowweaver._decorator import _option_names

from .conftest import Recorder


def test_bare_decorator_makes_a_task_named_after_the_function() -> None:
    @task
    def extract() -> list[int]:
        return [1, 2]

    assert isinstance(extract, Task)
    assert extract.name == "extract"
    assert extract() == [1, 2]  # calling it still calls the function


def test_called_decorator_with_and_without_options() -> None:
    @task()
    def plain(x: int) -> int:
        return x + 1

    @task(name="renamed", retries=3, delay=0.5, backoff=3.0, timeout=2.0)
    def configured(x: int) -> int:
        return x * 2

    assert (plain.name, plain.retries, plain(1)) == ("plain", 0, 2)
    assert (configured.name, configured.retries, configured.delay, configured.backoff) == (
        "renamed", 3, 0.5, 3.0,
    )  # fmt: skip
    assert (configured.timeout, configured(4)) == (2.0, 8)


def test_every_task_option_is_forwarded() -> None:
    recorder = Recorder()

    def when(x: int) -> bool:
        return x > 0

    options: dict[str, object] = {
        "retries": 2, "delay": 0.25, "backoff": 1.5, "max_delay": 9.0, "jitter": 0.0,
        "retry_on": (OSError,), "timeout": 3.0, "when": when, "skip_if_upstream_skipped": True,
        "on_status_change": recorder, "on_retry": recorder, "depends_on": ("up",),
        "cache": True, "cache_ttl": 60.0, "cache_key": str, "map_over": ("up",),
        "map_limit": 4, "keep_results": False, "allow_failed_elements": True,
        "retry_if": when, "retry_after": when, "priority": 3, "limits": (Limiter(),),
        "retry_if_result": when,
    }  # fmt: skip
    made = task(**options)(lambda x: x)  # type: ignore[call-overload]
    for field, value in options.items():
        assert getattr(made, field) == value, field
    # The options are Task's own fields, read from the dataclass: a field Task gains later is
    # accepted without touching the decorator.
    assert set(options) == _option_names()
    assert _option_names() == {f.name for f in dataclasses.fields(Task) if f.init} - {"fn", "name"}


def test_unknown_options_are_refused_at_once() -> None:
    with pytest.raises(ConfigurationError) as info:
        task(retires=3)
    assert str(info.value) == (
        "task() got unknown option(s) ['retires']; expected some of "
        f"{sorted(_option_names() | {'name'})!r}"
    )


def test_bad_option_values_are_refused_by_task_itself() -> None:
    with pytest.raises(ConfigurationError) as info:

        @task(retries=-1)
        def f() -> None:
            return None

    assert str(info.value) == "task 'f': retries must be an int >= 0, got -1"


def test_what_cannot_become_a_task() -> None:
    existing = Task(name="t", fn=lambda: 1)
    with pytest.raises(ConfigurationError) as info:
        task(existing)
    assert str(info.value) == "task() expects a function, got the task 't'"
    with pytest.raises(ConfigurationError) as info:
        task(42)  # type: ignore[call-overload]
    assert str(info.value) == "task() expects a callable, got 42"
    nameless = functools.partial(max, 1)
    with pytest.raises(ConfigurationError) as info:
        task(nameless)
    assert str(info.value) == f"task() cannot name {nameless!r}; pass name=..."
    assert task(name="biggest")(nameless).name == "biggest"


def test_an_async_function_stays_async_and_runs() -> None:
    @task(retries=1)
    async def fetch(x: int) -> int:
        await asyncio.sleep(0)
        return x * 3

    assert fetch.is_async()
    assert asyncio.run(fetch(2)) == 6


def test_a_decorated_task_runs_alone_with_its_options() -> None:
    calls: list[int] = []

    @task(retries=2, delay=0.0)
    def flaky() -> str:
        calls.append(1)
        if len(calls) < 2:
            raise ConnectionError("again")
        return "ok"

    flaky.execute()
    assert (flaky.status, flaky.result, len(calls)) == (TaskStatus.COMPLETED, "ok", 2)


def test_type_test_file_passes_mypy() -> None:
    # tests/typecheck_task.py uses assert_type, and `type: ignore`s that strict mode requires
    # to be needed: it fails if @task stops preserving parameter and return types.
    root = Path(__file__).resolve().parent.parent
    command = [sys.executable, "-m", "mypy", "--strict", "--no-error-summary"]
    done = subprocess.run(
        [*command, "tests/typecheck_task.py"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert (done.returncode, done.stdout + done.stderr) == (0, "")
