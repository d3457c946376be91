"""``flowweaver runs list/show/prune`` and ``flowweaver ui``: a store's run history.

Stores are opened read-only (``runs list``, ``runs show``, ``ui``): a history is read while
runs write it, and nothing is ever created, migrated or changed by looking. ``runs prune`` is
the one command that writes.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from ._errors import FlowWeaverError, UnknownRunError
from ._history import RunKind, RunStatus

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable

    from ._history import RunDetail, RunRecord
    from ._json_store import JSONFileStore
    from ._sqlite_store import SQLiteStore
    from ._store import StateStore

__all__ = ["add_commands", "format_duration", "format_time", "open_history", "run_command"]


class HistoryUsageError(Exception):
    """A mistake in a history command: one line, exit status 2."""


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``runs`` and ``ui`` to the ``flowweaver`` parser's sub-commands."""
    runs = commands.add_parser("runs", help="list and show the runs recorded in a store")
    sub = runs.add_subparsers(dest="runs_command", required=True, metavar="ACTION")
    listing = sub.add_parser("list", help="recorded runs, newest first")
    listing.add_argument("state", metavar="STATE_DB", help="a .db/.sqlite or .json store")
    listing.add_argument("--workflow", metavar="NAME", help="only runs of this workflow/pipeline")
    listing.add_argument("--kind", choices=[k.value for k in RunKind])
    listing.add_argument("--status", choices=[s.value for s in RunStatus])
    listing.add_argument("--limit", type=int, default=20, metavar="N", help="default 20; 0: all")
    listing.add_argument("--json", action="store_true", help="print JSON")
    show = sub.add_parser("show", help="one run: its tasks (items), statuses, attempts, errors")
    show.add_argument("state", metavar="STATE_DB")
    show.add_argument("name", metavar="NAME", help="the workflow's or pipeline's name")
    show.add_argument("run_id", metavar="RUN_ID")
    show.add_argument("--json", action="store_true", help="print JSON")
    show.add_argument("--traceback", action="store_true", help="print each failure's traceback")
    prune = sub.add_parser("prune", help="remove old runs (their history and results)")
    prune.add_argument("state", metavar="STATE_DB")
    prune.add_argument("--workflow", metavar="NAME", help="only runs of this workflow/pipeline")
    prune.add_argument("--keep-last", type=int, metavar="N", help="keep the newest N per name")
    prune.add_argument("--older-than", type=float, metavar="DAYS", help="remove older runs")

    ui = commands.add_parser("ui", help="serve a live, read-only web view of a store's runs")
    ui.add_argument("state", metavar="STATE_DB")
    ui.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1 (this machine only)")
    ui.add_argument("--port", type=int, default=8321, help="default 8321; 0: any free port")


def run_command(args: argparse.Namespace, serve: Callable[[StateStore, str, int], int]) -> int:
    """Run ``runs …`` or ``ui`` (``serve``: ``_ui.serve``, which builds on this module); the
    exit status (2, with one line, for a mistake)."""
    try:
        if args.command == "ui":
            with open_history(args.state) as store:
                return serve(store, args.host, args.port)
        if args.runs_command == "prune":
            return _prune(args)
        with open_history(args.state) as store:
            if args.runs_command == "list":
                return _list(store, args)
            return _show(store, args)
    except HistoryUsageError as error:
        print(f"flowweaver: error: {error}", file=sys.stderr)
        return 2


def open_history(path: str, *, read_only: bool = True) -> SQLiteStore | JSONFileStore:
    """The store at ``path`` (``.json``: JSON file; otherwise SQLite), opened to read.

    Raises:
        HistoryUsageError: There is no such file, or it is not a readable store.
    """
    from ._json_store import JSONFileStore
    from ._sqlite_store import SQLiteStore

    if not Path(path).is_file():
        raise HistoryUsageError(f"no such store: {path!r}")
    try:
        if path.endswith(".json"):
            return JSONFileStore(path)
        return SQLiteStore(path, read_only=read_only)
    except FlowWeaverError as error:
        raise HistoryUsageError(f"{path!r}: {error}") from None


