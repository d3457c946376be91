"""The ``flowweaver`` command line (also ``python -m flowweaver``).

``run``, ``plan`` and ``graph`` load a Python file and pick the workflow to act on: a
:class:`~flowweaver.Workflow`, :class:`~flowweaver.DAG` or :class:`~flowweaver.Flow` bound to
a global name. ``FILE:NAME`` chooses by variable name or by the workflow's own name; without
``NAME`` the file must hold exactly one. A file with ``>>`` edges but no DAG object runs those
edges as a DAG named after the file (a file with no edges, its ``@task`` functions).
``bench`` runs the benchmark suite of a source checkout.

Mistakes (missing file, nothing found, two candidates, an error while importing the file) are
one line on standard error and exit status 2; a failed run exits 1; Ctrl-C exits 130.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import _scope
from ._cli_runs import add_commands, run_command
from ._dag import DAG, AuthoredGraph
from ._errors import FlowWeaverError, WorkflowFailedError
from ._logging import LogLevel, configure_logging
from ._pipeline import Pipeline
from ._resolve import EXECUTOR_NAMES, resolve_executor
from ._state_manager import open_store
from ._status import FailurePolicy, TaskStatus
from ._workflow import Workflow

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ._elements import ElementRecord
    from ._options import RunOptions
    from ._run import WorkflowRun

__all__ = ["main"]


class UsageError(Exception):
    """A mistake in how the command was used: one line, exit status 2."""


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return value


def _parser() -> argparse.ArgumentParser:
    from ._version import __version__

    parser = argparse.ArgumentParser(
        prog="flowweaver",
        description="Run, plan and draw flowweaver workflows defined in Python files.",
    )
    parser.add_argument("--version", action="version", version=f"flowweaver {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser(
        "run",
        help="run a workflow and print a summary",
        description="Run the workflow, DAG or Flow that FILE defines and print a summary. "
        "Arguments after a lone -- become the file's sys.argv[1:]: "
        "flowweaver run job.py --progress -- --day monday.",
    )
    run.add_argument(
        "target", metavar="FILE[:NAME]", help="a Python file; NAME picks one of its workflows"
    )
    run.add_argument(
        "--executor",
        choices=EXECUTOR_NAMES,
        default="thread",
        help="where tasks run: %(choices)s (default: %(default)s)",
    )
    shown = run.add_mutually_exclusive_group()
    shown.add_argument(
        "--show-results", action="store_true", help="print each task's result after the summary"
    )
    shown.add_argument(
        "--json",
        action="store_true",
        help="print the run as one JSON object (statuses, results, errors) instead",
    )
    run.add_argument("--workers", type=_positive, metavar="N", help="worker threads/processes")
    run.add_argument("--progress", action="store_true", help="show a progress line")
    run.add_argument(
        "--failure-policy", choices=[p.value for p in FailurePolicy], default="fail_fast"
    )
    run.add_argument(
        "-v", "--verbose", action="count", default=0, help="log more (-v: info, -vv: debug)"
    )
    run.add_argument("--log-json", action="store_true", help="log JSON lines")
    run.add_argument(
        "--state", metavar="PATH", help="a .db/.sqlite (SQLite) or .json store: resumable runs"
    )
    run.add_argument("--run-id", metavar="ID", help="the run to start or resume (with --state)")

    plan = commands.add_parser("plan", help="print the Kahn layers of a workflow")
    plan.add_argument("target", metavar="FILE[:NAME]")

    graph = commands.add_parser("graph", help="print a workflow's graph")
    graph.add_argument("target", metavar="FILE[:NAME]")
    graph.add_argument("--format", choices=("mermaid", "dot", "text"), default="text")

    bench = commands.add_parser("bench", help="run the benchmark suite (from a source checkout)")
    bench.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    bench.add_argument("--only", action="append", metavar="SUITE", help="a suite to run")
    add_commands(commands)  # runs list/show/prune, ui
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    # Everything after a lone "--" is the loaded file's own arguments (its sys.argv[1:]).
    file_args: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, file_args = argv[:cut], argv[cut + 1 :]
    args = _parser().parse_args(argv)
    try:
        if args.command == "bench":
            return _bench(args)
        if args.command in ("runs", "ui"):
            from ._ui import serve  # http.server: only for `flowweaver ui`

            return run_command(args, serve)
        label, workflow = _load(args.target, file_args)
        if args.command == "plan":
            for k, layer in enumerate(workflow.get_execution_plan()):
                print(f"layer {k}: {', '.join(task.name for task in layer)}")
            return 0
        if args.command == "graph":
            render = {"mermaid": workflow.to_mermaid, "dot": workflow.to_dot}
            text = render[args.format]() if args.format in render else _text(label, workflow)
            print(text.rstrip("\n"))
            return 0
        return _run(workflow, args)
    except UsageError as error:
        print(f"flowweaver: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("flowweaver: interrupted", file=sys.stderr)
        return 130


def _text(label: str, workflow: Workflow) -> str:
    from ._export import to_text

    return to_text(
        label, workflow._names, workflow._deps, workflow._levels, workflow._map_labels()
    ).rstrip("\n")


def _run(workflow: Workflow, args: argparse.Namespace) -> int:
    # The summary reports failures; log lines add detail only when asked for.
    level = (LogLevel.ERROR, LogLevel.INFO, LogLevel.DEBUG)[min(args.verbose, 2)]
    configure_logging(level, json_output=args.log_json)
    if (args.state is None) != (args.run_id is None):
        raise UsageError("--state and --run-id go together: the store, and the run in it")
    store = None
    if args.state is not None:
        try:
            store = open_store(args.state, what="the store's file name")
        except FlowWeaverError as error:
            raise UsageError(f"--state {args.state!r}: {error}") from None
    try:
        executor, release = resolve_executor(args.executor, args.workers)
    except FlowWeaverError as error:
        raise UsageError(str(error)) from None
    options: RunOptions = {"progress": args.progress, "failure_policy": args.failure_policy}
    if store is not None:
        options["store"] = store
        options["run_id"] = args.run_id
    failed = False
    try:
        executor.execute(workflow, **options)
    except WorkflowFailedError:
        failed = True
    except FlowWeaverError as error:  # the run could not start (a bad --run-id, say)
        raise UsageError(str(error)) from None
    finally:
        if release is not None:
            release()
        if store is not None:
            store.close()
    run = workflow.last_run
    assert run is not None  # execute() always leaves its run behind
    if args.json:
        print(json.dumps(_as_json(run), indent=2, default=repr))
    else:
        print(_summary(run))
        if args.show_results:
            print(_results(run))
    return 1 if failed else 0


def _results(run: WorkflowRun) -> str:
    results = run.results
    width = max([4, *map(len, results)])
    return "\n".join(f"{name:<{width}}  {value!r}" for name, value in results.items())


def _as_json(run: WorkflowRun) -> dict[str, object]:
    """The run for ``--json``; a result JSON cannot hold is given as its ``repr``."""
    tasks: dict[str, object] = {}
    for name, status in run.statuses.items():
        error = run.error(name)
        tasks[name] = {
            "status": status.value,
            "attempts": run.attempts(name),
            "seconds": run.duration(name),
            "error": None if error is None else f"{type(error).__name__}: {error}",
        }
    stats = run.stats()
    return {
        "workflow": run.workflow,
        "run_id": run.run_id,
        "ok": not run.failures,
        "seconds": stats["total_time_seconds"],
        "results": run.results,
        "tasks": tasks,
    }


def _summary(run: WorkflowRun) -> str:
    names = list(run.statuses)
    width = max([4, *map(len, names)])
    lines = [f"{'task':<{width}}  {'status':<15}  attempts  seconds"]
    for name in names:
        duration = run.duration(name)
        seconds = "" if duration is None else f"{duration:7.3f}"
        record = run.elements(name)
        attempts = run.attempts(name) if record is None else record.attempts
        line = f"{name:<{width}}  {run.status(name).value:<15}  {attempts:>8}  {seconds}"
        if record is not None:
            line += f"  {_element_counts(record)}"
        error = run.error(name)
        if error is not None and run.status(name) is TaskStatus.FAILED:
            line += f"  {type(error).__name__}: {error}"
        lines.append(line.rstrip())
    stats = run.stats()
    counts = ", ".join(
        f"{stats[s.value]} {s.value}" for s in TaskStatus if stats[s.value] and s.is_terminal
    )
    reused = f" ({len(run.restored)} restored from the store)" if run.restored else ""
    lines.append(
        f"{run.workflow!r}: {counts or 'no tasks'}{reused} in {stats['total_time_seconds']:.3f} s"
    )
    return "\n".join(lines)


def _element_counts(record: ElementRecord) -> str:
    """``[10 elements: 8 completed, 2 failed]``: a mapped task's row in the summary."""
    total = len(record) if record.total is None else record.total
    noun = "element" if total == 1 else "elements"
    counts = ", ".join(
        f"{record.count(s)} {s.value}" for s in TaskStatus if s.is_terminal and record.count(s)
    )
    return f"[{total} {noun}: {counts}]" if counts else f"[{total} {noun}]"


