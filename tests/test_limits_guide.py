"""Every Python example in docs/guide/limits.md runs and prints what its comments promise
(``print(...)  # text`` promises that ``text`` is the line it prints)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

GUIDE = Path(__file__).resolve().parent.parent / "docs" / "guide" / "limits.md"
BLOCKS = re.findall(r"```python\n(.*?)```", GUIDE.read_text(), flags=re.DOTALL)


def promised_output(block: str) -> list[str]:
    return [line.split("  # ", 1)[1] for line in block.splitlines() if "print(" in line]


def test_the_guide_has_an_example_per_feature() -> None:
    assert len(BLOCKS) >= 4


@pytest.mark.parametrize("block", BLOCKS, ids=[f"block{k}" for k in range(len(BLOCKS))])
def test_each_example_runs_and_prints_what_it_promises(block: str, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", block],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == promised_output(block)
    assert promised_output(block)
