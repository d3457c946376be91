"""A checkpointed pipeline run in its own process, for the crash test (``test_pipeline_crash.py``).

Usage: ``python pipeline_crash_worker.py STORE LOG KIND EXECUTOR [BLOCK_AT]``

Streams ``N`` items (``KIND``: ``plain`` values, or ``dict`` items with their own ids and
metadata) through three stages — async, sync (on ``EXECUTOR``: ``threads``, the default pool;
``sequential``; ``async``), async — with run id ``"crash"`` on ``STORE`` (``.db``: SQLite,
``.json``: JSON file). Every task call appends ``<stage> <item number>`` to ``LOG`` (its side
effect, counted by the test). Each result ``stream()`` yields — after it was committed — is
printed as ``DONE <id>``, which the test reads to pick the moment to kill us. The item numbered
``BLOCK_AT`` prints ``BLOCKED`` in the last stage and then waits forever, so the run cannot end
before the test kills it. At the end: ``RESTORED <json ids>`` (the items this run restored)
and ``RESULTS <repr>`` (every item's id, value and metadata, in input order).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import sys
from dataclasses import dataclass
from typing import Any

from flowweaver import (
    AsyncExecutor,
    JSONFileStore,
    Pipeline,
    SequentialExecutor,
    SQLiteStore,
    Stage,
    StateStore,
)

N = 200
LOG_FD = -1  # set in main(); globals are not part of a stage's fingerprint
BLOCK_AT = -1


@dataclass(frozen=True)
class Point:
    number: int
    total: int


def effect(stage: str, number: int) -> None:
    os.write(LOG_FD, f"{stage} {number}\n".encode())


async def parse(value: Any) -> tuple[int, int]:
    number = value if isinstance(value, int) else int(value.removeprefix("v"))
    effect("parse", number)
    await asyncio.sleep(0)
    return number, (number * 7919) % 1_000_003


def enrich(parsed: tuple[int, int]) -> dict[str, int]:
    number, total = parsed
    effect("enrich", number)
    return {"number": number, "total": (total * 31 + number) % 1_000_003}


async def pack(record: dict[str, int]) -> Any:
    number, total = record["number"], record["total"]
    effect("pack", number)
    if number == BLOCK_AT:
        print("BLOCKED", flush=True)
        await asyncio.Event().wait()  # until SIGKILL
    kind = number % 4
    if kind == 0:
        return (number, total)
    if kind == 1:
        return Point(number, total)
    if kind == 2:
        return frozenset({total, total + 1})
    return {"total": total, "at": dt.datetime(2024, 1, 1) + dt.timedelta(seconds=total)}


def items(kind: str) -> list[Any]:
    if kind == "plain":
        return [f"v{i}" for i in range(N)]
    return [{"id": f"item-{i}", "value": i, "batch": i % 5} for i in range(N)]


def build(executor_name: str) -> Pipeline:
    executor: SequentialExecutor | AsyncExecutor | None = None  # None: the default thread pool
    if executor_name == "sequential":
        executor = SequentialExecutor()
    elif executor_name == "async":
        executor = AsyncExecutor(max_workers=3)
    return Pipeline(
        [
            Stage("Parse", 4, [parse], queue_capacity=8),
            Stage("Enrich", 3, [enrich], queue_capacity=8),
            Stage("Pack", 2, [pack], queue_capacity=8),
        ],
        executor=executor,
        name="crash-test",
    )


async def run(store: StateStore, kind: str, executor_name: str) -> None:
    results = []
    async for result in build(executor_name).stream(items(kind), store=store, run_id="crash"):
        if result.error is not None:
            raise result.error
        print("DONE", json.dumps(result.id), flush=True)
        results.append(result)
    results.sort(key=lambda r: r.sequence_id)
    print("RESTORED", json.dumps([r.id for r in results if r.restored]), flush=True)
    print("RESULTS", repr([(r.id, r.value, dict(r.metadata)) for r in results]), flush=True)


def main() -> None:
    global LOG_FD, BLOCK_AT
    store_path, log_path, kind, executor_name = sys.argv[1:5]
    BLOCK_AT = int(sys.argv[5]) if len(sys.argv) > 5 else -1
    LOG_FD = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    # SIGKILL ends the process, not the OS: the JSON store's per-commit fsync (there for OS
    # crashes) would only slow this test down.
    store: SQLiteStore | JSONFileStore = (
        SQLiteStore(store_path)
        if store_path.endswith(".db")
        else JSONFileStore(store_path, fsync=False)
    )
    with store:
        asyncio.run(run(store, kind, executor_name))


if __name__ == "__main__":
    main()
