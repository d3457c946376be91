"""Mapped-task benchmarks: per-element overhead, threaded mapping, a streaming chain's memory.

Baselines, each measured in the same run:

* per-element overhead — the same executor running as many *static* no-op tasks (independent,
  built before the clock starts) as the mapped task has elements: an element should cost about
  what a task costs;
* threaded mapping — ``ThreadPoolExecutor.map`` of the same function over the same list, with
  as many threads;
* streaming memory — a budget, not a baseline: a generator of 1,000,000 elements through three
  mapped tasks that keep no results, peak RSS read as ``VmHWM`` in a fresh interpreter.
"""

from __future__ import annotations

import concurrent.futures as cf
from typing import TYPE_CHECKING, Any

from flowweaver import AsyncExecutor, SequentialExecutor, Task, ThreadedExecutor, Workflow

from ._harness import Row, best_of, peak_rss_mb

if TYPE_CHECKING:
    from collections.abc import Callable


WORKERS = 4
RSS_BUDGET_MB = 100.0


def noop() -> None:
    return None


def ident(x: int) -> int:
    return x


async def aident(x: int) -> int:
    return x


def static(n: int, fn: object) -> Workflow:
    wf = Workflow("static")
    for i in range(n):
        wf.add_task(Task(name=f"t{i}", fn=fn))  # type: ignore[arg-type]
    return wf


def mapped(n: int, fn: object) -> Workflow:
    items = list(range(n))
    wf = Workflow("mapped")
    wf.add_task(Task(name="items", fn=lambda: items))
    wf.add_task(Task(name="each", fn=fn, map_over="items"), depends_on=["items"])  # type: ignore[arg-type]
    return wf


async def anoop() -> None:
    return None


def overhead(n: int, repeat: int) -> list[Row]:
    rows: list[Row] = []
    cases: list[tuple[str, Callable[[], Any], object, object]] = [
        ("sequential", SequentialExecutor, noop, ident),
        ("threaded", lambda: ThreadedExecutor(WORKERS), noop, ident),
        ("async", AsyncExecutor, anoop, aident),
    ]
    for label, make, task_fn, element_fn in cases:
        tasks, elements = static(n, task_fn), mapped(n, element_fn)
        ours, base = best_of(
            repeat,
            lambda: make().execute(elements),
            lambda: make().execute(tasks),
        )
        rows.append(Row("mapping", f"{label}, {n:,} elements", ours / n * 1e6, base / n * 1e6,
                        "µs/element", 1.5, f"vs {n:,} static tasks"))  # fmt: skip
    return rows


def threaded_map(n: int, repeat: int) -> list[Row]:
    wf = mapped(n, ident)
    items = list(range(n))

    def pool_map() -> None:
        with cf.ThreadPoolExecutor(WORKERS) as pool:
            list(pool.map(ident, items))

    def ours() -> None:
        with ThreadedExecutor(WORKERS) as threads:
            threads.execute(wf)

    mine, base = best_of(repeat, ours, pool_map)
    return [
        Row("mapping", f"threaded map of {n:,} elements", mine / n * 1e6, base / n * 1e6,
            "µs/element", 1.2, "vs ThreadPoolExecutor.map"),
    ]  # fmt: skip


_CHAIN = """
import sys
from flowweaver import DAG, SequentialExecutor, task

@task
def numbers():
    yield from range(int(sys.argv[1]))

@task
def a(n):
    return n + 1

@task
def b(n):
    return n * 2

@task
def c(n):
    return n - 1

with DAG("chain") as dag:
    numbers >> a.map(keep_results=False) >> b.map(keep_results=False) >> c.map(keep_results=False)
results = dag.run(SequentialExecutor())
assert results["c"] == int(sys.argv[1]), results
"""


def memory(n: int) -> list[Row]:
    floor = peak_rss_mb(_CHAIN, 10)
    peak = peak_rss_mb(_CHAIN, n)
    return [
        Row("mapping", f"generator >> 3 mapped tasks, {n:,} elements, peak RSS", peak,
            RSS_BUDGET_MB, "MB", 1.0,
            f"budget, not a baseline; results not kept; the interpreter's floor is {floor:.0f} MB"),
    ]  # fmt: skip


def run(quick: bool) -> list[Row]:
    n = 10_000 if quick else 100_000
    repeat = 2 if quick else 5
    return overhead(n, repeat) + threaded_map(n, repeat) + memory(100_000 if quick else 1_000_000)
