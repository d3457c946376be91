"""Engine benchmarks: per-task overhead, build+plan time, makespan against the critical path.

Baselines, each measured in the same run:

* Sequential — a bare ``graphlib.TopologicalSorter`` loop calling the same functions;
* Threaded — a graphlib loop driving a ``ThreadPoolExecutor`` of the same size with
  ``concurrent.futures.wait(FIRST_COMPLETED)``;
* Async — ``asyncio.gather`` of the same coroutines (no dependencies at all: the cheapest way
  asyncio can run them);
* makespan — the workflow's critical path (the longest chain of task durations);
* fan-in — the same tasks and edges given to ``Workflow.add_task`` directly.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import graphlib
import random
import time
from typing import TYPE_CHECKING

from flowweaver import DAG, AsyncExecutor, SequentialExecutor, Task, ThreadedExecutor, Workflow
from flowweaver._drivers import drive_pool
from flowweaver._lanes import WorkerThreads

from ._harness import Row, best_of

if TYPE_CHECKING:
    from collections.abc import Callable

    from flowweaver._engine import Engine

WORKERS = 4


def noop() -> None:
    return None


async def anoop() -> None:
    return None


def shape(kind: str, n: int, seed: int = 7) -> list[list[int]]:
    """Dependencies of n tasks: deps[i] only names tasks before i."""
    if kind == "independent":
        return [[] for _ in range(n)]
    if kind == "chain":
        return [[i - 1] if i else [] for i in range(n)]
    if kind == "diamond":  # a chain of diamonds: src -> (left, right) -> join -> next src
        deps: list[list[int]] = []
        for i in range(n):
            role = i % 4
            if role == 0:
                deps.append([i - 1] if i else [])
            elif role in (1, 2):
                deps.append([i - role])
            else:
                deps.append([i - 2, i - 1])
        return deps
    rng = random.Random(seed)  # random: up to three random earlier dependencies
    return [sorted(rng.sample(range(i), min(i, rng.randint(0, 3)))) for i in range(n)]


def workflow(deps: list[list[int]], fn: Callable[[], object]) -> Workflow:
    wf = Workflow("bench")
    for i, ds in enumerate(deps):
        wf.add_task(Task(name=f"t{i}", fn=fn), depends_on=[f"t{d}" for d in ds])
    return wf


def graphlib_inline(deps: list[list[int]]) -> None:
    sorter = graphlib.TopologicalSorter(dict(enumerate(deps)))
    sorter.prepare()
    while sorter.is_active():
        for node in sorter.get_ready():
            noop()
            sorter.done(node)


def graphlib_threads(deps: list[list[int]]) -> None:
    sorter = graphlib.TopologicalSorter(dict(enumerate(deps)))
    sorter.prepare()
    with cf.ThreadPoolExecutor(WORKERS) as pool:
        running: dict[cf.Future[None], int] = {}
        while sorter.is_active():
            for node in sorter.get_ready():
                running[pool.submit(noop)] = node
            done, _ = cf.wait(running, return_when=cf.FIRST_COMPLETED)
            for future in done:
                sorter.done(running.pop(future))


def gather(n: int) -> None:
    async def main() -> None:
        await asyncio.gather(*(anoop() for _ in range(n)))

    asyncio.run(main())


def overhead(n: int, repeat: int) -> list[Row]:
    rows: list[Row] = []
    for kind in ("independent", "chain", "diamond", "random"):
        deps = shape(kind, n)
        sync_wf, async_wf = workflow(deps, noop), workflow(deps, anoop)
        seq, base = best_of(
            repeat,
            lambda: SequentialExecutor().execute(sync_wf),
            lambda: graphlib_inline(deps),
        )
        rows.append(Row("overhead", f"sequential, {kind}", seq / n * 1e6, base / n * 1e6,
                        "µs/task", 2.0, "vs graphlib loop"))  # fmt: skip
        thr, base = best_of(
            repeat,
            lambda: ThreadedExecutor(WORKERS).execute(sync_wf),
            lambda: graphlib_threads(deps),
        )
        rows.append(Row("overhead", f"threaded, {kind}", thr / n * 1e6, base / n * 1e6,
                        "µs/task", 1.0, "vs graphlib + thread pool"))  # fmt: skip
        asy, base = best_of(repeat, lambda: AsyncExecutor().execute(async_wf), lambda: gather(n))
        rows.append(Row("overhead", f"async, {kind}", asy / n * 1e6, base / n * 1e6,
                        "µs/task", 1.5, "vs asyncio.gather"))  # fmt: skip
    return rows


class PoolDriven(ThreadedExecutor):
    """ThreadedExecutor as it ran every workflow before the hand-off driver: through the pool
    driver and its worker threads, a driver<->worker round trip per task (it still runs the
    runs with observers)."""

    def _drive(self, engine: Engine) -> None:
        lane = WorkerThreads(self.max_workers, "flowweaver-run")
        try:
            drive_pool(engine, lane, self.max_workers, queue_depth=max(64, 2 * self.max_workers))
        finally:
            lane.close(wait=True)


def handoff(n: int, repeat: int) -> list[Row]:
    """The threaded executor's hand-off driver against the pool driver, in the same run."""
    rows: list[Row] = []
    for kind in ("independent", "chain", "diamond", "random"):
        wf = workflow(shape(kind, n), noop)
        ours, base = best_of(
            repeat,
            lambda: ThreadedExecutor(WORKERS).execute(wf),
            lambda: PoolDriven(WORKERS).execute(wf),
        )
        note = "vs the pool driver" + (" (target ≤ 10 µs a task)" if kind == "chain" else "")
        rows.append(Row("hand-off", f"threaded, {kind}", ours / n * 1e6, base / n * 1e6,
                        "µs/task", 1.0, note))  # fmt: skip
    return rows


