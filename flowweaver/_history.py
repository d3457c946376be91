"""Run history: what every durable run did, kept in its store, and the typed API that reads it.

Design:

* **Where it lives.** History is ordinary store entries (so every :class:`StateStore` keeps it,
  a custom one included), in namespaces of their own that no run's results ever use:

  - ``"history"``: one entry per workflow or pipeline name that ever ran (key
    ``[kind, name]`` as JSON), so listing runs never scans results;
  - ``"history:" + [kind, name]``: one entry per run, keyed by run id, holding the
    :class:`RunRecord` as JSON (written when the run starts, again when it ends); the entry's
    ``created_at`` is the run's start, so listings sort without parsing every record;
  - ``"history:" + [kind, name, run_id]``: the run's details — ``"graph"``
    (``{"names": [...], "deps": [[positions], ...], "mapped": [positions]}``: tasks in
    definition order, each one's dependencies, and the mapped tasks, whose elements are
    committed as ``"<task>[<index>]"`` beside them), ``"outcomes"`` (every task that did not
    complete, and the reused ones), ``"stages"`` and ``"failures"`` for pipelines.

  A completed task's outcome (attempts, start, duration) rides in the ``metadata`` of the entry
  that commits its result — the same row, the same transaction — so history adds no write per
  task. Records are plain JSON with documented keys: a public format, versioned by the store's
  schema version, never pickled, never naming a Python module.
* **Interrupted runs.** A run record says ``running`` until the run ends. It also names the
  process that wrote it (host, pid, and the process's start time where the platform tells it),
  so a reader on the same host shows a run whose process is gone as ``interrupted`` (a
  ``kill -9``, a power cut) — nothing needs to be written for that. Runs of other hosts stay
  ``running`` until a run with the same id resumes them.
* **Retention.** Each store keeps the last ``keep_runs`` runs per name (default 1000, ``None``
  for no limit; 0 records no history at all); a run beyond that is pruned as a newer run of its
  name ends.
  :meth:`RunHistory.prune` removes runs by count or age on request. Pruning a run removes its
  history *and* its committed results: a pruned run id starts afresh.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

from ._checks import is_count
from ._errors import ConfigurationError
from ._public import publish

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "DEFAULT_KEEP_RUNS",
    "HISTORY_NAMESPACE",
    "RunDetail",
    "RunKind",
    "RunRecord",
    "RunStatus",
    "StageRecord",
    "TaskRecord",
    "check_keep_runs",
    "detail_namespace",
    "legacy_record",
    "loads",
    "number",
    "parse_task",
    "pipeline_namespace",
    "process_identity",
    "records_history",
    "results_namespace",
    "run_namespace",
    "runs_namespace",
]

#: The namespace that lists every name with history.
HISTORY_NAMESPACE = "history"
#: Runs kept per workflow or pipeline name unless a store says otherwise.
DEFAULT_KEEP_RUNS = 1000


class RunKind(Enum):
    """What ran: a :class:`~flowweaver.Workflow` or a :class:`~flowweaver.Pipeline`."""

    WORKFLOW = "workflow"
    PIPELINE = "pipeline"


class RunStatus(Enum):
    """How a run ended (or that it has not)."""

    #: Still going (or its process runs on another host and cannot be checked).
    RUNNING = "running"
    #: Every task (item) completed or was skipped.
    COMPLETED = "completed"
    #: A task or item failed.
    FAILED = "failed"
    #: Stopped before the end (Ctrl-C, cancellation, fail-fast cancelled work).
    CANCELLED = "cancelled"
    #: Its process died while it ran (``kill -9``, a crash): seen by a later reader.
    INTERRUPTED = "interrupted"
    #: Recorded before run history existed (migrated from an older store).
    UNKNOWN = "unknown"

    @property
    def is_over(self) -> bool:
        """Whether the run will not change any more (everything but ``running``)."""
        return self is not RunStatus.RUNNING


def runs_namespace(kind: RunKind, name: str) -> str:
    """The namespace of every run record of one workflow or pipeline."""
    return "history:" + json.dumps([kind.value, name])


def detail_namespace(kind: RunKind, name: str, run_id: str) -> str:
    """The namespace of one run's details (graph, outcomes, stages, failures)."""
    return "history:" + json.dumps([kind.value, name, run_id])


def run_namespace(workflow: str, run_id: str) -> str:
    """The namespace of one run's committed results (unambiguous for any two names)."""
    return "run:" + json.dumps([workflow, run_id])


def pipeline_namespace(pipeline: str, run_id: str) -> str:
    """The namespace of one pipeline run's committed item results (never a workflow run's)."""
    return "pipeline:" + json.dumps([pipeline, run_id])


