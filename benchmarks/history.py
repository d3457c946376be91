"""Run history benchmarks: what recording costs on top of a store, and the web view's list.

* **Recording**: the same chain of no-op tasks on the Sequential executor, three ways,
  interleaved in one process (``best_of``): no store; a SQLite store (``synchronous="normal"``)
  with ``keep_runs=0`` (today's per-task store cost: results committed, no history); the same
  store recording history. The figure is (history - no store) / (no history - no store): the
  store's per-task cost with history over without. Target ≤ 1.25.
* **Web view**: a store holding 10,000 recorded runs; the time for the UI's server to answer
  its run list (``GET /``, and ``GET /api/runs``) over HTTP on localhost, best of several.
  Target < 200 ms.
"""

from __future__ import annotations

import gc
import itertools
import os
import tempfile
import threading
import time
import urllib.request
from typing import TYPE_CHECKING

from flowweaver import SequentialExecutor, SQLiteStore
from flowweaver._history import RunKind, RunStatus
from flowweaver._recording import RunRecorder
from flowweaver._ui import make_server

from ._harness import Row, best_of
from .engine import noop, shape, workflow

if TYPE_CHECKING:
    from collections.abc import Callable

#: The list page must answer within this many milliseconds for 10,000 runs.
LIST_BUDGET_MS = 200.0


def _recording(n: int, repeat: int, folder: str) -> list[Row]:
    wf = workflow(shape("chain", n), noop)
    executor = SequentialExecutor()
    ids = itertools.count()
    with (
        SQLiteStore(os.path.join(folder, "plain.db"), keep_runs=0) as plain,
        SQLiteStore(os.path.join(folder, "history.db"), keep_runs=None) as history,
    ):
        with_history, without_history, no_store = best_of(
            repeat,
            lambda: executor.execute(wf, store=history, run_id=f"h{next(ids)}"),
            lambda: executor.execute(wf, store=plain, run_id=f"p{next(ids)}"),
            lambda: executor.execute(wf),
        )
        # The same, in this process's CPU time (user + system): with synchronous=normal a
        # commit is CPU and system calls, no fsync, and CPU time does not count the time the
        # process waited for a core on a loaded machine, which wall time does.
        cpu = _best_cpu(
            repeat,
            lambda: executor.execute(wf, store=history, run_id=f"h{next(ids)}"),
            lambda: executor.execute(wf, store=plain, run_id=f"p{next(ids)}"),
            lambda: executor.execute(wf),
        )
    rows = []
    for clock, (hist, plain_, bare) in (
        ("wall", (with_history, without_history, no_store)), ("CPU", cpu),
    ):  # fmt: skip
        ours, base = (hist - bare) / n * 1e6, (plain_ - bare) / n * 1e6
        note = f"store cost per task with history vs without ({n} tasks, SQLite normal)"
        case = f"store cost per task, history on ({clock} time)"
        rows.append(Row("history", case, ours, base, "µs/task", 1.25, note))
    return rows


def _best_cpu(repeat: int, *fns: Callable[[], object]) -> tuple[float, ...]:
    """Best process CPU time of each function, interleaved ``repeat`` times."""
    best = [float("inf")] * len(fns)
    for _ in range(repeat):
        for k, fn in enumerate(fns):
            gc.collect()
            start = time.process_time()
            fn()
            best[k] = min(best[k], time.process_time() - start)
    return tuple(best)


def _fill(store: SQLiteStore, runs: int) -> None:
    started = time.time() - runs
    for k in range(runs):
        recorder = RunRecorder(store, RunKind.WORKFLOW, f"wf{k % 20}", f"run-{k:05d}")
        recorder.start(started + k, "ThreadedExecutor", 10)
        counts = {"completed": 9, "failed": 1} if k % 7 == 0 else {"completed": 10}
        status = RunStatus.FAILED if k % 7 == 0 else RunStatus.COMPLETED
        recorder.finish(status, started + k + 0.5, counts, None, {})


def _list(runs: int, repeat: int, folder: str) -> list[Row]:
    path = os.path.join(folder, "many.db")
    with SQLiteStore(path, keep_runs=None) as store:
        _fill(store, runs)
    rows = []
    with SQLiteStore(path, read_only=True) as reader:
        server = make_server(reader, "127.0.0.1", 0)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        try:
            for case, path_ in (("run list page (GET /)", ""), ("run list JSON", "api/runs")):

                def fetch(path_: str = path_) -> None:
                    with urllib.request.urlopen(url + path_, timeout=30) as response:
                        response.read()

                (best,) = best_of(repeat, fetch)
                note = f"{runs} runs in the store, newest 200 listed; vs the 200 ms budget"
                rows.append(
                    Row("history", f"UI {case}", best * 1e3, LIST_BUDGET_MS, "ms", 1.0, note)
                )
        finally:
            server.shutdown()
            server.server_close()
            thread.join(10)
    return rows


def run(quick: bool) -> list[Row]:
    with tempfile.TemporaryDirectory() as folder:
        rows = _recording(500 if quick else 5_000, 2 if quick else 7, folder)
        rows += _list(1_000 if quick else 10_000, 2 if quick else 5, folder)
    return rows
