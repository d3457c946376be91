"""Reading run history: :class:`RunHistory` and the store methods built on it.

The format is described in :mod:`flowweaver._history`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, cast

from ._checks import is_count
from ._errors import ConfigurationError, UnknownRunError
from ._history import (
    HISTORY_NAMESPACE,
    RunDetail,
    RunKind,
    RunRecord,
    RunStatus,
    StageRecord,
    TaskRecord,
    detail_namespace,
    loads,
    number,
    parse_run,
    parse_task,
    results_namespace,
    runs_namespace,
)
from ._public import publish

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from ._store import StateEntry, StateStore

__all__ = ["HasRunHistory", "RunHistory"]


class RunHistory:
    """The run history of a store: list runs, read one, prune old ones.

    Every flowweaver store has these as methods (``store.runs()``, ``store.run(...)``,
    ``store.prune_runs(...)``); ``RunHistory(store)`` gives them to any other
    :class:`~flowweaver.StateStore`.

    Examples:
        >>> for record in RunHistory(store).runs(workflow="etl", limit=5):  # doctest: +SKIP
        ...     print(record.run_id, record.status.value)
    """

    __slots__ = ("store",)

    def __init__(self, store: StateStore) -> None:
        self.store = store

    def _names(self) -> list[tuple[RunKind, str]]:
        names = []
        for key in self.store.entries(HISTORY_NAMESPACE):
            raw = loads(key)
            if isinstance(raw, list) and len(raw) == 2:
                try:
                    names.append((RunKind(raw[0]), str(raw[1])))
                except ValueError:
                    continue
        return names

    def runs(
        self,
        name: str | None = None,
        *,
        kind: RunKind | str | None = None,
        status: RunStatus | str | None = None,
        since: float | None = None,
        limit: int | None = None,
    ) -> list[RunRecord]:
        """Recorded runs, newest first.

        Args:
            name: Only runs of this workflow or pipeline.
            kind: Only workflow runs or only pipeline runs.
            status: Only runs with this status (``"failed"``, ``RunStatus.INTERRUPTED`` …).
            since: Only runs started at or after this wall-clock time.
            limit: At most this many (the newest).

        Raises:
            ConfigurationError: A filter is not of a valid type or value.
        """
        kinds = _kind_filter(kind)
        wanted = _status_filter(status)
        if limit is not None and (not is_count(limit)):
            raise ConfigurationError(f"limit must be an int >= 0 or None, got {limit!r}")
        if since is not None and number(since) is None:
            raise ConfigurationError(f"since must be a wall-clock time in seconds, got {since!r}")
        if name is not None and not isinstance(name, str):
            raise ConfigurationError(f"name must be a str or None, got {name!r}")
        # A run record's entry is stamped with the run's start (``created_at``): sort on that,
        # and parse only as many records as the answer needs (10,000 runs list in ms).
        # A store that can list keys and stamps without the data (SQLite) is read in two steps:
        # stamps to sort, then only the records the answer shows.
        stamps = getattr(self.store, "stamps", None)
        found: list[tuple[float, str, RunKind, str, StateEntry | None]] = []
        for run_kind, run_name in self._names():
            if run_kind not in kinds or (name is not None and run_name != name):
                continue
            namespace = runs_namespace(run_kind, run_name)
            if stamps is not None:
                found.extend(
                    (stamp, run_id, run_kind, run_name, None)
                    for run_id, stamp in stamps(namespace)
                    if since is None or stamp >= since
                )
                continue
            for run_id, entry in self.store.entries(namespace).items():
                if since is None or entry.created_at >= since:
                    found.append((entry.created_at, run_id, run_kind, run_name, entry))
        found.sort(key=lambda f: (f[0], f[1]), reverse=True)
        records: list[RunRecord] = []
        for _, run_id, run_kind, run_name, known in found:
            if limit is not None and len(records) >= limit:
                break
            chosen = known or self.store.get(runs_namespace(run_kind, run_name), run_id)
            if chosen is None:  # pruned meanwhile
                continue
            raw = loads(chosen.data)
            if isinstance(raw, dict):
                record = parse_run(run_kind, run_name, run_id, raw)
                if wanted is None or record.status is wanted:
                    records.append(record)
        return records

    def run(self, name: str, run_id: str, *, kind: RunKind | str | None = None) -> RunDetail:
        """One run with its tasks (items), graph and stages.

        Raises:
            UnknownRunError: No run ``run_id`` of ``name`` is recorded (a ``KeyError``).
        """
        for run_kind in sorted(_kind_filter(kind), key=lambda k: k.value, reverse=True):
            entry = self.store.get(runs_namespace(run_kind, name), run_id)
            raw = loads(entry.data) if entry is not None else None
            if isinstance(raw, dict):
                record = parse_run(run_kind, name, run_id, raw)
                return self._detail(record)
        raise UnknownRunError(name, run_id)

    def _detail(self, record: RunRecord) -> RunDetail:
        store = self.store
        details = store.entries(detail_namespace(record.kind, record.name, record.run_id))
        results = store.entries(results_namespace(record.kind, record.name, record.run_id))
        outcomes = loads(details["outcomes"].data) if "outcomes" in details else None
        outcomes = outcomes if isinstance(outcomes, dict) else {}
        missing = "pending" if record.status is RunStatus.RUNNING else "unknown"
        tasks: list[TaskRecord] = []
        if record.kind is RunKind.WORKFLOW:
            graph = loads(details["graph"].data) if "graph" in details else None
            graph = graph if isinstance(graph, dict) else {}
            names, deps = graph.get("names", []), graph.get("deps", [])
            mapped = {str(names[k]) for k in graph.get("mapped", []) if 0 <= k < len(names)}
            elements = _element_counts(results) if mapped else {}
            dependencies = {
                str(task): tuple(str(names[d]) for d in task_deps if 0 <= d < len(names))
                for task, task_deps in zip(names, deps, strict=False)
            }
            for task in dependencies or dict.fromkeys([*results, *outcomes]):
                if task in results:
                    done = _committed(task, results[task].metadata)
                    reused = outcomes.get(task)
                    if isinstance(reused, dict) and isinstance(reused.get("reused"), str):
                        done = replace(done, reused=reused["reused"])
                    if task in mapped:
                        done = replace(done, elements=elements.get(task, 0))
                    tasks.append(done)
                elif task in mapped:
                    raw_outcome = outcomes.get(task)
                    partial = (
                        parse_task(task, raw_outcome, "unknown")
                        if task in outcomes
                        else TaskRecord(task, missing)
                    )
                    tasks.append(replace(partial, elements=elements.get(task, 0)))
                elif task in outcomes:
                    tasks.append(parse_task(task, outcomes[task], "unknown"))
                else:
                    tasks.append(TaskRecord(task, missing))
            if dependencies:  # then the tasks of its subflows (child runs), in run order
                tasks.extend(
                    parse_task(task, raw, "unknown")
                    for task, raw in outcomes.items()
                    if task not in dependencies and isinstance(raw, dict) and raw.get("parent")
                )
            return RunDetail(record, tuple(tasks), dependencies, _layers(dependencies))
        for key, entry in results.items():
            tasks.append(_committed(key, entry.metadata))
        failures = loads(details["failures"].data) if "failures" in details else None
        tasks.extend(
            parse_task(str(raw.get("name", "")), raw, "failed")
            for raw in (failures if isinstance(failures, list) else [])
            if isinstance(raw, dict)
        )
        stages_raw = loads(details["stages"].data) if "stages" in details else None
        stages = tuple(
            StageRecord(str(s["name"]), int(s["workers"]), int(s["processed"]), int(s["failed"]))
            for s in (stages_raw if isinstance(stages_raw, list) else [])
            if isinstance(s, dict)
        )
        return RunDetail(record, tuple(tasks), stages=stages)

    def prune(
        self,
        name: str | None = None,
        *,
        keep_last: int | None = None,
        before: float | None = None,
    ) -> int:
        """Remove old runs (their history and their committed results); how many went.

        Args:
            name: Only runs of this workflow or pipeline (default: every name, each counted
                on its own).
            keep_last: Keep the newest ``keep_last`` runs of each name.
            before: Remove runs that started before this wall-clock time.

        A run that is still ``running`` is never removed.

        Raises:
            ConfigurationError: Neither ``keep_last`` nor ``before`` was given, or one is
                invalid.
        """
        if keep_last is None and before is None:
            raise ConfigurationError("prune needs keep_last= or before= (or both)")
        if keep_last is not None and not is_count(keep_last):
            raise ConfigurationError(f"keep_last must be an int >= 0, got {keep_last!r}")
        if before is not None and number(before) is None:
            raise ConfigurationError(f"before must be a wall-clock time in seconds, got {before!r}")
        removed = 0
        for run_kind, run_name in self._names():
            if name is not None and run_name != name:
                continue
            records = self.runs(run_name, kind=run_kind)
            for position, record in enumerate(records):
                old = (keep_last is not None and position >= keep_last) or (
                    before is not None and record.started_at < before
                )
                if old and record.status is not RunStatus.RUNNING:
                    self.forget(record)
                    removed += 1
        return removed

    def forget(self, record: RunRecord) -> None:
        """Remove one run's history and committed results."""
        store = self.store
        store.clear(results_namespace(record.kind, record.name, record.run_id))
        store.clear(detail_namespace(record.kind, record.name, record.run_id))
        store.delete(runs_namespace(record.kind, record.name), record.run_id)