def results_namespace(kind: RunKind, name: str, run_id: str) -> str:
    """The namespace of one run's committed results."""
    if kind is RunKind.WORKFLOW:
        return run_namespace(name, run_id)
    return pipeline_namespace(name, run_id)


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One run, as its store remembers it (``store.runs()`` returns these, newest first).

    Attributes:
        kind: Workflow or pipeline.
        name: The workflow's or pipeline's name.
        run_id: The run's id.
        status: How it ended, ``running``, or ``interrupted`` (its process is gone).
        started_at: Wall-clock start (``time.time()``) of its latest execution.
        ended_at: Wall-clock end, or None while it runs (or when it was interrupted).
        executor: The executor's class name (``"ThreadedExecutor"``; ``"Pipeline"`` for
            pipelines).
        version: The flowweaver version that ran it.
        counts: Tasks (items) per status, e.g. ``{"completed": 9, "failed": 1}``.
        total: Tasks in the workflow (items fed, for a pipeline).
        resumes: How many times the run id ran again after its first execution.
        error: The first failure, as ``"Type: message"``, or None.
        host: The host that ran it.
        pid: Its process id.
    """

    kind: RunKind
    name: str
    run_id: str
    status: RunStatus
    started_at: float
    ended_at: float | None
    executor: str
    version: str
    counts: Mapping[str, int] = field(default_factory=dict)
    total: int = 0
    resumes: int = 0
    error: str | None = None
    host: str = ""
    pid: int = 0

    @property
    def duration(self) -> float | None:
        """Seconds from start to end, or None if it has not ended."""
        return None if self.ended_at is None else self.ended_at - self.started_at

    def to_json(self) -> dict[str, Any]:
        """The record as JSON-ready data (what ``flowweaver runs list --json`` prints)."""
        return {
            "kind": self.kind.value, "name": self.name, "run_id": self.run_id,
            "status": self.status.value, "started_at": self.started_at,
            "ended_at": self.ended_at, "duration": self.duration, "executor": self.executor,
            "version": self.version, "counts": dict(self.counts), "total": self.total,
            "resumes": self.resumes, "error": self.error, "host": self.host, "pid": self.pid,
        }  # fmt: skip


@dataclass(frozen=True, slots=True)
class TaskRecord:
    """What one task (or pipeline item) of a run did.

    Attributes:
        name: The task's name (a pipeline item's id, as JSON text).
        status: Its :class:`~flowweaver.TaskStatus` value (``"completed"``, ``"failed"`` …),
            or ``"unknown"`` when the run was interrupted before it was recorded.
        attempts: Attempts made (0: restored, cached, skipped or never started).
        started_at: Wall-clock time of its first attempt, or None.
        duration: Seconds from its first start to its end, or None.
        error_type: The final error's class name, or None.
        error: The final error's message, or None.
        traceback: The final error's formatted traceback, or None.
        stage: For a failed pipeline item, the stage it failed in.
        reused: ``"restored"`` or ``"cached"`` when its result was reused, else None.
        elements: For a mapped task, how many of its elements have a committed result (None:
            not a mapped task).
        parent: For a task of a subflow (a child run), the task that opened it; its ``name``
            is nested (``"load/parse_3"``).
        subflow: For a task that opened a subflow, how many tasks the child run has.
    """

    name: str
    status: str
    attempts: int = 0
    started_at: float | None = None
    duration: float | None = None
    error_type: str | None = None
    error: str | None = None
    traceback: str | None = None
    stage: str | None = None
    reused: str | None = None
    elements: int | None = None
    parent: str | None = None
    subflow: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name, "status": self.status, "attempts": self.attempts,
            "started_at": self.started_at, "duration": self.duration,
            "error_type": self.error_type, "error": self.error, "traceback": self.traceback,
            "stage": self.stage, "reused": self.reused, "elements": self.elements,
            "parent": self.parent, "subflow": self.subflow,
        }  # fmt: skip


@dataclass(frozen=True, slots=True)
class StageRecord:
    """One pipeline stage's counts at the end of a run."""

    name: str
    workers: int
    processed: int
    failed: int

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name, "workers": self.workers, "processed": self.processed,
            "failed": self.failed,
        }  # fmt: skip


