"""Dask benchmark: per-task overhead of a workflow on a local cluster beside raw ``client.submit``.

Baseline, measured in the same run on the same cluster: ``client.submit(fn, *upstream_futures,
pure=False)`` for every task in dependency order (Dask resolves the futures on the workers),
then ``client.gather`` of the results nothing depends on — what the workflow's run brings back
too. The difference is what flowweaver adds: the engine decides what runs next and begins each
task when its dependencies are done (the default executor: no ``lookahead=``), and the calls
that become ready together go as one graph.

For the random DAG a second baseline shows what deciding in this process costs without
look-ahead or batching: a dozen-line client-side scheduler (``distributed.as_completed``, a
dependency count per task, ``client.submit`` of a task when its count reaches zero), with no
retries, callbacks or status.

Two clusters: workers as threads of this process (``processes=False``) and as worker
processes. Skipped, with a message, when ``distributed`` is not installed.
"""

from __future__ import annotations

import gc
import importlib.util
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from flowweaver import DaskExecutor, Task, Workflow
from flowweaver._dask import SEND_INTERVAL

from ._harness import Row
from .engine import shape

if TYPE_CHECKING:
    from distributed import Client

TARGET = 1.2


def noop(*upstream: object) -> None:
    return None


def workflow(deps: list[list[int]]) -> Workflow:
    wf = Workflow("bench")
    for i, ds in enumerate(deps):
        wf.add_task(Task(name=f"t{i}", fn=noop), depends_on=[f"t{d}" for d in ds])
    return wf


def raw_submit(client: Client, deps: list[list[int]]) -> None:
    futures: list[Any] = []
    needed = [False] * len(deps)
    for ds in deps:
        futures.append(client.submit(noop, *[futures[d] for d in ds], pure=False))
        for d in ds:
            needed[d] = True
    client.gather([f for f, used in zip(futures, needed, strict=True) if not used])


def reactive_submit(client: Client, deps: list[list[int]]) -> None:
    from distributed import as_completed

    children: list[list[int]] = [[] for _ in deps]
    waiting = [len(ds) for ds in deps]
    for i, ds in enumerate(deps):
        for d in ds:
            children[d].append(i)
    futures: list[Any] = [None] * len(deps)
    index: dict[object, int] = {}

    def submit(i: int) -> Any:
        future = futures[i] = client.submit(noop, *[futures[d] for d in deps[i]], pure=False)
        index[future.key] = i
        return future

    done = as_completed([submit(i) for i, ds in enumerate(deps) if not ds], loop=client.loop)
    outputs = []
    for future in done:
        i = index[future.key]
        if not children[i]:
            outputs.append(future)
        for c in children[i]:
            waiting[c] -= 1
            if not waiting[c]:
                done.add(submit(c))
    client.gather(outputs)


#: What a contender needs made before its clock starts, and what it runs on it.
Contender = tuple[Callable[[], Any], Callable[[Any], object]]


def settled_best_of(repeat: int, client: Client, contenders: list[Contender]) -> list[float]:
    """Best wall time of each contender, run interleaved ``repeat`` times on a settled cluster.

    Each run starts after the previous one's results were dropped and the scheduler has
    handled their release (a round trip after ``gc.collect()``), outside the clock: otherwise
    a run pays for releasing the 1,000 keys of the run before it, which made the figures
    depend on who ran first.
    """
    best = [float("inf")] * len(contenders)
    for _ in range(repeat):
        for k, (prepare, call) in enumerate(contenders):
            given = prepare()
            gc.collect()
            client.submit(noop, pure=False).result()
            start = time.perf_counter()
            outcome = call(given)
            best[k] = min(best[k], time.perf_counter() - start)
            del given, outcome  # a run's results, a workflow and its tasks: released next
    return best


def run(quick: bool) -> list[Row]:
    if importlib.util.find_spec("distributed") is None:
        print(
            "benchmarks.dask skipped: distributed is not installed (pip install -e '.[dask]')",
            file=sys.stderr,
        )
        return []
    from distributed import Client, LocalCluster

    n = 100 if quick else 1_000
    repeat = 2 if quick else 5
    rows: list[Row] = []
    for label, processes in (("threads", False), ("processes", True)):
        with (
            LocalCluster(
                processes=processes, n_workers=2, threads_per_worker=2, dashboard_address=":0"
            ) as cluster,
            Client(cluster, set_as_default=False) as client,
        ):
            # The interval an executor sets on a client it starts itself; set on this one
            # too, so the raw baseline runs on the same client.
            executor = DaskExecutor(client, send_interval=SEND_INTERVAL)
            client.submit(noop, pure=False).result()  # warm the workers up
            for kind in ("independent", "chain", "diamond", "random"):
                deps = shape(kind, n)
                contenders: list[Contender] = [
                    (lambda: workflow(deps), executor.execute),
                    (lambda: client, lambda c: raw_submit(c, deps)),
                ]
                if kind == "random":
                    contenders.append((lambda: client, lambda c: reactive_submit(c, deps)))
                ours, base, *reactive = settled_best_of(repeat, client, contenders)
                rows.append(Row("dask", f"{label}, {kind}", ours / n * 1e6, base / n * 1e6,
                                "µs/task", TARGET, "vs raw client.submit"))  # fmt: skip
                if reactive:
                    note = "vs a minimal client-side scheduler (as_completed)"
                    rows.append(Row("dask", f"{label}, {kind}", ours / n * 1e6,
                                    reactive[0] / n * 1e6, "µs/task", None, note))  # fmt: skip
    return rows
