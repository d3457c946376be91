"""The command line, driven in a subprocess for each command and each error case."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SEED_STYLE = """
from flowweaver import task

@task()
def extract():
    return [1, 2, 3]

@task()
def transform(data):
    return [x * 2 for x in data]

@task()
def load(data):
    return sum(data)

extract >> transform >> load
"""

TWO = """
from flowweaver import Task, Workflow

good = Workflow("first")
good.add_task(Task(name="x", fn=lambda: 1))
bad = Workflow("second")
bad.add_task(Task(name="ok", fn=lambda: 2))
bad.add_task(Task(name="boom", fn=lambda ok: 1 / 0), depends_on=["ok"])
"""

FLOW = """
from flowweaver import Flow, task

@task()
def fetch_user():
    return {"id": 1}

@task()
def fetch_orders(fetch_user):
    return ["o1"]

@task()
def combine(fetch_user, fetch_orders):
    return (fetch_user["id"], fetch_orders)

pipeline = Flow("users").add(fetch_user).add(fetch_orders).merge(combine)
"""


def flowweaver(
    cwd: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flowweaver", *args],
        cwd=cwd, capture_output=True, text=True, timeout=60, check=False,
        env=None if env is None else {**os.environ, **env},
    )  # fmt: skip


@pytest.fixture
def files(tmp_path: Path) -> Path:
    for name, text in {"seed.py": SEED_STYLE, "two.py": TWO, "flow.py": FLOW}.items():
        (tmp_path / name).write_text(textwrap.dedent(text))
    (tmp_path / "empty.py").write_text("x = 1\n")
    (tmp_path / "broken.py").write_text("import nonexistent_module_xyz\n")
    (tmp_path / "syntax.py").write_text("x = (\n")
    (tmp_path / "raises.py").write_text("\n\nraise ValueError('at import')\n")
    (tmp_path / "exits.py").write_text("import sys\nsys.exit(3)\n")
    (tmp_path / "quits.py").write_text("import sys\n\nsys.exit()\n")
    (tmp_path / "folder").mkdir()
    (tmp_path / "stream.py").write_text(
        "from flowweaver import Pipeline, Stage\n\n"
        "pipeline = Pipeline([Stage('Parse', 2, [str])])\n"
    )
    (tmp_path / "argv.py").write_text(
        "import sys\nfrom flowweaver import Task, Workflow\n\n"
        "ARGS = list(sys.argv)\n"
        "wf = Workflow('argv')\n"
        "wf.add_task(Task(name='args', fn=lambda: ARGS))\n"
    )
    (tmp_path / "lone.py").write_text(
        "from flowweaver import task\n\n@task\ndef flaky():\n    return 'ok'\n"
    )
    return tmp_path


def test_run_a_file_of_bare_edges_as_a_dag(files: Path) -> None:
    done = flowweaver(files, "run", "seed.py", "--executor", "sequential")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["task", "status", "attempts", "seconds"]
    assert [line.split()[:3] for line in lines[1:4]] == [
        ["extract", "completed", "1"], ["transform", "completed", "1"], ["load", "completed", "1"],
    ]  # fmt: skip
    assert lines[-1].startswith("'seed': 3 completed in ")
    assert done.stderr == ""


def test_a_file_of_bare_edges_can_be_named_by_its_dag(files: Path) -> None:
    done = flowweaver(files, "plan", "seed.py:seed")
    assert (done.returncode, done.stdout) == (
        0, "layer 0: extract\nlayer 1: transform\nlayer 2: load\n",
    ), done.stderr  # fmt: skip


@pytest.mark.parametrize("executor", ["sequential", "thread", "async", "process"])
def test_run_on_every_executor(files: Path, executor: str) -> None:
    done = flowweaver(files, "run", "flow.py", "--executor", executor, "--workers", "2")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1].startswith("'users': 3 completed in ")


def test_a_failed_run_prints_its_summary_and_exits_one(files: Path) -> None:
    done = flowweaver(files, "run", "two.py:second", "--failure-policy", "continue")
    assert done.returncode == 1
    by_task = {line.split()[0]: line for line in done.stdout.splitlines()[1:-1]}
    assert by_task["ok"].split()[1] == "completed"
    assert by_task["boom"].split()[1] == "failed"
    assert by_task["boom"].endswith("ZeroDivisionError: division by zero")
    assert done.stdout.splitlines()[-1].startswith("'second': 1 completed, 1 failed in ")


def test_a_workflow_can_be_chosen_by_its_own_name(files: Path) -> None:
    done = flowweaver(files, "run", "two.py:first")
    assert done.returncode == 0, done.stderr


def test_progress_goes_to_stderr(files: Path) -> None:
    done = flowweaver(files, "run", "seed.py", "--progress")
    assert done.returncode == 0
    assert "3/3 100%" in done.stderr


def test_verbose_logs_json_lines(files: Path) -> None:
    done = flowweaver(files, "run", "seed.py", "-vv", "--log-json")
    assert done.returncode == 0
    assert '"task": "load"' in done.stderr


def test_state_and_run_id_resume_a_failed_run(files: Path) -> None:
    (files / "resumable.py").write_text(
        textwrap.dedent("""
        import os
        from flowweaver import Task, Workflow

        def flaky():
            if not os.path.exists("fixed"):
                raise RuntimeError("not yet")
            return 2

        wf = Workflow("resumable")
        wf.add_task(Task(name="one", fn=lambda: 1))
        wf.add_task(Task(name="two", fn=flaky))
    """)
    )
    args = [
        "run",
        "resumable.py",
        "--state",
        "runs.db",
        "--run-id",
        "r1",
        "--executor",
        "sequential",
    ]
    first = flowweaver(files, *args)
    assert first.returncode == 1
    (files / "fixed").write_text("")
    second = flowweaver(files, *args)
    assert second.returncode == 0, second.stderr
    lines = second.stdout.splitlines()
    assert lines[1].split()[:3] == ["one", "completed", "0"]  # restored, not run again
    assert lines[-1].startswith("'resumable': 2 completed (1 restored from the store) in ")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--state", "runs.db"], "--state and --run-id go together: the store, and the run in it"),
        (["--state", "runs.txt", "--run-id", "x"],
         "--state 'runs.txt': the store's file name must end in .json (JSON file) or "
         ".db, .sqlite, .sqlite3 (SQLite), got 'runs.txt'"),
        (["--state", "runs.db", "--run-id", ""], "run_id must be a non-empty str, got ''"),
    ],
)  # fmt: skip
def test_state_options_are_checked(files: Path, args: list[str], message: str) -> None:
    done = flowweaver(files, "run", "seed.py", *args)
    assert (done.returncode, done.stderr) == (2, f"flowweaver: error: {message}\n")


def test_plan_prints_kahn_layers(files: Path) -> None:
    done = flowweaver(files, "plan", "flow.py")
    assert (done.returncode, done.stdout) == (
        0,
        "layer 0: fetch_user\nlayer 1: fetch_orders\nlayer 2: combine\n",
    )


@pytest.mark.parametrize(
    ("fmt", "first_line"), [("text", "flow 'users': 3 tasks in 3 layers"),
                            ("mermaid", "---"), ("dot", 'digraph "users" {')],
)  # fmt: skip
def test_graph_in_every_format(files: Path, fmt: str, first_line: str) -> None:
    done = flowweaver(files, "graph", "flow.py", "--format", fmt)
    assert done.returncode == 0
    assert done.stdout.splitlines()[0] == first_line
    assert not done.stdout.endswith("\n\n")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "missing.py"], "no such file: 'missing.py'"),
        (["plan", "empty.py"], "no workflow, DAG or Flow found in 'empty.py'"),
        (["run", "two.py"], "'two.py' defines several workflows (good, bad); "
                            "choose one: two.py:NAME"),
        (["run", "two.py:third"], "no workflow named 'third' in 'two.py' (found: good, bad)"),
        (["run", "broken.py"], "cannot import 'broken.py': ModuleNotFoundError: "
                               "No module named 'nonexistent_module_xyz' (line 1)"),
        (["graph", "syntax.py"], "cannot import 'syntax.py': SyntaxError: '(' was never "
                                 "closed (line 1)"),
        (["run", "raises.py"], "cannot import 'raises.py': ValueError: at import (line 3)"),
        (["run", "exits.py"], "cannot import 'exits.py': the file exited while being loaded "
                              "(SystemExit(3)) (line 2)"),
        (["plan", "quits.py"], "cannot import 'quits.py': the file exited while being loaded "
                               "(SystemExit(None)) (line 3)"),
        (["run", "folder"], "'folder' is a directory; give the Python file that defines the "
                            "workflow"),
        (["run", "stream.py"], "'stream.py' defines a Pipeline (pipeline) and no workflow; the "
                               "command line runs workflows, DAGs and Flows: run a pipeline "
                               "with 'python stream.py' (await pipeline.run(items))"),
    ],
)  # fmt: skip
def test_mistakes_are_one_line_and_exit_two(files: Path, args: list[str], message: str) -> None:
    done = flowweaver(files, *args)
    assert (done.returncode, done.stdout, done.stderr) == (
        2, "", f"flowweaver: error: {message}\n",
    )  # fmt: skip


def test_a_state_file_no_parser_can_read_is_one_line_and_exit_two(files: Path) -> None:
    (files / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    done = flowweaver(files, "run", "seed.py", "--state", "deep.json", "--run-id", "r")
    path = str(files / "deep.json")
    assert (done.returncode, done.stdout, done.stderr) == (
        2, "", f"flowweaver: error: --state 'deep.json': state store {path!r} is corrupt: "
               "JSON nested too deeply to read\n",
    )  # fmt: skip


@pytest.mark.skipif(sys.platform == "win32", reason="claims use flock")
def test_a_run_owned_by_another_process_is_one_line_and_exit_two(files: Path) -> None:
    from flowweaver import SQLiteStore
    from flowweaver._store import run_namespace

    store = SQLiteStore(files / "s.db")
    claim = store.claim(run_namespace("seed", "r"), ("workflow", "seed", "r"), 0.0)
    try:
        done = flowweaver(files, "run", "seed.py", "--state", "s.db", "--run-id", "r")
    finally:
        claim.release()
        store.close()
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.startswith(
        "flowweaver: error: workflow 'seed' run 'r' is already in progress, owned by process "
    )
    assert done.stderr.count("\n") == 1
    assert flowweaver(files, "run", "seed.py", "--state", "s.db", "--run-id", "r").returncode == 0


def test_bad_arguments_are_usage_errors(files: Path) -> None:
    done = flowweaver(files, "run", "seed.py", "--workers", "0")
    assert done.returncode == 2
    assert "argument --workers: expected an integer >= 1, got '0'" in done.stderr


def test_bench_outside_a_checkout_says_where_the_suite_is(tmp_path: Path) -> None:
    done = flowweaver(tmp_path, "bench", "--quick")
    assert (done.returncode, done.stderr) == (
        2,
        "flowweaver: error: the benchmark suite lives in the benchmarks/ folder of a source "
        "checkout; run 'flowweaver bench' from the repository root\n",
    )


def test_bench_runs_the_checkout_suite_and_passes_its_options(tmp_path: Path) -> None:
    suite = tmp_path / "benchmarks"
    suite.mkdir()
    (suite / "__init__.py").write_text("")
    (suite / "__main__.py").write_text(
        "def main(argv):\n    print('suite ran with', argv)\n    return 0\n"
    )
    done = flowweaver(tmp_path, "bench", "--quick", "--only", "engine")
    assert (done.returncode, done.stdout) == (0, "suite ran with ['--quick', '--only', 'engine']\n")


def test_the_console_script_is_installed() -> None:
    script = Path(sys.executable).parent / "flowweaver"
    done = subprocess.run([str(script), "--help"], capture_output=True, text=True, check=False)
    assert done.returncode == 0
    assert "run" in done.stdout
    assert "plan" in done.stdout
    assert "graph" in done.stdout
    assert "bench" in done.stdout


def test_version_names_the_package_version() -> None:
    from flowweaver import __version__

    done = flowweaver(Path.cwd(), "--version")
    assert (done.returncode, done.stdout) == (0, f"flowweaver {__version__}\n")


def test_executor_help_lists_the_choices_and_the_default(files: Path) -> None:
    done = flowweaver(files, "run", "--help")
    assert "where tasks run: sequential, thread, async, process (default: thread)" in " ".join(
        done.stdout.split()
    )


def test_show_results_prints_each_result_after_the_summary(files: Path) -> None:
    done = flowweaver(files, "run", "seed.py", "--executor", "sequential", "--show-results")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-3:] == [
        "extract    [1, 2, 3]",
        "transform  [2, 4, 6]",
        "load       12",
    ]


def test_json_prints_the_run_as_one_object(files: Path) -> None:
    done = flowweaver(files, "run", "two.py:second", "--json", "--failure-policy", "continue")
    assert done.returncode == 1
    data = json.loads(done.stdout)
    assert (data["workflow"], data["ok"], data["results"]) == ("second", False, {"ok": 2})
    assert data["tasks"]["boom"]["status"] == "failed"
    assert data["tasks"]["boom"]["error"] == "ZeroDivisionError: division by zero"
    assert data["tasks"]["ok"]["attempts"] == 1


def test_the_file_sees_its_own_sys_argv_as_python_would_set_it(files: Path) -> None:
    done = flowweaver(files, "run", "argv.py", "--show-results", "--", "--day", "monday")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "args  ['argv.py', '--day', 'monday']"


def test_a_file_of_one_decorated_task_runs_it(files: Path) -> None:
    done = flowweaver(files, "run", "lone.py", "--show-results")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "flaky  'ok'"


def test_an_example_runs_under_flowweaver_run_as_the_cli_guide_shows() -> None:
    example = Path(__file__).resolve().parent.parent / "examples" / "cpu_bound_processes.py"
    done = flowweaver(example.parent.parent, "run", str(example), "--executor", "process",
                      "--workers", "2", "--show-results", env={"PRIMES_SPAN": "2000"})  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[6].startswith("'primes': 5 completed in ")
    assert lines[-1].split()[0] == "total"
    assert int(lines[-1].split()[1]) == sum(int(line.split()[1]) for line in lines[-5:-1])