def build_and_plan(sizes: list[int], repeat: int) -> list[Row]:
    """Build a workflow of n tasks with three dependencies each, then plan it.

    Two graphs: "random" picks dependencies anywhere before the task (the worst case for the
    CPU cache: every lookup lands somewhere new), "local" among the previous 100 tasks. The
    algorithm is O(tasks + edges) either way; the gap between them is memory, not work.
    """
    rows: list[Row] = []
    for kind in ("random", "local"):
        first: float | None = None
        for n in sizes:
            rng = random.Random(n)
            deps = [
                (
                    rng.sample(range(i), 3)
                    if kind == "random"
                    else rng.sample(range(max(0, i - 100), i), 3)
                )
                if i >= 3
                else []
                for i in range(n)
            ]
            names = [f"t{i}" for i in range(n)]
            dep_names = [[names[d] for d in ds] for ds in deps]

            def build() -> None:
                wf = Workflow("build")
                for i in range(n):
                    wf.add_task(Task(name=names[i], fn=noop), depends_on=dep_names[i])
                wf.get_execution_plan()

            (seconds,) = best_of(max(1, repeat // (1 + n // 100_000)), build)
            per_task = seconds / n * 1e6
            first = first or per_task
            edges = sum(map(len, deps))
            rows.append(Row("build+plan", f"{kind}, {n:,} tasks, {edges:,} edges", seconds, None,
                            "s", note=f"{per_task:.2f} µs/task ({per_task / first:.2f}× the "
                                      f"{sizes[0]:,}-task rate)"))  # fmt: skip
    return rows


def fan_in(sizes: list[int], repeat: int) -> list[Row]:
    """``[many] >> one`` in a ``with DAG(...)`` block, compiled, against the same tasks and
    edges given to ``Workflow.add_task`` directly (in-run baseline). Linear both ways: the
    ratio stays flat as n grows (it was quadratic: 12 s for 50,000 upstreams)."""
    rows: list[Row] = []
    for n in sizes:
        ups = [Task(name=f"u{i}", fn=noop) for i in range(n)]
        sink = Task(name="sink", fn=lambda *inputs: len(inputs))

        def operator() -> None:
            with DAG("fan-in") as dag:
                ups >> sink
            dag.to_workflow()

        def direct() -> None:
            wf = Workflow("fan-in")
            for up in ups:
                wf.add_task(up, depends_on=())
            wf.add_task(sink, depends_on=[up.name for up in ups])

        ours, base = best_of(repeat, operator, direct)
        rows.append(Row("fan-in", f"[{n:,} tasks] >> one task", ours, base, "s",
                        note=f"{ours / n * 1e6:.2f} µs per upstream"))  # fmt: skip
    return rows


def makespan(repeat: int) -> list[Row]:
    # Two chains with uneven durations. Layer by layer, each layer waits for its slowest
    # task: 0.30 + 0.30 + 0.30 = 0.90 s. Task by task, the longer chain decides: 0.60 s.
    chain_a = [0.05, 0.30, 0.05, 0.20]
    chain_b = [0.30, 0.05, 0.25, 0.00]
    critical = max(sum(chain_a), sum(chain_b))

    def build(asynchronous: bool) -> Workflow:
        wf = Workflow("two chains")
        for label, chain in (("a", chain_a), ("b", chain_b)):
            for k, seconds in enumerate(chain):
                if asynchronous:

                    async def fn(seconds: float = seconds) -> None:
                        await asyncio.sleep(seconds)

                else:

                    def fn(seconds: float = seconds) -> None:  # type: ignore[misc]
                        time.sleep(seconds)

                wf.add_task(Task(name=f"{label}{k}", fn=fn),
                            depends_on=[f"{label}{k - 1}"] if k else [])  # fmt: skip
        return wf

    sync_wf, async_wf = build(False), build(True)
    threaded, asynchronous = best_of(
        repeat,
        lambda: ThreadedExecutor(WORKERS).execute(sync_wf),
        lambda: AsyncExecutor().execute(async_wf),
    )
    return [
        Row("makespan", "threaded, two uneven chains", threaded, critical, "s", 1.05,
            "vs critical path (layer barriers: 0.90 s)"),
        Row("makespan", "async, two uneven chains", asynchronous, critical, "s", 1.05,
            "vs critical path (layer barriers: 0.90 s)"),
    ]  # fmt: skip


def run(quick: bool) -> list[Row]:
    n = 2_000 if quick else 10_000
    repeat = 2 if quick else 5
    sizes = [10_000, 100_000] if quick else [10_000, 100_000, 1_000_000]
    wide = [10_000] if quick else [10_000, 50_000]
    return (
        overhead(n, repeat)
        + handoff(n, repeat)
        + build_and_plan(sizes, repeat)
        + fan_in(wide, repeat)
        + makespan(2 if quick else 3)
    )
