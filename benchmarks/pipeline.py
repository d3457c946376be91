"""Pipeline benchmarks: throughput beside a hand-written asyncio pipeline, and flat memory.

* Throughput — 3 stages x 10 workers, bounded queues (10 per worker), trivial async tasks,
  100,000 items — against the same pipeline written by hand with ``asyncio.Queue`` (workers
  that ``get``, ``await`` the task and ``put``; sentinels to stop), measured in the same process,
  interleaved, best of several. The hand-written one keeps what ``Pipeline.run()`` promises by
  default and a user would have to write: results in input order (it carries each item's
  index and sorts at the end) and a failing item recorded, not a dead worker (a ``try`` per
  call). Targets (issue 18): flowweaver's items/s at least 0.85 of the hand-written one
  without a tracker, 0.5 with a :class:`StatusTracker` attached. Shown as µs per item, so the
  ratio is hand-written items/s ÷ flowweaver items/s (targets: at most 1/0.85 and 2).
* Memory — 1,000,000 items through ``stream()`` in a fresh interpreter; its peak RSS must stay
  under 100 MB. The note gives the same interpreter's peak after a 10-item stream: the floor.
  On Linux the peak is ``VmHWM`` from ``/proc/self/status``: ``getrusage``'s ``ru_maxrss``
  carries over the *parent's* peak across ``fork``/``exec`` (the kernel folds the old address
  space's high-water mark in at ``exec``), so measured from this busy benchmark process it
  would report this process's size, not the child's. Elsewhere ``ru_maxrss`` is used.
"""

from __future__ import annotations

import asyncio

from flowweaver import Pipeline, Stage, StatusTracker

from ._harness import Row, best_of, peak_rss_mb

STAGES = 3
WORKERS = 10
CAPACITY = 10 * WORKERS  # flowweaver's default queue capacity for 10 workers
RSS_BUDGET_MB = 100.0


async def step(x: int) -> int:
    return x + 1


async def hand_written(n: int) -> int:
    """The baseline: the same pipeline with asyncio.Queue, keeping run()'s default promises
    (results in input order, failures recorded) and nothing else."""
    stop = None
    queues: list[asyncio.Queue[tuple[int, int] | None]] = [
        asyncio.Queue(CAPACITY) for _ in range(STAGES)
    ]
    results: list[tuple[int, int]] = []
    failures: list[tuple[int, int, Exception]] = []

    async def worker(index: int) -> None:
        inbox = queues[index]
        outbox = queues[index + 1] if index + 1 < STAGES else None
        while True:
            item = await inbox.get()
            if item is stop:
                return
            seq, value = item
            try:
                value = await step(value)
            except Exception as error:  # the item fails; the worker carries on
                failures.append((seq, index, error))
                continue
            if outbox is None:
                results.append((seq, value))
            else:
                await outbox.put((seq, value))

    pools = [
        [asyncio.ensure_future(worker(index)) for _ in range(WORKERS)] for index in range(STAGES)
    ]
    for seq, value in enumerate(range(n)):
        await queues[0].put((seq, value))
    for index, pool in enumerate(pools):
        for _ in pool:
            await queues[index].put(stop)
        await asyncio.gather(*pool)
    results.sort()  # input order, as run() returns them
    return len(results) + len(failures)


async def flowweaver_run(n: int, tracker: bool, query: bool = False) -> int:
    """``query``: then ask the tracker for its counts (it indexes its log of changes then)."""
    status_tracker = StatusTracker() if tracker else None
    pipeline = Pipeline(
        [Stage(f"S{i}", WORKERS, [step]) for i in range(STAGES)], status_tracker=status_tracker
    )
    count = len(await pipeline.run(range(n)))
    if query:
        assert status_tracker is not None
        assert status_tracker.get_stats()["completed"] == n
    return count


def throughput(n: int, repeat: int) -> list[Row]:
    def hand() -> None:
        assert asyncio.run(hand_written(n)) == n

    def plain() -> None:
        assert asyncio.run(flowweaver_run(n, tracker=False)) == n

    def tracked() -> None:
        assert asyncio.run(flowweaver_run(n, tracker=True)) == n

    def queried() -> None:
        assert asyncio.run(flowweaver_run(n, tracker=True, query=True)) == n

    base, ours, with_tracker, then_queried = best_of(repeat, hand, plain, tracked, queried)
    per = 1e6 / n
    note = f"vs hand-written asyncio.Queue pipeline ({n / base:,.0f} items/s)"
    return [
        Row("pipeline", f"3×10 workers, {n:,} items, no tracker", ours * per, base * per,
            "µs/item", 1.176, note),  # 1 / 0.85
        Row("pipeline", f"3×10 workers, {n:,} items, StatusTracker", with_tracker * per,
            base * per, "µs/item", 2.0, note),
        Row("pipeline", f"3×10 workers, {n:,} items, StatusTracker, then get_stats()",
            then_queried * per, base * per, "µs/item", None, note),
    ]  # fmt: skip


_STREAM = f"""
import asyncio, sys
from flowweaver import Pipeline, Stage

async def step(x):
    return x + 1

async def main(n):
    pipeline = Pipeline([Stage(f"S{{i}}", {WORKERS}, [step]) for i in range({STAGES})])
    count = 0
    async for result in pipeline.stream(range(n)):
        count += result.value > 0
    assert count == n, count

asyncio.run(main(int(sys.argv[1])))
"""


def memory(n: int) -> list[Row]:
    floor = peak_rss_mb(_STREAM, 10)
    peak = peak_rss_mb(_STREAM, n)
    return [
        Row("pipeline", f"stream() {n:,} items, peak RSS", peak, RSS_BUDGET_MB, "MB", 1.0,
            f"budget, not a baseline; the interpreter's floor is {floor:.0f} MB"),
    ]  # fmt: skip


def run(quick: bool) -> list[Row]:
    n = 10_000 if quick else 100_000
    return throughput(n, 2 if quick else 5) + memory(100_000 if quick else 1_000_000)