def _load(target: str, argv: Sequence[str] = ()) -> tuple[str, Workflow]:
    """Import the file named by ``target`` and pick the workflow; (label, workflow)."""
    file, _, name = target.rpartition(":") if ":" in target else (target, "", "")
    if not file or (not Path(file).exists() and Path(target).exists()):
        file, name = target, ""
    if Path(file).is_dir():
        raise UsageError(f"{file!r} is a directory; give the Python file that defines the workflow")
    if not Path(file).is_file():
        raise UsageError(f"no such file: {file!r}")
    module, records = _import(Path(file), argv)
    found: dict[int, tuple[str, Workflow | AuthoredGraph]] = {}
    pipelines: list[str] = []
    for attribute, value in vars(module).items():
        if attribute.startswith("_"):
            continue
        if isinstance(value, Workflow | AuthoredGraph):
            found.setdefault(id(value), (attribute, value))
        elif isinstance(value, Pipeline):
            pipelines.append(attribute)
    candidates = list(found.values())
    edges = _scope.edges_of(records)
    lone = _scope.declared_in(records, module.__name__)
    if not candidates and (edges or lone):  # the seed's style: `a >> b`, no DAG object
        stem = Path(file).stem
        candidates = [(stem, DAG(stem, edges=edges) if edges else DAG(stem, tasks=lone))]
    if name:
        chosen = [(a, v) for a, v in candidates if name in (a, v.name)]
        if not chosen:
            have = ", ".join(a for a, _ in candidates) or "none"
            raise UsageError(f"no workflow named {name!r} in {file!r} (found: {have})")
    elif candidates:
        chosen = candidates
    elif pipelines:
        raise UsageError(
            f"{file!r} defines a Pipeline ({', '.join(pipelines)}) and no workflow; the "
            f"command line runs workflows, DAGs and Flows: run a pipeline with "
            f"'python {file}' (await pipeline.run(items))"
        )
    else:
        raise UsageError(f"no workflow, DAG or Flow found in {file!r}")
    if len(chosen) > 1:
        names = ", ".join(a for a, _ in chosen)
        raise UsageError(f"{file!r} defines several workflows ({names}); choose one: {file}:NAME")
    attribute, value = chosen[0]
    try:
        workflow = value if isinstance(value, Workflow) else value.to_workflow()
    except FlowWeaverError as error:
        raise UsageError(f"{attribute!r} in {file!r} cannot run: {error}") from None
    kind = "workflow" if isinstance(value, Workflow) else type(value).__name__.lower()
    return f"{kind} {value.name!r}", workflow


