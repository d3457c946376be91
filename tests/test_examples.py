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
