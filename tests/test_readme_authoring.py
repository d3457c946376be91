"""The "Decorators, >> and Flow" guide's examples run and print what they say they print."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

GUIDE = Path(__file__).resolve().parent.parent / "docs" / "guide" / "decorators.md"


def section_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", GUIDE.read_text(), flags=re.DOTALL)


def run(code: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "decorators.md", "exec"), {"__name__": "guide_example"})
    return out.getvalue()


def test_the_section_has_the_examples_this_test_checks() -> None:
    assert len(section_blocks()) == 5


def test_dag_example() -> None:
    block = section_blocks()[0]
    assert run(block) == "{'extract': [1, 2, 3], 'double': [2, 4, 6], 'total': 12}\n"


def test_cycle_and_lone_task_example() -> None:
    assert run(section_blocks()[1]) == (
        "'a' >> 'b' >> 'c' >> 'a' would close a dependency cycle\n"
        "{'a': 1, 'b': 2, 'c': 3}\n"
        "{'flaky': 'ok'}\n"
    )


def test_conditions_example() -> None:
    block = section_blocks()[2]
    assert run(block) == (
        "{'size': 3000, 'manual': 'MANUAL', 'auto': None, 'load': '3000 MANUAL', 'audit': None}\n"
    )


def test_flow_example() -> None:
    assert run(section_blocks()[3]) == "Alice: 1 orders, ['book']\n"


def test_export_example() -> None:
    out = run(section_blocks()[4])
    assert out.startswith(
        "dag 'etl': 2 tasks in 2 layers\n  [0] extract\n  [1] 'load \"db\"' <- extract\n"
    )
    assert '    load_db_["load #quot;db#quot;"]\n' in out
    assert "    extract --> load_db_\n" in out
