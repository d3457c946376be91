"""Random graphs written with >> and <<: the same results on every executor, processes included.

Each node computes ``combine(i, *inputs)``, which depends on the order of its inputs, so a
wrong fan-in order shows up as a wrong result; some nodes carry ``when=is_even`` and may be
skipped (``None``). The expected values are computed by hand from the declared graph.
"""

from __future__ import annotations

import concurrent.futures as cf
import functools
import random
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowweaver import (
    DAG,
    AsyncExecutor,
    PoolExecutor,
    ProcessExecutor,
    SequentialExecutor,
    Task,
    ThreadedExecutor,
)

from . import authoring_tasks as at


@dataclass(frozen=True)
class Graph:
    ups: list[list[int]]  # ups[i]: earlier nodes, in the order their edges are declared
    guarded: list[bool]  # node has when=is_even
    forms: list[str]  # how node i's incoming edges are written
    order: list[int]  # the order in which the nodes' statements are written


@st.composite
def graphs(draw: st.DrawFn) -> Graph:
    n = draw(st.integers(1, 14))
    rng = random.Random(draw(st.integers(0, 2**32 - 1)))
    ups = [rng.sample(range(i), min(i, rng.randint(0, 3))) for i in range(n)]
    guarded = [rng.random() < 0.3 for _ in range(n)]
    forms = [rng.choice(["list >>", "each >>", "<< list", "each <<"]) for _ in range(n)]
    order = list(range(n))
    rng.shuffle(order)
    return Graph(ups, guarded, forms, order)


def expected(graph: Graph) -> dict[str, int | None]:
    values: list[int | None] = []
    for i, ups in enumerate(graph.ups):
        inputs = [values[u] for u in ups]
        skip = graph.guarded[i] and not at.is_even(*inputs)
        values.append(None if skip else at.combine(i, *inputs))
    return {f"n{i}": v for i, v in enumerate(values)}


def build(graph: Graph) -> DAG:
    tasks = [
        Task(name=f"n{i}", fn=functools.partial(at.combine, i),
             when=at.is_even if graph.guarded[i] else None)
        for i in range(len(graph.ups))
    ]  # fmt: skip
    with DAG("random") as dag:
        for i in graph.order:
            ups, node = [tasks[u] for u in graph.ups[i]], tasks[i]
            if not ups:
                continue
            form = graph.forms[i]
            if form == "list >>":
                ups >> node
            elif form == "each >>":
                for up in ups:
                    up >> node
            elif form == "<< list":
                node << ups
            else:
                for up in ups:
                    node << up
    return dag.add(*tasks)  # nodes in no edge join explicitly


@pytest.fixture(scope="module")
def executors(process_executor: ProcessExecutor) -> Any:
    with ThreadedExecutor(max_workers=4) as threaded, cf.ThreadPoolExecutor(3) as pool:
        yield {
            "sequential": SequentialExecutor(),
            "threaded": threaded,
            "async": AsyncExecutor(max_workers=8),
            "pool": PoolExecutor(pool),
            "process": process_executor,
        }


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graph=graphs())
def test_random_graphs_give_the_same_results_on_every_executor(
    graph: Graph, executors: dict[str, Any]
) -> None:
    dag = build(graph)
    want = expected(graph)
    for name, executor in executors.items():
        assert dag.run(executor=executor) == want, name
