"""Every Python example in docs/guide/dynamic.md runs and prints what its comments promise.

Convention (as in the README): a line ``print(...)  # text`` promises that ``text`` is the
line it prints.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ._doc_examples import promised_output, python_blocks, run_block

BLOCKS = python_blocks("docs/guide/dynamic.md")


def test_the_guide_has_an_example_per_feature() -> None:
    assert len(BLOCKS) >= 7


@pytest.mark.parametrize("block", BLOCKS, ids=[f"block{k}" for k in range(len(BLOCKS))])
def test_each_example_runs_and_prints_what_it_promises(block: str, tmp_path: Path) -> None:
    done = run_block(block, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == promised_output(block)
    assert promised_output(block)  # every example shows its result
