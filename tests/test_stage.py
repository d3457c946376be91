"""Stage: the seed's fields and defaults, and a typed error naming every bad field."""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import pytest

from flowweaver import ConfigurationError, RetryPolicy, Stage, StageValidationError


async def fetch(x: Any) -> Any:
    return x


def parse(x: Any) -> Any:
    return x


def test_seed_signature_and_defaults() -> None:
    stage = Stage("Transform", 1, [fetch])  # positional, as AntFlow's tests write it
    assert (stage.name, stage.workers, stage.tasks) == ("Transform", 1, (fetch,))
    assert (stage.retry, stage.task_attempts, stage.task_wait_seconds, stage.stage_attempts) == (
        "per_task", 3, 1.0, 3,
    )  # fmt: skip
    assert (stage.unpack_args, stage.task_concurrency_limits, stage.queue_capacity) == (
        False, {}, None,
    )  # fmt: skip
    assert Stage(name="ETL", tasks=[fetch]).workers == 1  # the guide leaves workers out
    stage.validate()


def test_the_plan_is_computed_once() -> None:
    class Caller:
        async def __call__(self, x: Any) -> Any:
            return x

    stage = Stage("S", 2, [fetch, parse, functools.partial(fetch), Caller(), lambda x: x])
    plan = stage.plan
    assert plan.names == ("fetch", "parse", "fetch", "Caller", "<lambda>")
    assert plan.is_async == (True, False, True, True, False)
    assert (plan.task_policy.retries, plan.task_policy.delay, plan.stage_policy) == (2, 1.0, None)
    per_stage = Stage("S", 2, [fetch], retry="per_stage", stage_attempts=4).plan
    assert (per_stage.task_policy.retries, per_stage.stage_policy.retries) == (0, 3)  # type: ignore[union-attr]
    assert stage.plan is plan


def test_stages_are_frozen_values() -> None:
    stage = Stage("S", 1, [fetch])
    with pytest.raises(dataclasses.FrozenInstanceError):
        stage.workers = 3  # type: ignore[misc]
    limits = {"fetch": 2}
    limited = Stage("S", 1, [fetch], task_concurrency_limits=limits)
    limits["fetch"] = 99  # the stage kept its own copy
    assert limited.task_concurrency_limits == {"fetch": 2}


BAD = [
    ({"name": ""}, "stage name must be a non-empty str, got ''", "name"),
    ({"workers": 0}, "stage 'S': workers must be an int >= 1, got 0 (a stage must have at least 1 worker)", "workers"),
    ({"workers": True}, "stage 'S': workers must be an int >= 1, got True (a stage must have at least 1 worker)", "workers"),
    ({"tasks": []}, "stage 'S': tasks must be a non-empty sequence of callables, got () (a stage must have at least one task)", "tasks"),
    ({"tasks": fetch}, f"stage 'S': tasks must be a non-empty sequence of callables, got {fetch!r}", "tasks"),
    ({"tasks": [fetch, "x"]}, "stage 'S': tasks[1] must be callable, got 'x'", "tasks[1]"),
    ({"retry": "sometimes"}, "stage 'S': retry must be 'per_task' or 'per_stage', got 'sometimes'", "retry"),
    ({"task_attempts": 0}, "stage 'S': task_attempts must be an int >= 1, got 0 (task_attempts must be at least 1)", "task_attempts"),
    ({"stage_attempts": 1.5}, "stage 'S': stage_attempts must be an int >= 1, got 1.5 (stage_attempts must be at least 1)", "stage_attempts"),
    ({"task_wait_seconds": -1}, "stage 'S': task_wait_seconds must be a finite number >= 0, got -1", "task_wait_seconds"),
    ({"task_wait_seconds": float("nan")}, "stage 'S': task_wait_seconds must be a finite number >= 0, got nan", "task_wait_seconds"),
    ({"unpack_args": "yes"}, "stage 'S': unpack_args must be a bool, got 'yes'", "unpack_args"),
    ({"task_concurrency_limits": [1]}, "stage 'S': task_concurrency_limits must be a dict of task name -> int >= 1, got [1]", "task_concurrency_limits"),
    ({"task_concurrency_limits": {"fetsh": 2}}, "stage 'S': task_concurrency_limits references unknown task(s): 'fetsh' is not one of its tasks ['fetch']", "task_concurrency_limits"),
    ({"task_concurrency_limits": {"fetch": 0}}, "stage 'S': task_concurrency_limits['fetch'] must be an int >= 1, got 0", "task_concurrency_limits['fetch']"),
    ({"on_success": 3}, "stage 'S': on_success must be callable or None, got 3", "on_success"),
    ({"on_failure": "log"}, "stage 'S': on_failure must be callable or None, got 'log'", "on_failure"),
    ({"skip_if": True}, "stage 'S': skip_if must be callable or None, got True", "skip_if"),
    ({"queue_capacity": -1}, "stage 'S': queue_capacity must be an int >= 0 or None, got -1", "queue_capacity"),
    ({"task_timeout": 0}, "stage 'S': task_timeout must be a finite number > 0 or None, got 0", "task_timeout"),
    ({"retry_policy": 3}, "stage 'S': retry_policy must be a RetryPolicy or None, got 3", "retry_policy"),
    (
        {"retry_policy": RetryPolicy(retries=2), "task_attempts": 5},
        "stage 'S': retry_policy replaces task_attempts: give one or the other, not both",
        "retry_policy",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("change", "message", "field"), BAD)
def test_every_bad_field_is_named(change: dict[str, Any], message: str, field: str) -> None:
    fields: dict[str, Any] = {"name": "S", "workers": 1, "tasks": [fetch], **change}
    stage = Stage(**fields)  # an invalid stage can be built (AntFlow's rule) ...
    with pytest.raises(StageValidationError) as info:
        stage.validate()  # ... and validating it (or a Pipeline of it) says what is wrong
    assert str(info.value) == message
    assert info.value.field == field
    assert info.value.stage == (None if field == "name" else "S")
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, ConfigurationError)
