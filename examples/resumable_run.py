"""A resumable run: it fails halfway, and the second run does only what is left.

Run it with ``python examples/resumable_run.py``. A workflow of 20 "expensive" steps runs with
a SQLite store and a fixed run id. Step 13 fails the first time (its input file is missing);
the script then provides the file and runs the same workflow again with the same run id: the
12 committed steps are restored from the store (not run again) and only the rest run.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from flowweaver import SQLiteStore, Task, ThreadedExecutor, Workflow, WorkflowFailedError


def build(folder: Path, ran: list[str]) -> Workflow:
    def step(k: int) -> int:
        ran.append(f"step_{k}")
        if k == 13 and not (folder / "input-13.csv").exists():
            raise FileNotFoundError("input-13.csv")
        return k * k

    wf = Workflow("nightly")
    for k in range(1, 21):
        wf.add_task(Task(name=f"step_{k}", fn=lambda k=k: step(k)),
                    depends_on=[f"step_{k - 1}"] if k > 1 else [])  # fmt: skip
    wf.add_task(
        Task(name="report", fn=lambda step_20: f"done: step_20 = {step_20}"),
        depends_on=["step_20"],
    )
    return wf


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        with SQLiteStore(folder / "state.db") as store:
            ran: list[str] = []
            try:
                build(folder, ran).execute(ThreadedExecutor(), store=store, run_id="2026-11-23")
            except WorkflowFailedError as error:
                print(f"first run: {error.failures[0]}")
            print(f"first run executed {len(ran)} steps")

            (folder / "input-13.csv").write_text("ok\n")
            ran.clear()
            run = build(folder, ran).execute(ThreadedExecutor(), store=store, run_id="2026-11-23")
            print(f"second run executed {len(ran)} steps ({ran[0]} to {ran[-1]}), "
                  f"restored {len(run.restored)} from the store")  # fmt: skip
            print(run.result("report"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