def _import(path: Path, argv: Sequence[str] = ()) -> tuple[Any, list[_scope.Edge]]:
    """Import ``path`` as a module (so worker processes can import it too) and return it with
    the ``>>`` edges it recorded but no DAG claimed.

    While it loads, ``sys.argv`` is ``[path, *argv]``, as ``python path ...`` (and ``runpy``)
    would set it, so a file that reads its arguments at import works; it is restored after.
    """
    shown = str(path)
    path = path.resolve()
    stem = path.stem
    # Worker processes import task functions by module name: use the file's own name when it
    # is free, so that works; never shadow a module that is already imported.
    module_name = (
        stem if stem.isidentifier() and stem not in sys.modules else f"_flowweaver_{id(path)}"
    )
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise UsageError(f"cannot import {shown!r}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    sys.path.insert(0, str(path.parent))
    scope = _scope.open_scope()
    saved_argv = sys.argv
    sys.argv = [shown, *argv]
    try:
        spec.loader.exec_module(module)
    except (Exception, SystemExit) as error:  # sys.exit() in the file must not end *us* silently
        sys.modules.pop(module_name, None)
        where = traceback.extract_tb(error.__traceback__)
        line = next((f" (line {f.lineno})" for f in reversed(where) if f.filename == str(path)), "")
        message = f"{type(error).__name__}: {error}"
        if isinstance(error, SyntaxError):  # its str() names the file and line already
            message, line = f"SyntaxError: {error.msg}", f" (line {error.lineno})"
        elif isinstance(error, SystemExit):
            message = f"the file exited while being loaded (SystemExit({error.code!r}))"
        raise UsageError(f"cannot import {shown!r}: {message}{line}") from None
    finally:
        sys.argv = saved_argv
        edges = _scope.close_scope(scope)
    return module, edges


def _bench(args: argparse.Namespace) -> int:
    sys.path.insert(0, str(Path.cwd()))
    try:
        from benchmarks.__main__ import main as bench_main
    except ImportError:
        raise UsageError(
            "the benchmark suite lives in the benchmarks/ folder of a source checkout; "
            "run 'flowweaver bench' from the repository root"
        ) from None
    argv = ["--quick"] if args.quick else []
    for suite in args.only or ():
        argv += ["--only", suite]
    result: int = bench_main(argv)
    return result
