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

needs_mkdocs = pytest.mark.skipif(
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


@needs_mkdocs
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


@needs_mkdocs
@pytest.mark.timeout(300)
def test_sphinx_roles_become_links_or_code(api_page: str) -> None:
    text_only = re.sub(r"<[^>]+>", "", api_page)
    assert re.findall(r":(?:class|meth|func|attr|mod|exc|data|obj):", text_only) == []
    assert '<a href="#flowweaver.Workflow"><code>Workflow</code></a>' in api_page
    assert '<a href="#flowweaver.WorkflowRun"><code>WorkflowRun</code></a>' in api_page
    # A target with no anchor on the page (a private module) is plain code, not a dead link.
    assert 'href="#flowweaver._' not in api_page


USER_DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def test_user_docs_describe_features_in_users_terms() -> None:
    for path in USER_DOCS:
        assert re.findall(r"\bseeds?\b", path.read_text(), flags=re.I) == [], path


def test_the_site_links_no_placeholder_repository() -> None:
    assert "example.invalid" not in (ROOT / "mkdocs.yml").read_text()


def test_the_dashboards_guide_names_the_error_a_missing_rich_raises() -> None:
    from flowweaver import FullDashboard, MissingDependencyError

    text = (ROOT / "docs" / "guide" / "dashboards.md").read_text()
    assert "`use_rich=True` without `rich` installed raises `MissingDependencyError`" in text
    if importlib.util.find_spec("rich") is None:  # the claim itself, where it can be checked
        with pytest.raises(MissingDependencyError):
            FullDashboard(use_rich=True)


def test_the_executors_guide_covers_every_executor() -> None:
    import flowweaver

    text = (ROOT / "docs" / "guide" / "executors.md").read_text()
    executors = [
        n
        for n in flowweaver.__all__
        if n.endswith("Executor") and n not in ("BaseExecutor", "Executor")
    ]
    assert {"ProcessExecutor", "DaskExecutor"} <= set(executors)
    for name in executors:
        assert f"`{name}(" in text, name


def test_the_cli_guide_uses_files_that_exist() -> None:
    text = (ROOT / "docs" / "guide" / "cli.md").read_text()
    files = set(re.findall(r"flowweaver (?:run|plan|graph) ([\w/]+\.py)", text)) - {"job.py"}
    assert files == {"examples/cpu_bound_processes.py"}
    assert all((ROOT / f).is_file() for f in files)


def test_getting_started_examples_print_what_they_say(capsys: pytest.CaptureFixture[str]) -> None:
    text = (ROOT / "docs" / "getting-started.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    for block in blocks:
        if "wf.execute()" in block and "Workflow(" not in block:
            continue  # the failure snippet continues the first example
        exec(compile(block, "getting-started.md", "exec"), {"__name__": "getting_started"})
        for expected in re.findall(r"print\(.*\)  # (.+)$", block, flags=re.M):
            if expected.startswith(("{", "[")):
                assert expected in capsys.readouterr().out.splitlines()[-1:], block