def _element_counts(results: Mapping[str, object]) -> dict[str, int]:
    """Committed elements per mapped task: keys ``"<task>[<index>]"``."""
    counts: dict[str, int] = {}
    for key in results:
        if key.endswith("]") and "[" in key:
            base = key[: key.rindex("[")]
            counts[base] = counts.get(base, 0) + 1
    return counts


def _committed(name: str, metadata: str | None) -> TaskRecord:
    """A task (item) whose result was committed: its outcome rides in the entry's metadata."""
    raw = loads(metadata)
    if not isinstance(raw, dict):
        return TaskRecord(name, "completed")
    return parse_task(name, {"status": "completed", **raw}, "completed")


def _layers(dependencies: Mapping[str, Iterable[str]]) -> tuple[tuple[str, ...], ...]:
    """Kahn layers of a recorded graph (what ``get_execution_plan`` returned for it)."""
    depth: dict[str, int] = {}
    waiting = {task: [d for d in deps if d in dependencies] for task, deps in dependencies.items()}
    while waiting:
        progressed = False
        for task, deps in list(waiting.items()):
            if all(d in depth for d in deps):
                depth[task] = 1 + max((depth[d] for d in deps), default=-1)
                del waiting[task]
                progressed = True
        if not progressed:  # a damaged record: put what is left in one last layer
            last = 1 + max(depth.values(), default=-1)
            depth.update(dict.fromkeys(waiting, last))
            break
    layers: list[list[str]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
    for task in dependencies:
        layers[depth[task]].append(task)
    return tuple(tuple(layer) for layer in layers)


def _kind_filter(kind: RunKind | str | None) -> frozenset[RunKind]:
    if kind is None:
        return frozenset(RunKind)
    try:
        return frozenset((RunKind(kind),))
    except ValueError:
        raise ConfigurationError(
            f"kind must be one of {[k.value for k in RunKind]!r}, got {kind!r}"
        ) from None


def _status_filter(status: RunStatus | str | None) -> RunStatus | None:
    if status is None:
        return None
    try:
        return RunStatus(status)
    except ValueError:
        raise ConfigurationError(
            f"status must be one of {[s.value for s in RunStatus]!r}, got {status!r}"
        ) from None


class HasRunHistory:
    """The run-history methods of flowweaver's stores (see :class:`RunHistory`)."""

    __slots__ = ()

    def runs(
        self,
        name: str | None = None,
        *,
        kind: RunKind | str | None = None,
        status: RunStatus | str | None = None,
        since: float | None = None,
        limit: int | None = None,
    ) -> list[RunRecord]:
        """Recorded runs, newest first; see :meth:`RunHistory.runs`."""
        return RunHistory(cast("StateStore", self)).runs(
            name, kind=kind, status=status, since=since, limit=limit
        )

    def run(self, name: str, run_id: str, *, kind: RunKind | str | None = None) -> RunDetail:
        """One run with its tasks (items), graph and stages; see :meth:`RunHistory.run`."""
        return RunHistory(cast("StateStore", self)).run(name, run_id, kind=kind)

    def prune_runs(
        self, name: str | None = None, *, keep_last: int | None = None, before: float | None = None
    ) -> int:
        """Remove old runs (history and committed results); see :meth:`RunHistory.prune`."""
        return RunHistory(cast("StateStore", self)).prune(name, keep_last=keep_last, before=before)


publish(__name__)  # last: every exported class above exists
