"""A durable workflow run in its own process, for the crash test (``test_crash.py``).

Usage: ``python crash_worker.py STORE LOG EXECUTOR [BLOCK_AT]``

Runs a fixed random DAG of ``N`` tasks with run id ``"crash"`` on ``STORE`` (``.db``: SQLite,
``.json``: JSON file). Every task appends its name to ``LOG`` (its side effect, counted by the
test). A monitor prints ``DONE <name>`` when a task completes — after its result was committed
— which the test reads to pick the moment to kill us. The task named ``BLOCK_AT`` prints
``BLOCKED`` and then waits forever, so the run cannot end before the test kills it. At the
end: ``RESTORED <names>`` and ``RESULTS <repr>``.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flowweaver import (
    AsyncExecutor,
    JSONFileStore,
    Monitor,
    SequentialExecutor,
    SQLiteStore,
    StateStore,
    Task,
    TaskStatus,
    ThreadedExecutor,
    Workflow,
    WorkflowRun,
)

N = 300
LOG_FD = -1  # set in main(); globals are not part of a task's fingerprint, closures are
BLOCK_AT = ""
_print_lock = threading.Lock()


@dataclass(frozen=True)
class Point:
    name: str
    total: int


def checksum(value: Any) -> int:
    """A number that depends on every input, so a wrongly restored input shows in the result."""
    if isinstance(value, Point):
        return value.total
    if isinstance(value, tuple):
        total: int = value[1]
        return total
    if isinstance(value, frozenset):
        return sum(value)
    return int(value["total"])


def make(name: str, kind: int) -> Any:
    def fn(*inputs: Any) -> Any:
        os.write(LOG_FD, f"{name}\n".encode())
        if name == BLOCK_AT:
            with _print_lock:
                print("BLOCKED", flush=True)
            threading.Event().wait()  # until SIGKILL
        total = (sum(checksum(x) for x in inputs) * 31 + len(name)) % 1_000_003
        if kind == 0:
            return (name, total)
        if kind == 1:
            return Point(name, total)
        if kind == 2:
            return frozenset({total, total + 1})
        return {"total": total, "at": dt.datetime(2024, 1, 1) + dt.timedelta(seconds=total)}

    return fn


class Progress(Monitor):
    def on_status_change(self, run: WorkflowRun, task_name: str, status: TaskStatus) -> None:
        if status is TaskStatus.COMPLETED:  # the engine commits before it says so
            with _print_lock:
                print("DONE", task_name, flush=True)


def build() -> Workflow:
    rng = random.Random(20240601)
    wf = Workflow("crash-test")
    for i in range(N):
        deps = sorted(rng.sample(range(i), min(i, rng.randint(0, 3))))
        wf.add_task(Task(name=f"t{i}", fn=make(f"t{i}", i % 4)), depends_on=[f"t{d}" for d in deps])
    return wf


def main() -> None:
    global LOG_FD, BLOCK_AT
    store_path, log_path, executor_name = sys.argv[1:4]
    BLOCK_AT = sys.argv[4] if len(sys.argv) > 4 else ""
    LOG_FD = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    # SIGKILL ends the process, not the OS: what was written survives in the page cache, so the
    # JSON store's per-commit fsync (there for OS crashes) only slows this test down.
    store: StateStore = (
        SQLiteStore(store_path)
        if store_path.endswith(".db")
        else JSONFileStore(store_path, fsync=False)
    )
    factories: dict[str, Callable[[], SequentialExecutor | ThreadedExecutor | AsyncExecutor]] = {
        "sequential": SequentialExecutor,
        "threaded": lambda: ThreadedExecutor(max_workers=4),
        "async": lambda: AsyncExecutor(max_workers=4),
    }
    executor = factories[executor_name]()
    run = build().execute(executor, store=store, run_id="crash", monitors=[Progress()])
    print("RESTORED", " ".join(run.restored), flush=True)
    print("RESULTS", repr(sorted(run.results.items())), flush=True)


if __name__ == "__main__":
    main()
