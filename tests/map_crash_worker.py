"""A durable mapped run in its own process, for the mapped crash test (``test_map_crash.py``).

Usage: ``python map_crash_worker.py STORE LOG EXECUTOR [BLOCK_AT]``

Maps ``square`` over ``N`` numbers, then sums the squares, with run id ``"crash"`` on the
SQLite ``STORE``. Every element appends its index to ``LOG`` (its side effect, counted by the
test); a monitor prints ``DONE <index>`` once an element is committed. The element whose
index is ``BLOCK_AT`` prints ``BLOCKED`` and waits forever, so the run cannot end before the
test kills it. At the end: ``RESTORED <count>`` and
``RESULT <total>``.
"""

from __future__ import annotations

import os
import sys
import threading

from flowweaver import (
    Monitor,
    SequentialExecutor,
    SQLiteStore,
    Task,
    TaskStatus,
    ThreadedExecutor,
    Workflow,
    WorkflowRun,
)

N = 10_000
LOG_FD = -1  # set in main(); globals are not part of a task's fingerprint, closures are
BLOCK_AT = -1
# The blocking element prints from a worker thread while the monitor prints from the driver:
# print() writes a line in pieces, so unlocked lines interleave ("DONE BLOCKED\n6999\n") and
# the test would wait forever for a line it can no longer read.
_print_lock = threading.Lock()


def say(*words: object) -> None:
    with _print_lock:
        print(*words, flush=True)


def numbers() -> list[int]:
    return list(range(N))


def square(numbers: int) -> int:
    os.write(LOG_FD, f"{numbers}\n".encode())
    if numbers == BLOCK_AT:
        say("BLOCKED")
        threading.Event().wait()  # until SIGKILL
    return numbers * numbers


class Progress(Monitor):
    def on_status_change(self, run: WorkflowRun, task_name: str, status: TaskStatus) -> None:
        element = run.element_of(task_name)
        if element is not None and status is TaskStatus.COMPLETED:  # committed before this
            say("DONE", element[1])


def build() -> Workflow:
    wf = Workflow("map-crash")
    wf.add_task(Task(name="numbers", fn=numbers))
    wf.add_task(Task(name="square", fn=square, map_over="numbers"), depends_on=["numbers"])
    wf.add_task(Task(name="total", fn=lambda square: sum(square)), depends_on=["square"])
    return wf


def main() -> None:
    global LOG_FD, BLOCK_AT
    store_path, log_path, executor_name = sys.argv[1:4]
    BLOCK_AT = int(sys.argv[4]) if len(sys.argv) > 4 else -1
    LOG_FD = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    executor = SequentialExecutor() if executor_name == "sequential" else ThreadedExecutor(4)
    store = SQLiteStore(store_path)
    run = build().execute(executor, store=store, run_id="crash", monitors=[Progress()])
    print("RESTORED", len([n for n in run.restored if n.startswith("square[")]), flush=True)
    print("RESULT", run.result("total"), flush=True)


if __name__ == "__main__":
    main()
