"""Every script in examples/ runs to the end (in a subprocess, as a user would run it)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.mark.parametrize("executor", ["sequential", "threaded", "async"])
def test_etl_workflow_example(executor: str) -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "etl_workflow.py"), executor],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "8/8 tasks completed, 2 retries" in done.stdout
    assert "customer_tiers: retry #2" in done.stdout
    assert "gold customers:" in done.stdout


def test_etl_workflow_example_refuses_an_unknown_executor() -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "etl_workflow.py"), "quantum"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "usage:" in done.stderr


def test_resumable_run_example_restores_what_the_first_run_committed() -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "resumable_run.py")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "first run executed 13 steps" in done.stdout
    assert "second run executed 8 steps (step_13 to step_20), restored 12 from the store" in (
        done.stdout
    )


def test_cpu_bound_example_gets_the_same_answer_on_threads_and_processes() -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "cpu_bound_processes.py"), "2"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split()[:2] == ["threads", lines[1].split()[1]]  # same prime count
    assert lines[1].startswith("processes ")
