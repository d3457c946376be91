"""What a new user trips on (issue 13): names accepted everywhere, errors that carry the run."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from flowweaver import (
    ConfigurationError,
    Pipeline,
    Stage,
    Task,
    TaskStatus,
    Workflow,
    WorkflowFailedError,
)

if TYPE_CHECKING:
    from pathlib import Path


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


_ALL_FAIL = """
import asyncio
from flowweaver import Pipeline, Stage

def parse(x):
    if {fail}:
        raise ValueError(f"bad {{x}}")
    return x

print(asyncio.run(Pipeline([Stage("Parse", 2, [parse], task_attempts=1)]).run(range(10))))
"""


@pytest.mark.parametrize("fail", [True, False])
def test_a_pipeline_whose_items_fail_says_so_on_stderr_without_logging_setup(
    tmp_path: Path, fail: bool
) -> None:
    # No logging configured: the WARNING reaches stderr through logging's last resort.
    script = tmp_path / "parse.py"
    script.write_text(_ALL_FAIL.format(fail=fail))
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=False
    )
    if fail:
        assert (done.stdout, done.stderr) == (
            "[]\n",
            "pipeline 'Parse': 10 of 10 items failed (ValueError 10); see get_error_summary()\n",
        )
    else:
        assert done.stderr == ""  # a clean run stays quiet


def test_the_end_of_run_warning_counts_cancelled_items_apart(
    caplog: pytest.LogCaptureFixture,
) -> None:
    release = asyncio.Event()

    async def gate(x: int) -> int:
        if x == 0:
            raise KeyError(x)
        await release.wait()
        return x

    async def main() -> None:
        pipeline = Pipeline([Stage("Gate", 2, [gate], task_attempts=1)])
        await pipeline.start()
        await pipeline.feed(range(4))
        while pipeline.get_stats().items_failed < 1:
            await asyncio.sleep(0)
        await pipeline.shutdown()

    with caplog.at_level(logging.WARNING, logger="flowweaver.pipeline"):
        asyncio.run(asyncio.wait_for(main(), 30))
    assert [r.getMessage() for r in caplog.records] == [
        "pipeline 'Gate': 1 of 4 items failed (KeyError 1), 3 cancelled; see get_error_summary()"
    ]


_UNGUARDED = """
from flowweaver import DAG, ProcessExecutor, task

@task(retries=3, delay=0.0)
def a() -> int:
    return 1

@task
def b(a: int) -> int:
    return a + 1

a >> b
print(DAG("x").run(executor=ProcessExecutor(2, start_method={method!r})))
"""


@pytest.mark.parametrize("method", ["forkserver", "spawn"])
def test_a_process_run_without_the_main_guard_says_so_in_one_line(
    tmp_path: Path, method: str
) -> None:
    script = tmp_path / "unguarded.py"
    script.write_text(_UNGUARDED.format(method=method))
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 1
    cause = (
        f"flowweaver.WorkerStartError: worker processes cannot start (task 'a'): each "
        f"re-imports the main module {str(script)!r}, which starts a run when imported; put "
        "the code that runs workflows under 'if __name__ == \"__main__\":'"
    )
    lines = done.stderr.splitlines()
    assert lines[0] == cause  # first, whole, and never retried ("after 1 attempt")
    assert "task 'a' failed after 1 attempt: WorkerStartError" in done.stderr
    assert "RuntimeError" not in done.stderr  # no child tracebacks
    assert len(lines) < 30