@dataclass(frozen=True, slots=True)
class RunDetail:
    """One run with everything recorded about it (``store.run(name, run_id)``).

    Attributes:
        run: Its :class:`RunRecord`.
        tasks: Every task (workflow) or every failed and committed item (pipeline).
        dependencies: For a workflow, ``{task: (its dependencies, ...)}`` in definition order.
        layers: For a workflow, the execution plan's layers (task names).
        stages: For a pipeline, each stage's counts.
    """

    run: RunRecord
    tasks: tuple[TaskRecord, ...]
    dependencies: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    layers: tuple[tuple[str, ...], ...] = ()
    stages: tuple[StageRecord, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "run": self.run.to_json(),
            "tasks": [t.to_json() for t in self.tasks],
            "dependencies": {k: list(v) for k, v in self.dependencies.items()},
            "layers": [list(layer) for layer in self.layers],
            "stages": [s.to_json() for s in self.stages],
        }


# -- this process, and whether a recorded one is still alive ---------------------------------


def _start_token(pid: int) -> str | None:
    """When process ``pid`` started (Linux: clock ticks since boot), or None if unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
        return fields[19].decode()
    except (OSError, IndexError):
        return None


def process_identity() -> dict[str, Any]:
    """``host``, ``pid`` and ``token`` (the start time) of this process, for a run record."""
    pid = os.getpid()
    return {"host": socket.gethostname(), "pid": pid, "token": _start_token(pid)}


def _owner_gone(raw: Mapping[str, Any]) -> bool:
    """Whether the process that wrote a ``running`` record is known to be gone."""
    pid = raw.get("pid")
    if raw.get("host") != socket.gethostname() or not isinstance(pid, int) or pid <= 0:
        return False
    if sys.platform == "win32":  # os.kill(pid, 0) would terminate it there
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # it exists, owned by someone else
        return False
    token = raw.get("token")
    return token is not None and _start_token(pid) not in (None, token)


# -- reading ---------------------------------------------------------------------------------


def number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def parse_run(kind: RunKind, name: str, run_id: str, raw: Mapping[str, Any]) -> RunRecord:
    """A :class:`RunRecord` from its stored JSON (unknown keys ignored, missing ones default)."""
    try:
        status = RunStatus(raw.get("status"))
    except ValueError:
        status = RunStatus.UNKNOWN
    if status is RunStatus.RUNNING and _owner_gone(raw):
        status = RunStatus.INTERRUPTED
    counts = raw.get("counts")
    return RunRecord(
        kind=kind,
        name=name,
        run_id=run_id,
        status=status,
        started_at=number(raw.get("started_at")) or 0.0,
        ended_at=number(raw.get("ended_at")),
        executor=str(raw.get("executor", "")),
        version=str(raw.get("version", "")),
        counts={str(k): int(v) for k, v in counts.items()} if isinstance(counts, dict) else {},
        total=int(raw.get("total", 0)),
        resumes=int(raw.get("resumes", 0)),
        error=raw.get("error") if isinstance(raw.get("error"), str) else None,
        host=str(raw.get("host", "")),
        pid=int(raw.get("pid", 0)),
    )


def loads(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def parse_task(name: str, raw: object, default_status: str) -> TaskRecord:
    if not isinstance(raw, dict):
        return TaskRecord(name, default_status)
    return TaskRecord(
        name=name,
        status=str(raw.get("status", default_status)),
        attempts=int(raw.get("attempts", 0)),
        started_at=number(raw.get("started_at")),
        duration=number(raw.get("duration")),
        error_type=raw.get("error_type"),
        error=raw.get("error"),
        traceback=raw.get("traceback"),
        stage=raw.get("stage"),
        reused=raw.get("reused"),
        parent=raw.get("parent") if isinstance(raw.get("parent"), str) else None,
        subflow=raw.get("subflow") if isinstance(raw.get("subflow"), int) else None,
    )


def check_keep_runs(owner: str, keep_runs: object) -> int | None:
    """A store's ``keep_runs=`` (runs kept per name), validated."""
    if keep_runs is None or (is_count(keep_runs)):
        return keep_runs
    raise ConfigurationError(f"{owner}: keep_runs must be an int >= 0 or None, got {keep_runs!r}")


def records_history(store: object) -> bool:
    """Whether runs on ``store`` record history (every store, unless ``keep_runs=0``)."""
    return getattr(store, "keep_runs", DEFAULT_KEEP_RUNS) != 0


def legacy_record(started_at: float, ended_at: float, completed: int) -> str:
    """The run record a migration writes for a run committed before run history existed."""
    return json.dumps(
        {"status": RunStatus.UNKNOWN.value, "started_at": started_at, "ended_at": ended_at,
         "counts": {"completed": completed}, "total": completed, "executor": "", "version": ""}
    )  # fmt: skip


publish(__name__)  # last: every exported class above exists