def format_time(moment: float | None) -> str:
    """A wall-clock time as local ``YYYY-MM-DD HH:MM:SS`` ("" for None)."""
    if moment is None:
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(moment))


def format_duration(seconds: float | None) -> str:
    """``0.042 s``, ``12.5 s``, ``3 min 20 s``, ``2 h 5 min`` ("" for None)."""
    if seconds is None:
        return ""
    if seconds < 10:
        return f"{seconds:.3f} s"
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60)} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60)} min"


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(row[k]) for row in rows) for k in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def done_count(record: RunRecord) -> str:
    """``done/total`` of a run: completed and skipped tasks (items) over all of them."""
    done = record.counts.get("completed", 0) + record.counts.get("skipped", 0)
    return f"{done}/{record.total}"


def _list(store: StateStore, args: argparse.Namespace) -> int:
    from ._history_read import RunHistory

    if args.limit < 0:
        raise HistoryUsageError(f"--limit must be >= 0, got {args.limit}")
    records = RunHistory(store).runs(
        args.workflow, kind=args.kind, status=args.status, limit=args.limit or None
    )
    if args.json:
        print(json.dumps([r.to_json() for r in records], indent=2))
        return 0
    if not records:
        print("no runs recorded")
        return 0
    rows = [["started", "kind", "name", "run id", "status", "done", "duration", "executor"]]
    rows += [
        [format_time(r.started_at), r.kind.value, r.name, r.run_id, r.status.value,
         done_count(r), format_duration(r.duration), r.executor]
        for r in records
    ]  # fmt: skip
    print(_table(rows))
    return 0


def _show(store: StateStore, args: argparse.Namespace) -> int:
    from ._history_read import RunHistory

    try:
        detail = RunHistory(store).run(args.name, args.run_id)
    except UnknownRunError as error:
        raise HistoryUsageError(str(error)) from None
    if args.json:
        print(json.dumps(detail.to_json(), indent=2))
        return 0
    print(describe(detail, tracebacks=args.traceback))
    return 0


def describe(detail: RunDetail, *, tracebacks: bool = False) -> str:
    """The text of ``runs show``: the run's line, then its task (item) table."""
    run = detail.run
    head = (
        f"{run.kind.value} {run.name!r} run {run.run_id!r}: {run.status.value}, "
        f"started {format_time(run.started_at)}"
        + (f", took {format_duration(run.duration)}" if run.duration is not None else "")
        + (f", on {run.executor}" if run.executor else "")
        + (f", resumed {run.resumes} time(s)" if run.resumes else "")
    )
    lines = [head]
    lines += [
        f"  stage {stage.name!r}: {stage.workers} worker(s), {stage.processed} processed, "
        f"{stage.failed} failed"
        for stage in detail.stages
    ]
    first = "task" if run.kind is RunKind.WORKFLOW else "item"
    rows = [[first, "status", "attempts", "duration", "error"]]
    for task in detail.tasks:
        status = task.status + (f" ({task.reused})" if task.reused else "")
        error = f"{task.error_type}: {task.error}" if task.error_type else ""
        if task.stage and task.error_type:
            error = f"in {task.stage!r}: {error}"
        rows.append([task.name, status, str(task.attempts), format_duration(task.duration), error])
    lines.append(_table(rows))
    if tracebacks:
        for task in detail.tasks:
            if task.traceback:
                lines += ["", f"{first} {task.name!r}:", task.traceback.rstrip()]
    return "\n".join(lines)


def _prune(args: argparse.Namespace) -> int:
    from ._history_read import RunHistory

    if args.keep_last is None and args.older_than is None:
        raise HistoryUsageError("runs prune needs --keep-last N or --older-than DAYS")
    if args.keep_last is not None and args.keep_last < 0:
        raise HistoryUsageError(f"--keep-last must be >= 0, got {args.keep_last}")
    before = None if args.older_than is None else time.time() - args.older_than * 86400
    with open_history(args.state, read_only=False) as store:
        removed = RunHistory(store).prune(args.workflow, keep_last=args.keep_last, before=before)
    print(f"removed {removed} run(s)")
    return 0
