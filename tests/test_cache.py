"""Result caching: Task(cache=True, cache_ttl=..., cache_key=...)."""

from __future__ import annotations

import functools
import operator
import pickle
from typing import TYPE_CHECKING, Any

import pytest

from flowweaver import (
    ConfigurationError,
    MemoryStore,
    SerializationError,
    SQLiteStore,
    Task,
    Workflow,
    WorkflowFailedError,
)
from flowweaver._store import CACHE_NAMESPACE

from .conftest import FakeClock, Recorder
from .conftest import execute as run

if TYPE_CHECKING:
    from pathlib import Path


def fetch_workflow(calls: Recorder, upstream: Any = 3, **cache: Any) -> Workflow:
    def fetch(n: int) -> list[int]:
        calls("fetch")
        return list(range(n))

    wf = Workflow("fetch")
    wf.add_task(Task(name="n", fn=lambda: upstream))
    wf.add_task(Task(name="fetch", fn=fetch, cache=True, **cache), depends_on=["n"])
    return wf


def test_a_cached_result_is_reused_across_runs(executor: Any) -> None:
    store, calls = MemoryStore(), Recorder()
    first = run(executor, fetch_workflow(calls), store=store, run_id="1")
    second = run(executor, fetch_workflow(calls), store=store, run_id="2")
    assert calls.items == ["fetch"]
    assert first.cached == [] and second.cached == ["fetch"]
    assert second.results == first.results == {"n": 3, "fetch": [0, 1, 2]}
    assert second.attempts("fetch") == 0


def test_a_cache_reads_values_even_where_results_stay_remote(executor: Any) -> None:
    # On Dask, results stay on the cluster as handles; the cache (here without a store, so
    # nothing was committed) and cache_key must see the values.
    calls, seen = Recorder(), Recorder()

    def key(n: int) -> str:
        seen(type(n).__name__)
        return f"n={n}"

    wf = fetch_workflow(calls)
    keyed = fetch_workflow(calls, cache_key=key)
    for workflow in (wf, wf, keyed, keyed):
        assert run(executor, workflow).results == {"n": 3, "fetch": [0, 1, 2]}
    assert calls.items == ["fetch", "fetch"]  # the second run of each workflow hit the cache
    assert seen.items == ["int", "int"]


def test_other_inputs_or_other_code_miss() -> None:
    store, calls = MemoryStore(), Recorder()
    fetch_workflow(calls, upstream=3).execute(store=store)
    fetch_workflow(calls, upstream=4).execute(store=store)  # other input

    def fetch(n: int) -> list[int]:
        calls("fetch")
        return [n]

    wf = Workflow("fetch")  # same name and input, other code
    wf.add_task(Task(name="n", fn=lambda: 3))
    wf.add_task(Task(name="fetch", fn=fetch, cache=True), depends_on=["n"])
    assert wf.execute(store=store).results["fetch"] == [3]
    assert calls.items == ["fetch", "fetch", "fetch"]
    assert len(store.entries(CACHE_NAMESPACE)) == 3


def test_a_cached_result_expires_after_its_ttl(clock: FakeClock) -> None:
    store, calls = MemoryStore(clock=clock.now), Recorder()
    fetch_workflow(calls, cache_ttl=60).execute(store=store)
    clock.t = 59.9
    assert fetch_workflow(calls, cache_ttl=60).execute(store=store).cached == ["fetch"]
    clock.t = 60.0  # expired at exactly its TTL
    assert fetch_workflow(calls, cache_ttl=60).execute(store=store).cached == []
    assert calls.items == ["fetch", "fetch"]
    clock.t = 100.0  # the new result lives 60 s from when it was stored
    assert fetch_workflow(calls, cache_ttl=60).execute(store=store).cached == ["fetch"]


def test_without_a_store_the_cache_lives_on_the_task_object() -> None:
    calls = Recorder()

    def double(n: int) -> int:
        calls("fetch")
        return n * 2

    task = Task(name="fetch", fn=double, cache=True)
    for _ in range(2):
        wf = Workflow("a")
        wf.add_task(Task(name="n", fn=lambda: 21))
        wf.add_task(task, depends_on=["n"])
        assert wf.execute().results["fetch"] == 42
    assert calls.items == ["fetch"]
    assert wf.last_run is not None and wf.last_run.cached == ["fetch"]
    twin = Task(name="fetch", fn=task.fn, cache=True)  # another Task: its own memory
    wf = Workflow("b")
    wf.add_task(Task(name="n", fn=lambda: 21))
    wf.add_task(twin, depends_on=["n"])
    wf.execute()
    assert calls.items == ["fetch", "fetch"]


