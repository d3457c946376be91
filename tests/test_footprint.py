"""What a big workflow costs to hold: its tasks, its graph and a finished run (issue 18)."""

from __future__ import annotations

import gc
import random
import subprocess
import sys
import tracemalloc
from collections.abc import Callable

from flowweaver import Task, Workflow


def test_a_big_workflow_and_its_run_hold_a_few_hundred_bytes_a_task() -> None:
    # 5,000 tasks with 3 random earlier dependencies each, every one its own closure: what the
    # workflow and one finished run hold beyond the functions and names (issue 18; it was
    # ~830 bytes a task here, ~450 now; the benchmark measures RSS at 100,000 and 1,000,000).
    n = 5_000
    rng = random.Random(1)
    names = [f"t{i}" for i in range(n)]
    deps = [[names[d] for d in sorted(rng.sample(range(i), min(i, 3)))] for i in range(n)]

    def make(k: int) -> Callable[..., int]:
        def fn(*inputs: object) -> int:
            return k

        return fn

    fns = [make(k) for k in range(n)]
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        wf = Workflow("big")
        for name, upstream, fn in zip(names, deps, fns, strict=True):
            wf.add_task(Task(name=name, fn=fn), depends_on=upstream)
        run = wf.execute()
        gc.collect()
        held = (tracemalloc.get_traced_memory()[0] - before) / n
    finally:
        tracemalloc.stop()
    assert run.ok and run.result("t4999") == 4999
    assert held < 600, held


def test_dependants_follow_tasks_added_after_a_run() -> None:
    wf = Workflow("grow")
    wf.add_task(Task(name="a", fn=lambda: 1))
    wf.add_task(Task(name="b", fn=lambda a: a + 1), depends_on=["a"])
    assert wf.execute().result("b") == 2 and wf.get_dependents("a") == ["b"]
    wf.add_task(Task(name="c", fn=lambda a, b: a + b), depends_on=["a", "b"])
    assert wf.get_dependents("a") == ["b", "c"] and wf.get_dependents("b") == ["c"]
    assert wf.execute().result("c") == 3
    assert [[t.name for t in layer] for layer in wf.get_execution_plan()] == [["a"], ["b"], ["c"]]


_RUN_PEAK = """
import gc, tracemalloc
from flowweaver import Task, Workflow

n = 5_000
wf = Workflow("chain")
wf.add_task(Task(name="t0", fn=lambda: 0))
for i in range(1, n):
    wf.add_task(Task(name=f"t{i}", fn=lambda prev: prev + 1), depends_on=[f"t{i - 1}"])
assert wf.execute().ok  # its dependants built, imports done: the next run is measured
gc.collect()
tracemalloc.start()
run = wf.execute()
kept, peak = tracemalloc.get_traced_memory()
assert run.result(f"t{n - 1}") == n - 1
print((peak - kept) / n)
"""


def test_a_run_copies_no_per_task_graph_list_beyond_its_own_state() -> None:
    # While it runs, a run may hold its own state (pending counts, the tasks drivers index)
    # but not a second copy of the workflow's dependencies, dependants and argument specs:
    # memory freed after a big run stays with the process (allocator high-water), so every
    # transient list of 8 bytes a task is paid for good. It peaked ~41 bytes a task above
    # what the run keeps; ~17 now. A fresh interpreter: what earlier tests configured
    # (logging levels, observers) would be counted too.
    out = subprocess.run(
        [sys.executable, "-c", _RUN_PEAK], capture_output=True, text=True, timeout=60, check=True
    )
    transient = float(out.stdout)
    assert transient < 28, transient


def test_a_subflow_leaves_the_workflows_graph_as_it_was() -> None:
    # A subflow's tasks join the run's lists; the workflow's own (which a run without a
    # subflow reads directly) keep only its tasks, so the next run and the graph are unchanged.
    def child() -> Workflow:
        inner = Workflow("inner")
        inner.add_task(Task(name="x", fn=lambda: 2))
        inner.add_task(Task(name="y", fn=lambda x: x * 10), depends_on=["x"])
        return inner

    wf = Workflow("outer")
    wf.add_task(Task(name="a", fn=lambda: 1))
    wf.add_task(Task(name="sub", fn=child), depends_on=["a"])
    wf.add_task(Task(name="b", fn=lambda a: a + 1), depends_on=["a"])
    for _ in range(2):
        run = wf.execute()
        assert run.ok and run.result("b") == 2 and run.result("sub/y") == 20
        assert len(wf._deps) == len(wf._specs) == len(wf._successors()) == 3
        assert wf.get_dependents("a") == ["sub", "b"] and wf.get_dependencies("sub") == ["a"]
