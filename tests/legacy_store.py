"""The workflow, pipeline and state entries behind ``tests/fixtures/store-0.3.0.*``.

Those two files (SQLite and JSON) were written by flowweaver 0.3.0, whose type tags named
private modules (``flowweaver._status:TaskStatus``); ``test_legacy_store`` resumes from them
with today's code. The tasks are builtins and ``functools.partial`` objects on purpose: their
fingerprints do not depend on the Python version's bytecode, so a resume reuses every committed
result on any Python. Regenerate (only when a new release's files are wanted, under a new name)
with ``python -m tests.legacy_store DIR``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import operator
import sys
from typing import Any
from zoneinfo import ZoneInfo

from flowweaver import (
    ChangePolicy,
    FailurePolicy,
    ItemStatus,
    LogLevel,
    Pipeline,
    Stage,
    StageStats,
    StateEntry,
    Task,
    TaskStatus,
    WorkerState,
    WorkerStatus,
    Workflow,
)

WORKFLOW, RUN_ID = "legacy", "r1"
PIPELINE, PIPELINE_RUN_ID = "legacy-items", "p1"

#: What the ``bundle`` task returns: flowweaver's own enums, dataclasses and named tuples, and
#: tagged builtin types, one of each.
BUNDLE: tuple[Any, ...] = (
    TaskStatus.COMPLETED,
    FailurePolicy.CONTINUE,
    ChangePolicy.ERROR,
    LogLevel.SUCCESS,
    WorkerStatus.IDLE,
    StageStats("Wrap", 0, 1, 2, 3),
    WorkerState("Wrap-0", "Wrap", WorkerStatus.BUSY, current_item_id=("id", 1)),
    StateEntry("x", 1.0, None, "fp"),
    dt.datetime(2026, 10, 25, 1, 30, fold=1, tzinfo=ZoneInfo("Europe/Berlin")),
    frozenset({b"a", b"b"}),
)
#: The pipeline's items: each a list holding a flowweaver enum; its one stage makes a tuple.
ITEMS: list[list[Any]] = [[ItemStatus.COMPLETED, i] for i in range(3)]
STATE_KEY, STATE_VALUE = "policy", FailurePolicy.FAIL_FAST


def workflow(last: Any) -> Workflow:
    """bundle -> copy -> last. ``bundle`` and ``copy`` were committed; ``last`` failed."""
    wf = Workflow(WORKFLOW)
    wf.add_task(Task("bundle", fn=functools.partial(operator.getitem, (BUNDLE,), 0)))
    wf.add_task(Task("copy", fn=operator.itemgetter(slice(None))), depends_on=["bundle"])
    wf.add_task(Task("last", fn=last), depends_on=["copy"])
    return wf


def pipeline() -> Pipeline:
    return Pipeline([Stage("Wrap", 1, [tuple])], name=PIPELINE)


def _write(directory: str) -> None:  # pragma: no cover - run by hand, see the docstring
    from flowweaver import JSONFileStore, SQLiteStore, StateManager, WorkflowFailedError

    for store in (
        SQLiteStore(f"{directory}/store-0.3.0.sqlite"),
        JSONFileStore(f"{directory}/store-0.3.0.json", fsync=False),
    ):
        with store:
            with contextlib.suppress(WorkflowFailedError):
                workflow(functools.partial(operator.truediv, 1, 0)).execute(
                    store=store, run_id=RUN_ID, failure_policy="continue"
                )
            asyncio.run(pipeline().run(ITEMS, store=store, run_id=PIPELINE_RUN_ID))
            StateManager(store=store).set(STATE_KEY, STATE_VALUE)


if __name__ == "__main__":  # pragma: no cover
    _write(sys.argv[1])