def test_a_task_with_its_in_memory_cache_pickles() -> None:
    task = Task(name="double", fn=operator.neg, cache=True)
    wf = Workflow("p")
    wf.add_task(Task(name="n", fn=functools.partial(int, "4")))
    wf.add_task(task, depends_on=["n"])
    wf.execute()
    copy = pickle.loads(pickle.dumps(task))
    assert copy._memo is not None
    assert copy._memo.entries(CACHE_NAMESPACE) == task._memo.entries(CACHE_NAMESPACE)  # type: ignore[union-attr]


class Connection:
    """Not serializable: cached tasks downstream of it need a cache_key."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn


def connection_workflow(
    calls: Recorder, rows: Task[..., Any] | None = None, **cache: Any
) -> Workflow:
    def select(conn: Connection) -> list[str]:
        calls("rows")
        return [conn.dsn]

    wf = Workflow("db")
    wf.add_task(Task(name="conn", fn=lambda: Connection("db://prod")))
    rows = rows or Task(name="rows", fn=select, cache=True, **cache)
    wf.add_task(rows, depends_on=["conn"])
    return wf


def test_cache_key_identifies_inputs_that_cannot_be_serialized() -> None:
    # No store: a run store would have to store the Connection itself (and cannot).
    calls = Recorder()

    def select(conn: Connection) -> list[str]:
        calls("rows")
        return [conn.dsn]

    rows = Task(name="rows", fn=select, cache=True, cache_key=lambda conn: conn.dsn)
    outcomes = [connection_workflow(calls, rows).execute() for _ in range(2)]
    assert calls.items == ["rows"]
    assert [o.result("rows") for o in outcomes] == [["db://prod"], ["db://prod"]]
    assert rows._memo is not None
    (key,) = rows._memo.entries(CACHE_NAMESPACE)
    assert key.startswith("rows:")


def test_without_cache_key_unserializable_inputs_fail_the_cached_task() -> None:
    wf = connection_workflow(Recorder())
    with pytest.raises(WorkflowFailedError) as info:
        wf.execute()
    cause = info.value.failures[0].__cause__
    assert isinstance(cause, SerializationError)
    assert str(cause) == (
        "task 'rows': cannot store a value of type 'tests.test_cache.Connection': the result "
        "of 'conn', an input of this cached task, has no stored form to hash for its cache "
        "key (give the task a cache_key=)"
    )


def test_a_cache_key_that_is_not_a_str_fails_the_task() -> None:
    wf = connection_workflow(Recorder(), cache_key=lambda conn: 42)
    with pytest.raises(WorkflowFailedError) as info:
        wf.execute()
    assert str(info.value.failures[0].__cause__) == (
        "task 'rows': cache_key must return a str, got 42"
    )


def test_a_cache_hit_is_committed_to_the_run(tmp_path: Path, clock: FakeClock) -> None:
    with SQLiteStore(tmp_path / "s.db", clock=clock.now) as store:
        calls = Recorder()
        fetch_workflow(calls, cache_ttl=10).execute(store=store, run_id="warm")
        hit = fetch_workflow(calls, cache_ttl=10).execute(store=store, run_id="r")
        clock.t = 1000.0  # the cache entry expired; the run's own record did not
        resumed = fetch_workflow(calls, cache_ttl=10).execute(store=store, run_id="r")
    assert hit.cached == ["fetch"]
    assert resumed.restored == ["n", "fetch"] and resumed.cached == []
    assert calls.items == ["fetch"]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"cache_ttl": 5}, "task 't': cache_ttl=5 needs cache=True"),
        ({"cache_key": str}, "task 't': cache_key=<class 'str'> needs cache=True"),
        ({"cache": "yes"}, "task 't': cache must be a bool, got 'yes'"),
        ({"cache": True, "cache_ttl": 0}, "task 't': cache_ttl must be a finite number > 0, got 0"),
        ({"cache": True, "cache_key": "k"}, "task 't': cache_key must be callable, got 'k'"),
    ],
)
def test_cache_fields_are_validated(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        Task(name="t", fn=lambda: 1, **fields)
    assert str(info.value) == message
