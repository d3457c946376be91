"""Run a document's Python examples: the README's and the guides' tests share this.

Convention: a line ``print(...)  # text`` promises that ``text`` is the line it prints.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def python_blocks(relative: str) -> list[str]:
    """The fenced ``python`` blocks of the document at ``relative`` (from the repository)."""
    text = (ROOT / relative).read_text()
    return re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)


def promised_output(block: str) -> list[str]:
    return [line.split("  # ", 1)[1] for line in block.splitlines() if "print(" in line]


def run_block(block: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run one example in a fresh interpreter, in ``cwd``."""
    return subprocess.run(
        [sys.executable, "-c", block],
        cwd=cwd, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
