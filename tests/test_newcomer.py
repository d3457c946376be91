"""What a new user trips on (issue 13): names accepted everywhere, errors that carry the run."""

from __future__ import annotations

import asyncio

import pytest

from flowweaver import (
    ConfigurationError,
    Task,
    TaskStatus,
    Workflow,
    WorkflowFailedError,
)


def _two_branches() -> Workflow:
    wf = Workflow("branches")
    wf.add_task(Task(name="ok", fn=lambda: 41))
    wf.add_task(Task(name="after_ok", fn=lambda ok: ok + 1), depends_on=["ok"])
    wf.add_task(Task(name="bad", fn=lambda: 1 / 0))
    return wf


@pytest.mark.parametrize("name", ["sequential", "thread", "async", "process"])
def test_execute_accepts_every_executor_name_run_accepts(name: str) -> None:
    wf = Workflow("named")
    wf.add_task(Task(name="one", fn=int))
    assert wf.execute(name).results == {"one": 0}


def test_execute_async_accepts_a_name() -> None:
    wf = Workflow("named")
    wf.add_task(Task(name="one", fn=int))
    assert asyncio.run(wf.execute_async("thread")).results == {"one": 0}


def test_an_unknown_executor_name_is_refused_naming_it() -> None:
    with pytest.raises(ConfigurationError) as info:
        _two_branches().execute("threads")
    assert str(info.value) == (
        "executor must be one of ['sequential', 'thread', 'async', 'process'] or an executor "
        "object, got 'threads'"
    )


def test_workflow_failed_error_carries_the_run_with_finished_branches() -> None:
    with pytest.raises(WorkflowFailedError) as info:
        _two_branches().execute("thread", failure_policy="continue")
    run = info.value.run
    assert run is not None
    assert run.results == {"ok": 41, "after_ok": 42}
    assert run.status("bad") is TaskStatus.FAILED
    split: object = info.value.split(WorkflowFailedError)[0]
    assert isinstance(split, WorkflowFailedError)
    assert split.run is run  # except* keeps the run
