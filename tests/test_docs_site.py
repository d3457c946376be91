"""The built documentation site: the API reference renders examples as code, roles as links.

Checked on the HTML that ``mkdocs build`` writes (the Markdown source looked fine all along:
the page was garbled only once built).
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("mkdocstrings") is None,
    reason="mkdocs and mkdocstrings are not installed (pip install -e '.[dev]' brings them)",
)


@pytest.fixture(scope="module")
def api_page(tmp_path_factory: pytest.TempPathFactory) -> str:
    site = tmp_path_factory.mktemp("site")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "--site-dir", str(site)],
        cwd=ROOT, capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return (site / "api" / "index.html").read_text()


def _examples_in_docstrings() -> int:
    return sum(
        len(re.findall(r"^\s*Examples:$", path.read_text(), flags=re.M))
        for path in (ROOT / "flowweaver").glob("*.py")
    )


@pytest.mark.timeout(300)
def test_docstring_examples_are_code_blocks_not_blockquotes(api_page: str) -> None:
    assert "<blockquote>" not in api_page
    prompts = re.findall(r'<span class="gp">&gt;&gt;&gt; </span>', api_page)
    blocks = re.findall(
        r'<div class="highlight"><pre><span></span><code><span class="gp">', api_page
    )
    # Most Examples sections belong to objects on the page (some are private helpers').
    assert len(blocks) >= _examples_in_docstrings() * 3 // 4
    assert len(prompts) > len(blocks)  # multi-line examples: every >>> line is in the code
    task_example = (
        '<span class="n">extract</span> <span class="o">=</span> <span class="n">Task</span>'
    )
    assert task_example in api_page


@pytest.mark.timeout(300)
def test_sphinx_roles_become_links_or_code(api_page: str) -> None:
    text_only = re.sub(r"<[^>]+>", "", api_page)
    assert re.findall(r":(?:class|meth|func|attr|mod|exc|data|obj):", text_only) == []
    assert '<a href="#flowweaver.Workflow"><code>Workflow</code></a>' in api_page
    assert '<a href="#flowweaver.WorkflowRun"><code>WorkflowRun</code></a>' in api_page
    # A target with no anchor on the page (a private module) is plain code, not a dead link.
    assert 'href="#flowweaver._' not in api_page
