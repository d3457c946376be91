"""Graph benchmarks (issue 18, item 1): building a big workflow, its memory, and releasing
intermediate results.

The graph: ``n`` tasks, each with 3 random earlier dependencies (the first three have fewer),
every task with its own function object that receives its upstream results (``def fn(*inputs)``
closures from one factory, as generated workflows have them).

* **Build time** — ``Task(...)`` + ``Workflow.add_task`` for every task, then
  ``get_execution_plan()``, against ``graphlib.TopologicalSorter.add`` for every task, then
  ``list(static_order())``, given the same node objects (the task names) and the same
  dependency lists. Both sides get the names, dependency lists and functions ready-made.
* **Memory** — in a fresh interpreter per figure: the resident-set growth (``VmRSS`` after
  minus before, after a ``gc.collect()``) of building the workflow *and* running it once on
  the sequential executor, the run still held, per task; the same for graphlib's sorter plus
  its static order. Created before the first reading, so shared by both sides and counted by
  neither: the names, the dependency lists, the functions. Peak (``VmHWM``) growth in the note.
* **keep_results** — peak RSS of a chain of tasks that each turn a large bytes value into the
  next one, run keeping every result against ``keep_results=[last]``.
"""

from __future__ import annotations

import graphlib
import random
import subprocess
import sys
from typing import TYPE_CHECKING

from flowweaver import Task, Workflow

from ._harness import Row, best_of, peak_rss_mb

if TYPE_CHECKING:
    from collections.abc import Callable

BYTES_BUDGET = 450.0


def graph(n: int) -> tuple[list[str], list[list[str]], list[Callable[..., object]]]:
    """Names, dependency names and functions of the benchmark graph."""
    rng = random.Random(n)
    names = [f"t{i}" for i in range(n)]
    deps = [[names[d] for d in sorted(rng.sample(range(i), min(i, 3)))] for i in range(n)]

    def make(k: int) -> Callable[..., object]:
        def fn(*inputs: object) -> int:
            return k

        return fn

    return names, deps, [make(k) for k in range(n)]


def build_ours(
    names: list[str], deps: list[list[str]], fns: list[Callable[..., object]]
) -> Workflow:
    wf = Workflow("graph")
    for name, upstream, fn in zip(names, deps, fns, strict=True):
        wf.add_task(Task(name=name, fn=fn), depends_on=upstream)
    wf.get_execution_plan()
    return wf


def build_graphlib(
    names: list[str], deps: list[list[str]]
) -> tuple[graphlib.TopologicalSorter[str], list[str]]:
    sorter: graphlib.TopologicalSorter[str] = graphlib.TopologicalSorter()
    for name, upstream in zip(names, deps, strict=True):
        sorter.add(name, *upstream)
    return sorter, list(sorter.static_order())


def build_time(sizes: list[int], repeat: int) -> list[Row]:
    rows: list[Row] = []
    for n in sizes:
        names, deps, fns = graph(n)
        ours, base = best_of(
            max(1, repeat // (1 + n // 200_000)),
            lambda: build_ours(names, deps, fns),
            lambda: build_graphlib(names, deps),
        )
        rows.append(Row("graph", f"build + plan, {n:,} tasks, 3 random deps each",
                        ours / n * 1e6, base / n * 1e6, "µs/task", 1.3,
                        "vs graphlib add + static_order, same nodes and edges"))  # fmt: skip
    return rows


_MEMORY = """
import gc, sys
from benchmarks.graph import build_graphlib, build_ours, graph

def reading(field):
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith(field))

side, n = sys.argv[1], int(sys.argv[2])
names, deps, fns = graph(n)
gc.collect()
rss, hwm = reading("VmRSS:"), reading("VmHWM:")
if side == "ours":
    wf = build_ours(names, deps, fns)
    run = wf.execute("sequential")
    assert run.ok
else:
    sorter, order = build_graphlib(names, deps)
gc.collect()
print((reading("VmRSS:") - rss) / n, (reading("VmHWM:") - max(hwm, rss)) / n)
"""


def _bytes_per_task(side: str, n: int) -> tuple[float, float]:
    out = subprocess.run(
        [sys.executable, "-c", _MEMORY, side, str(n)], capture_output=True, text=True, check=True
    ).stdout.split()
    return float(out[0]), float(out[1])


def memory(sizes: list[int]) -> list[Row]:
    rows: list[Row] = []
    for n in sizes:
        ours, ours_peak = _bytes_per_task("ours", n)
        base, base_peak = _bytes_per_task("graphlib", n)
        note = (
            f"budget, not a baseline; graphlib sorter + order: {base:.0f} B/task; "
            f"peak (VmHWM) growth {ours_peak:.0f} vs graphlib {base_peak:.0f}"
        )
        case = f"workflow + one finished run, {n:,} tasks, RSS growth"
        rows.append(Row("graph", case, ours, BYTES_BUDGET, "B/task", 1.0, note))
    return rows


_CHAIN = """
import sys
from flowweaver import Task, Workflow

size, steps = 20_000_000, 8
wf = Workflow("frames")
# b"x" * n writes every page (bytes(n) would map zero pages that RSS never counts).
wf.add_task(Task(name="s0", fn=lambda: b"x" * size))
for k in range(1, steps):
    wf.add_task(Task(name=f"s{k}", fn=lambda prev: b"y" * len(prev)), depends_on=[f"s{k - 1}"])
keep = None if sys.argv[1] == "0" else [f"s{steps - 1}"]
run = wf.execute("sequential", keep_results=keep)
assert len(run.result(f"s{steps - 1}")) == size
"""


def released(quick: bool) -> list[Row]:
    kept = peak_rss_mb(_CHAIN, 0)
    ours = peak_rss_mb(_CHAIN, 1)
    return [
        Row("graph", "chain of 8 tasks passing 20 MB values on, peak RSS, keep_results=[last]",
            ours, kept, "MB", 0.5, "vs the same run keeping every result"),
    ]  # fmt: skip


def run(quick: bool) -> list[Row]:
    sizes = [10_000] if quick else [100_000, 1_000_000]
    return build_time(sizes, 2 if quick else 5) + memory(sizes) + released(quick)
