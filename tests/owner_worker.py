"""A durable run that holds its run id until told to go on, for ``test_run_owner.py``.

Usage: ``python -m tests.owner_worker STORE`` (from the repository root). Runs ``workflow()``
with run id ``"nightly"`` on ``STORE`` (``.db``: SQLite, ``.json``: JSON file). Once ``first``
is committed, ``gate`` prints ``HOLDING`` and waits for a line on standard input; at the end the
worker prints ``DONE`` and the names it restored.
"""

from __future__ import annotations

import sys

from flowweaver import JSONFileStore, SequentialExecutor, SQLiteStore, StateStore, Task, Workflow

HOLD = False  # set in main(); globals are not part of a task's fingerprint


def first() -> int:
    return 1


def gate(first: int) -> int:
    if HOLD:
        print("HOLDING", flush=True)
        sys.stdin.readline()
    return first + 1


def last(gate: int) -> int:
    return gate * 10


def workflow() -> Workflow:
    made = Workflow("owned")
    made.add_task(Task(name="first", fn=first))
    made.add_task(Task(name="gate", fn=gate), depends_on=["first"])
    made.add_task(Task(name="last", fn=last), depends_on=["gate"])
    return made


def open_store(path: str) -> StateStore:
    return SQLiteStore(path) if path.endswith(".db") else JSONFileStore(path)


def main() -> None:
    global HOLD
    HOLD = True
    store = open_store(sys.argv[1])
    try:
        run = SequentialExecutor().execute(workflow(), store=store, run_id="nightly")
    finally:
        store.close()
    print("DONE", *run.restored, flush=True)


if __name__ == "__main__":
    main()
