"""A durable run whose work is a subflow, in its own process, for ``test_subflow_crash.py``.

Usage: ``python subflow_crash_worker.py STORE LOG EXECUTOR [BLOCK_AT]``

``list_files -> load -> total``: ``load`` builds a child workflow of ``N`` parse tasks from the
list it gets (one per file) and returns it, so the child runs as a child run of ``load``. Run
id ``"crash"`` on the SQLite store ``STORE``. Every parse task appends its name to ``LOG`` (its
side effect, counted by the test); a monitor prints ``DONE <name>`` when a task completes
(after its result was committed). The parse task named ``BLOCK_AT`` prints ``BLOCKED`` and
waits forever. At the end: ``RESTORED <names>`` and ``RESULT <total>``.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable

from flowweaver import (
    AsyncExecutor,
    Monitor,
    SequentialExecutor,
    SQLiteStore,
    Task,
    TaskStatus,
    ThreadedExecutor,
    Workflow,
    WorkflowRun,
)

N = 40
LOG_FD = -1  # set in main(); globals are not part of a task's fingerprint, closures are
BLOCK_AT = ""
_print_lock = threading.Lock()


def parse(name: str, k: int) -> int:
    os.write(LOG_FD, f"{name}\n".encode())
    if name == BLOCK_AT:
        with _print_lock:
            print("BLOCKED", flush=True)
        threading.Event().wait()  # until SIGKILL
    return k * k


def load(list_files: list[str]) -> Workflow:
    child = Workflow("parse_files")
    for k, path in enumerate(list_files):
        child.add_task(Task(name=path, fn=lambda path=path, k=k: parse(path, k)))
    return child


class Progress(Monitor):
    def on_status_change(self, run: WorkflowRun, task_name: str, status: TaskStatus) -> None:
        if status is TaskStatus.COMPLETED:  # the engine commits before it says so
            with _print_lock:
                print("DONE", task_name, flush=True)


def build() -> Workflow:
    wf = Workflow("files")
    wf.add_task(Task(name="list_files", fn=lambda: [f"parse_{k}" for k in range(N)]))
    wf.add_task(Task(name="load", fn=load), depends_on=["list_files"])
    wf.add_task(Task(name="total", fn=lambda load: sum(load.values())), depends_on=["load"])
    return wf


def main() -> None:
    global LOG_FD, BLOCK_AT
    store_path, log_path, executor_name = sys.argv[1:4]
    BLOCK_AT = sys.argv[4] if len(sys.argv) > 4 else ""
    LOG_FD = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    factories: dict[str, Callable[[], SequentialExecutor | ThreadedExecutor | AsyncExecutor]] = {
        "sequential": SequentialExecutor,
        "threaded": lambda: ThreadedExecutor(max_workers=2),
        "async": lambda: AsyncExecutor(max_workers=2),
    }
    executor = factories[executor_name]()
    with SQLiteStore(store_path) as store:
        run = build().execute(executor, store=store, run_id="crash", monitors=[Progress()])
    print("RESTORED", " ".join(run.restored), flush=True)
    print("RESULT", run.result("total"), flush=True)


if __name__ == "__main__":
    main()
