"""Writing run history: what a durable run tells its store as it starts, goes and ends.

The format and the reading side are in :mod:`flowweaver._history`. Cost, by design: two
writes per run (its record when it starts and when it ends) plus one for its graph and one for
the outcomes of tasks that did not complete; nothing per completed task beyond a few bytes of
metadata in the entry that commits its result (:func:`outcome_metadata`).

A history write that fails when a run ends is logged and the run's own outcome stands: the
results are committed already, and a run is never failed by its diary.
"""

from __future__ import annotations

import json
import logging
import traceback
from typing import TYPE_CHECKING, Any

from ._history import (
    DEFAULT_KEEP_RUNS,
    HISTORY_NAMESPACE,
    RunKind,
    RunStatus,
    detail_namespace,
    parse_run,
    process_identity,
    runs_namespace,
)
from ._history_read import RunHistory
from ._status import TaskStatus
from ._store import StateEntry
from ._version import __version__

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from ._store import StateStore

__all__ = ["RunRecorder", "error_fields", "outcome_metadata"]

logger = logging.getLogger("flowweaver.state")

#: A traceback longer than this is cut (from the middle: its start and its end are kept).
MAX_TRACEBACK = 20_000
#: Failed items a pipeline run's history keeps (the first ones).
MAX_FAILED_ITEMS = 1000


def outcome_metadata(attempts: int, started_at: float, duration: float) -> str:
    """The metadata of a committed result: the task's attempts and timings (JSON)."""
    return f'{{"attempts":{attempts:d},"started_at":{started_at:.6f},"duration":{duration:.6f}}}'


def reused_metadata(how: str) -> str:
    """The metadata of a result committed without running the task (``"cached"``)."""
    return json.dumps({"attempts": 0, "reused": how})


def error_fields(error: BaseException | None) -> dict[str, Any]:
    """``error_type``, ``error`` and ``traceback`` of a final error, for a record."""
    if error is None:
        return {}
    text = "".join(traceback.format_exception(error))
    if len(text) > MAX_TRACEBACK:
        half = MAX_TRACEBACK // 2
        text = text[:half] + "\n[... traceback cut ...]\n" + text[-half:]
    return {"error_type": type(error).__name__, "error": str(error), "traceback": text}


def _version() -> str:
    return __version__


class RunRecorder:
    """The history of one durable run, written through its store."""

    __slots__ = ("_base", "kind", "name", "run_id", "store")

    def __init__(self, store: StateStore, kind: RunKind, name: str, run_id: str) -> None:
        self.store = store
        self.kind = kind
        self.name = name
        self.run_id = run_id
        self._base: dict[str, Any] = {}

    def start(self, started_at: float, executor: str, total: int) -> None:
        """The run begins (or resumes): record it as ``running``.

        Raises:
            StateError: The store cannot be written (the run has not started anything yet).
        """
        store, kind, name = self.store, self.kind, self.name
        key = json.dumps([kind.value, name])
        if store.get(HISTORY_NAMESPACE, key) is None:
            store.put(HISTORY_NAMESPACE, key, StateEntry("{}", store.now()))
        earlier = store.get(runs_namespace(kind, name), self.run_id)
        resumes = 0
        if earlier is not None:
            try:
                resumes = int(json.loads(earlier.data).get("resumes", 0)) + 1
            except (ValueError, AttributeError, TypeError):
                resumes = 1
        self._base = {
            "started_at": started_at, "executor": executor, "version": _version(),
            "total": total, "resumes": resumes, **process_identity(),
        }  # fmt: skip
        self._put_record({"status": RunStatus.RUNNING.value, "ended_at": None})

    def graph(
        self,
        names: Sequence[str],
        dependencies: Sequence[Sequence[int]],
        mapped: Sequence[int] = (),
    ) -> None:
        """Record a workflow's tasks, in definition order, each one's dependencies (their
        positions in ``names``) and which are mapped tasks, for the web view's graph."""
        graph = {"names": names, "deps": dependencies, "mapped": mapped}
        self._put_detail("graph", json.dumps(graph))

    def finish(
        self,
        status: RunStatus,
        ended_at: float,
        counts: Mapping[str, int],
        error: str | None,
        details: Mapping[str, object],
        total: int | None = None,
    ) -> None:
        """The run ended: record how, with its ``details`` (``"outcomes"``, ``"stages"`` …).

        A store that fails here is logged; the run's outcome stands.
        """
        try:
            for key, value in details.items():
                self._put_detail(key, json.dumps(value))
            if total is not None:
                self._base["total"] = total
            self._put_record(
                {"status": status.value, "ended_at": ended_at, "counts": dict(counts),
                 "error": error}
            )  # fmt: skip
            self._retain()
        except Exception:
            logger.warning(
                "%s %r: run %s: its history could not be written to %r",
                self.kind.value, self.name, self.run_id, self.store, exc_info=True,
            )  # fmt: skip

    def _put_record(self, fields: dict[str, Any]) -> None:
        store = self.store
        text = json.dumps({**self._base, **fields})
        # Stamped with the run's start: listings sort on it without parsing every record.
        entry = StateEntry(text, self._base["started_at"])
        store.put(runs_namespace(self.kind, self.name), self.run_id, entry)

    def _put_detail(self, key: str, text: str) -> None:
        store = self.store
        namespace = detail_namespace(self.kind, self.name, self.run_id)
        store.put(namespace, key, StateEntry(text, store.now()))

    def _retain(self) -> None:
        """Keep the store's ``keep_runs`` newest runs of this name."""
        keep = getattr(self.store, "keep_runs", DEFAULT_KEEP_RUNS)
        if not isinstance(keep, int):
            return
        entries = self.store.entries(runs_namespace(self.kind, self.name))
        if len(entries) <= keep:
            return
        history = RunHistory(self.store)
        newest = sorted(entries.items(), key=lambda e: (e[1].created_at, e[0]), reverse=True)
        records = []
        for run_id, entry in newest[keep:]:
            try:
                raw = json.loads(entry.data)
            except ValueError:
                continue
            if isinstance(raw, dict):
                records.append(parse_run(self.kind, self.name, run_id, raw))
        for record in records:
            if record.status is not RunStatus.RUNNING and record.run_id != self.run_id:
                history.forget(record)


def run_status(counts: Mapping[str, int], stopped: bool = False) -> RunStatus:
    """How a run ended, from its tasks' (items') counts."""
    if counts.get(TaskStatus.FAILED.value) or counts.get(TaskStatus.UPSTREAM_FAILED.value):
        return RunStatus.FAILED
    if stopped or counts.get(TaskStatus.CANCELLED.value):
        return RunStatus.CANCELLED
    return RunStatus.COMPLETED
