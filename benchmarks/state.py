"""State benchmarks: what a durable run costs per completed task.

Every figure is measured beside the same workflow run without a store, in the same process,
interleaved (``best_of``). The workflow is a chain of no-op tasks on the Sequential executor,
so the difference is all state overhead: serializing the result, hashing code and inputs, and
one store transaction per task.

* SQLite, ``synchronous="normal"`` (the default): WAL, no fsync per commit. A committed task
  survives the process crashing; an OS crash or power loss may lose the last commits.
* SQLite, ``synchronous="full"``: one fsync per commit; survives power loss. Its cost is the
  disk's fsync latency, so it is reported, not held to a target.
* Memory store: the same work without I/O (serialization + fingerprints only).
* Resume: re-running a finished run id, every task restored instead of run.
* JSON file store: rewrites the whole file per commit (O(n) each), for small cases only.
"""

from __future__ import annotations

import itertools
import os
import tempfile

from flowweaver import JSONFileStore, MemoryStore, SequentialExecutor, SQLiteStore, StateStore

from ._harness import Row, best_of
from .engine import noop, shape, workflow

#: Target: SQLite (synchronous=normal) overhead per completed task, sequential executor.
BUDGET_US = 50.0


def _per_task(n: int, repeat: int, store: StateStore, fresh: bool = True) -> tuple[float, float]:
    """(with store, without) seconds per task; ``fresh``: a new run id each time (no resume)."""
    wf = workflow(shape("chain", n), noop)
    ids = itertools.count()
    executor = SequentialExecutor()
    if not fresh:
        executor.execute(wf, store=store, run_id="resume")
    with_store, without = best_of(
        repeat,
        lambda: executor.execute(wf, store=store, run_id=f"r{next(ids)}" if fresh else "resume"),
        lambda: executor.execute(wf),
    )
    return with_store / n, without / n


def _overhead(case: str, ours: float, base: float, note: str) -> Row:
    return Row("state", case, (ours - base) * 1e6, None, "µs/task", None, note)


def run(quick: bool) -> list[Row]:
    n = 1_000 if quick else 5_000
    repeat = 2 if quick else 5
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as folder:
        with SQLiteStore(os.path.join(folder, "normal.db")) as normal:
            ours, base = _per_task(n, repeat, normal)
            overhead = (ours - base) * 1e6
            note = f"vs no store; overhead {overhead:.1f} µs/task"
            rows.append(
                Row("state", "sequential chain + SQLite (normal)", ours * 1e6, base * 1e6,
                    "µs/task", None, note)
            )  # fmt: skip
            note = "vs the 50 µs budget; survives a process crash"
            rows.append(
                Row("state", "SQLite overhead per task (normal)", overhead, BUDGET_US, "µs/task",
                    1.0, note)
            )  # fmt: skip
            ours, base = _per_task(n, repeat, normal, fresh=False)
            rows.append(
                Row("state", "resume: every task restored (SQLite)", ours * 1e6, base * 1e6,
                    "µs/task", None, "vs running the no-ops")
            )  # fmt: skip
        with SQLiteStore(os.path.join(folder, "full.db"), synchronous="full") as full:
            ours, base = _per_task(max(n // 10, 50), repeat, full)
            note = "one fsync per commit; survives power loss"
            rows.append(_overhead("SQLite overhead per task (full)", ours, base, note))
        ours, base = _per_task(n, repeat, MemoryStore())
        note = "serialize + fingerprint, no I/O"
        rows.append(_overhead("memory store overhead per task", ours, base, note))
        with JSONFileStore(os.path.join(folder, "state.json")) as js:
            small = 100 if quick else 200
            ours, base = _per_task(small, 1, js)
            note = "whole file rewritten + fsynced per commit"
            rows.append(
                _overhead(f"JSON store overhead per task ({small} tasks)", ours, base, note)
            )
    return rows
