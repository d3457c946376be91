"""Pipeline checkpointing: with a store, items that completed the pipeline are not processed
again on a rerun, and their results come back in order with the new ones."""

from __future__ import annotations

import asyncio
import logging
import pickle
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowweaver import (
    ConfigurationError,
    ItemCancelledError,
    ItemMismatchError,
    JSONFileStore,
    MemoryStore,
    Pipeline,
    PipelineError,
    PipelineResult,
    SerializationError,
    SQLiteStore,
    Stage,
    StateAccessError,
    StateEntry,
    StateLockedError,
    StateMismatchError,
    StatusTracker,
)
from flowweaver._pipeline_state import stages_fingerprint
from flowweaver._store import pipeline_namespace, run_namespace

from .conftest import Recorder, run


async def collect(stream: Any) -> list[PipelineResult]:
    return [result async for result in stream]


class Opaque:
    """A value with no stored form."""


def build(
    calls: Recorder,
    bad: set[Any] | None = None,
    executor: Any = None,
    name: str | None = None,
    workers: int = 3,
) -> Pipeline:
    """Two stages (async, then sync), recording each call; items in ``bad`` fail in the first.

    ``bad`` and ``calls`` are mutable captured values: they count by type in the stage
    fingerprint, so emptying ``bad`` between runs is not a code change.
    """
    failing = set() if bad is None else bad

    async def fetch(x: Any) -> Any:
        calls("fetch", x)
        if x in failing:
            raise ValueError(f"bad {x!r}")
        return {"n": x, "fetched": True}

    def save(record: dict[str, Any]) -> tuple[Any, str]:
        calls("save", record["n"])
        return (record["n"], "saved")

    stages = [
        Stage("Fetch", workers, [fetch], task_attempts=1),
        Stage("Save", workers, [save], task_attempts=1),
    ]
    return Pipeline(stages, executor=executor, name=name)


def expected(items: list[Any]) -> list[tuple[Any, Any]]:
    return [(i, (x, "saved")) for i, x in enumerate(items)]


# -- the rule --------------------------------------------------------------------------------


def test_a_rerun_processes_only_the_items_that_did_not_complete(
    executor: Any, tmp_path: Path
) -> None:
    calls, bad = Recorder(), {2, 5}
    items = list(range(8))
    with SQLiteStore(tmp_path / "state.db") as store:
        first = run(build(calls, bad, executor).run(items, store=store, run_id="r1"))
        assert [r.id for r in first] == [0, 1, 3, 4, 6, 7]
        assert not any(r.restored for r in first)
        committed = set(store.entries(pipeline_namespace("Fetch > Save", "r1")))
        assert committed == {"0", "1", "3", "4", "6", "7"}  # failed items were not committed

        calls.items.clear()
        bad.clear()
        pipeline = build(calls, bad, executor)
        second = run(pipeline.run(items, store=store, run_id="r1"))
    assert Counter(calls.items) == Counter([("fetch", 2), ("fetch", 5), ("save", 2), ("save", 5)])
    assert [(r.id, r.value) for r in second] == expected(items)  # the types came back too
    assert [r.id for r in second if not r.restored] == [2, 5]
    assert [r.sequence_id for r in second] == list(range(8))
    stats = pipeline.get_stats()
    assert (stats.items_processed, stats.items_restored, stats.items_failed) == (8, 6, 0)
    assert sum(s.completed_items for s in stats.stage_stats.values()) == 4  # 2 items x 2 stages


def test_a_finished_run_processes_nothing_again() -> None:
    calls, store = Recorder(), MemoryStore()
    run(build(calls).run(range(5), store=store, run_id="r1"))
    calls.items.clear()
    again = run(build(calls).run(range(5), store=store, run_id="r1"))
    assert calls.items == []
    assert [(r.id, r.value, r.restored) for r in again] == [
        (i, v, True) for i, v in expected(list(range(5)))
    ]


def test_stream_yields_restored_results_and_commits_each_new_one_before_yielding_it() -> None:
    calls, store = Recorder(), MemoryStore()
    namespace = pipeline_namespace("Fetch > Save", "r1")
    run(build(calls, {1, 3}).run(range(5), store=store, run_id="r1"))
    committed_when_yielded: list[bool] = []

    async def consume() -> list[PipelineResult]:
        out = []
        async for result in build(calls).stream(range(6), store=store, run_id="r1"):
            committed_when_yielded.append(store.get(namespace, str(result.id)) is not None)
            out.append(result)
        return out

    results = run(consume())
    assert sorted((r.id, r.restored) for r in results) == [
        (0, True), (1, False), (2, True), (3, False), (4, True), (5, False),
    ]  # fmt: skip
    assert all(committed_when_yielded)
    assert [r.id for r in results[:3]] == [0, 2, 4]  # restored ones come as they are fed


class WatchedStore(MemoryStore):
    """Calls ``watch(key)`` before each write of an item's result (not of the run history)."""

    def __init__(self) -> None:
        super().__init__()
        self.watch: Any = None

    def put(self, namespace: str, key: str, entry: StateEntry) -> None:
        if namespace.startswith("pipeline:"):
            self.watch(key)
        super().put(namespace, key, entry)


def test_a_result_is_committed_before_it_is_counted_or_collected() -> None:
    store, seen = WatchedStore(), Recorder()
    pipeline = build(Recorder(), workers=1)
    store.watch = lambda key: seen(key, pipeline.get_stats().items_processed, len(pipeline.results))
    run(pipeline.run(range(3), store=store, run_id="r1"))
    assert seen.items == [("0", 0, 0), ("1", 1, 1), ("2", 2, 2)]


def test_dict_items_are_keyed_by_their_id_and_keep_this_runs_metadata() -> None:
    calls, store = Recorder(), MemoryStore()
    first = [{"id": "a", "value": 1, "tag": "old"}, {"id": 3, "value": 2}]
    run(build(calls).run(first, store=store, run_id="r1"))
    assert set(store.entries(pipeline_namespace("Fetch > Save", "r1"))) == {'"a"', "3"}

    calls.items.clear()
    # Another order, a new item whose id is the string "3" (not the int 3), new metadata.
    second = [{"id": "3", "value": 9}, {"id": 3, "value": 2}, {"id": "a", "value": 1, "tag": "new"}]
    results = run(build(calls).run(second, store=store, run_id="r1"))
    assert calls.items == [("fetch", 9), ("save", 9)]
    assert [(r.id, r.value, r.restored, dict(r.metadata)) for r in results] == [
        ("3", (9, "saved"), False, {}),
        (3, (2, "saved"), True, {}),
        ("a", (1, "saved"), True, {"tag": "new"}),
    ]


def test_plain_items_are_keyed_by_input_index_so_a_reordered_input_reruns_what_moved() -> None:
    calls, store = Recorder(), MemoryStore()
    run(build(calls).run([10, 20, 30], store=store, run_id="r1"))
    calls.items.clear()
    results = run(build(calls).run([10, 30, 20, 40], store=store, run_id="r1"))
    # Index 0 kept its value; 1 and 2 now hold other values (their fingerprints differ).
    assert Counter(calls.items) == Counter([("fetch", 20), ("fetch", 30), ("fetch", 40),
                                            ("save", 20), ("save", 30), ("save", 40)])  # fmt: skip
    assert [(r.value, r.restored) for r in results] == [
        ((10, "saved"), True), ((30, "saved"), False), ((20, "saved"), False),
        ((40, "saved"), False),
    ]  # fmt: skip


def test_quick_and_the_builder_take_a_store() -> None:
    calls, store = Recorder(), MemoryStore()

    async def triple(x: int) -> int:
        calls(x)
        return 3 * x

    run(Pipeline.quick([1, 2], triple, workers=2, store=store, run_id="q"))
    again = run(Pipeline.quick([1, 2, 4], triple, workers=2, store=store, run_id="q"))
    built = run(Pipeline.create().add("triple", triple).run([1], store=store, run_id="q"))
    assert calls.items == [1, 2, 4]  # both ran the pipeline named "triple"
    assert [(r.value, r.restored) for r in again] == [(3, True), (6, True), (12, False)]
    assert [(r.value, r.restored) for r in built] == [(3, True)]


def test_collect_results_false_still_commits() -> None:
    calls, store = Recorder(), MemoryStore()
    pipeline = Pipeline([Stage("S", 1, [calls])], collect_results=False)
    assert run(pipeline.run(["x"], store=store, run_id="r1")) == []
    assert run(pipeline.run(["x"], store=store, run_id="r1")) == []
    assert calls.items == ["x"]
    assert pipeline.get_stats().items_restored == 1


# -- identity ------------------------------------------------------------------------------


def test_run_ids_names_and_workflows_never_see_each_others_results() -> None:
    calls, store = Recorder(), MemoryStore()
    run(build(calls).run([1], store=store, run_id="monday"))
    run(build(calls).run([1], store=store, run_id="tuesday"))
    run(build(calls, name="other").run([1], store=store, run_id="monday"))
    assert calls.count(("fetch", 1)) == 3
    assert set(store.entries(pipeline_namespace("other", "monday"))) == {"0"}
    assert store.entries(run_namespace("Fetch > Save", "monday")) == {}  # not a workflow's


def test_a_pipeline_is_named_after_its_stages_unless_named() -> None:
    assert build(Recorder()).name == "Fetch > Save"
    assert build(Recorder(), name="ingest").name == "ingest"


def test_run_id_without_a_store_is_unused() -> None:
    calls = Recorder()
    run(build(calls).run([1], run_id="r1"))
    run(build(calls).run([1], run_id="r1"))
    assert calls.count(("fetch", 1)) == 2


# -- changed code or input -------------------------------------------------------------------


def changed_pipeline(calls: Recorder, name: str = "Fetch > Save") -> Pipeline:
    """The same stage names as build(), another fetch function."""

    async def fetch(x: Any) -> Any:
        calls("fetch2", x)
        return {"n": x * 100, "fetched": True}

    def save(record: dict[str, Any]) -> tuple[Any, str]:
        calls("save", record["n"])
        return (record["n"], "saved")

    return Pipeline([Stage("Fetch", 2, [fetch]), Stage("Save", 2, [save])], name=name)


def test_changed_stage_code_reruns_items_by_default_with_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls, store = Recorder(), MemoryStore()
    run(build(calls).run(range(3), store=store, run_id="r1"))
    calls.items.clear()
    with caplog.at_level(logging.INFO, logger="flowweaver.state"):
        results = run(changed_pipeline(calls).run(range(3), store=store, run_id="r1"))
    assert [(r.value, r.restored) for r in results] == [((0, "saved"), False),
                                                        ((100, "saved"), False),
                                                        ((200, "saved"), False)]  # fmt: skip
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("WARNING", "pipeline 'Fetch > Save': item 0 changed (stage code or input) since run "
                    "r1 committed its result; running it again (other changed items are only "
                    "counted)"),
        ("INFO", "pipeline 'Fetch > Save': run r1 restored 0 committed item result(s); 3 "
                 "item(s) ran again because their stage code or input changed"),
    ]  # fmt: skip
    calls.items.clear()
    again = run(changed_pipeline(calls).run(range(3), store=store, run_id="r1"))
    assert calls.items == [] and all(r.restored for r in again)  # the new results replaced


def test_changed_stage_code_fails_items_on_request_and_keeps_the_committed_result() -> None:
    calls, store = Recorder(), MemoryStore()
    run(build(calls).run([7], store=store, run_id="r1"))
    pipeline = changed_pipeline(calls)
    results = run(pipeline.run([7, 8], store=store, run_id="r1", on_changed="error"))
    assert [(r.id, r.value) for r in results] == [(1, (800, "saved"))]
    [failure] = pipeline.get_error_summary().failed_items
    assert (failure.item_id, failure.stage, failure.attempts) == (0, "Fetch", 0)
    assert isinstance(failure.error, ItemMismatchError)
    assert isinstance(failure.error, StateMismatchError) and isinstance(failure.error, RuntimeError)
    assert str(failure.error) == (
        "item 0 of pipeline 'Fetch > Save' changed (stage code or input) since run 'r1' "
        "committed its result"
    )
    assert (failure.error.item_id, failure.error.pipeline, failure.error.run_id) == (
        0, "Fetch > Save", "r1"
    )  # fmt: skip
    assert failure.error.task_name is None and failure.error.workflow == "Fetch > Save"
    restored = run(build(calls).run([7], store=store, run_id="r1", on_changed="error"))
    assert [(r.value, r.restored) for r in restored] == [((7, "saved"), True)]


async def one(x: int) -> int:
    return x + 1


async def two(x: int) -> int:
    return x + 2


def test_the_stage_fingerprint_covers_what_stages_do_to_an_item_and_nothing_else() -> None:
    def fp(*stages: Stage) -> str:
        return stages_fingerprint(stages)

    base = fp(Stage("A", 1, [one, two]))
    assert fp(Stage("Renamed", 5, [one, two], task_attempts=1, queue_capacity=3)) == base
    assert fp(Stage("A", 1, [two, one])) != base
    assert fp(Stage("A", 1, [one]), Stage("B", 1, [two])) != base
    assert fp(Stage("A", 1, [one, two], unpack_args=True)) != base
    assert fp(Stage("A", 1, [one, two], skip_if=lambda x: x > 3)) != base
    assert fp(Stage("A", 1, [one, two], skip_if=lambda x: x > 4)) != fp(
        Stage("A", 1, [one, two], skip_if=lambda x: x > 3)
    )


def test_an_input_with_no_stored_form_is_fingerprinted_by_its_type() -> None:
    calls, store = Recorder(), MemoryStore()
    lock = threading.Lock()

    def describe(value: Any) -> str:
        calls(type(value).__name__)
        return type(value).__name__

    pipeline = Pipeline([Stage("D", 1, [describe])])
    run(pipeline.run([lock], store=store, run_id="r1"))
    again = run(pipeline.run([threading.Lock()], store=store, run_id="r1"))
    assert calls.items == ["lock"]
    assert [(r.value, r.restored) for r in again] == [("lock", True)]


# -- failures of the state machinery are item failures ----------------------------------------


def test_a_result_with_no_stored_form_fails_its_item_and_is_not_committed() -> None:
    calls, store = Recorder(), MemoryStore()

    async def make(x: int) -> Any:
        calls(x)
        return Opaque() if x == 1 else x

    pipeline = Pipeline([Stage("Make", 2, [make])])
    results = run(pipeline.run([0, 1, 2], store=store, run_id="r1"))
    assert [r.value for r in results] == [0, 2]
    [failure] = pipeline.get_error_summary().failed_items
    assert (failure.item_id, failure.stage, failure.attempts) == (1, "Make", 1)
    assert isinstance(failure.error, SerializationError)
    assert str(failure.error) == (
        f"item 1: cannot store a value of type '{__name__}.Opaque': it has no JSON form "
        "(plug in a Serializer that can store it)"
    )
    assert (failure.error.item_id, failure.error.type_name) == (1, f"{__name__}.Opaque")
    calls.items.clear()
    run(pipeline.run([0, 1, 2], store=store, run_id="r1"))
    assert calls.items == [1]  # it runs again: it was never committed


def test_a_failed_commit_is_only_a_failure_never_first_a_success() -> None:
    seen = Recorder()
    tracker = StatusTracker(
        on_success=lambda item_id, value, meta: seen("tracker success", item_id),
        on_failure=lambda item_id, error, meta: seen("tracker failure", item_id),
    )

    async def make(x: int) -> Any:
        return Opaque() if x == 1 else x

    stage = Stage(
        "Make",
        1,
        [make],
        on_success=lambda item_id, value, meta: seen("success", item_id),
        on_failure=lambda item_id, error, meta: seen("failure", item_id, type(error).__name__),
    )
    pipeline = Pipeline([stage], status_tracker=tracker)
    results = run(pipeline.run([0, 1], store=MemoryStore(), run_id="r1"))
    assert [r.id for r in results] == [0]
    assert sorted(seen.items) == [  # type: ignore[type-var]
        ("failure", 1, "SerializationError"),
        ("success", 0),
        ("tracker failure", 1),
        ("tracker success", 0),
    ]
    assert [event.status for event in tracker.get_history(1)] == [
        "queued",
        "in_progress",
        "failed",
    ]
    stats = pipeline.get_stats()
    assert (stats.items_processed, stats.items_failed) == (1, 1)
    make_stats = stats.stage_stats["Make"]
    assert (make_stats.completed_items, make_stats.failed_items) == (1, 1)
    metrics = pipeline.get_worker_metrics()["Make-W0"]
    assert (metrics.items_processed, metrics.items_failed) == (1, 1)


def test_an_id_with_no_stored_form_fails_that_item_before_it_runs() -> None:
    calls, store = Recorder(), MemoryStore()
    odd = Opaque()
    pipeline = Pipeline([Stage("S", 1, [calls])])
    results = run(pipeline.run([{"id": odd, "value": 1}, {"id": "ok", "value": 2}],
                               store=store, run_id="r1"))  # fmt: skip
    assert [r.id for r in results] == ["ok"] and calls.items == [2]
    [failure] = pipeline.get_error_summary().failed_items
    assert (failure.item_id, failure.stage, failure.attempts) == (odd, "S", 0)
    assert str(failure.error) == (
        f"item {odd!r}: cannot store a value of type '{__name__}.Opaque': an item id needs a "
        "JSON form to be a store key (use str, int, or tuples of them)"
    )


class FlakyStore(MemoryStore):
    """A store whose writes of one key fail (another writer holds it), once or always."""

    def __init__(self, key: str) -> None:
        super().__init__()
        self.key = key
        self.locked = True

    def put(self, namespace: str, key: str, entry: StateEntry) -> None:
        if key == self.key and self.locked:
            raise StateLockedError("state.db", 5.0)
        super().put(namespace, key, entry)


def test_a_store_that_fails_a_write_fails_that_item_only() -> None:
    calls, store = Recorder(), FlakyStore("1")
    pipeline = build(calls)
    results = run(pipeline.run([0, 1, 2], store=store, run_id="r1"))
    assert [r.id for r in results] == [0, 2]
    [failure] = pipeline.get_error_summary().failed_items
    assert (failure.item_id, failure.stage) == (1, "Save")
    assert str(failure.error) == (
        "state store 'state.db' is locked by another writer; gave up after 5.0 s"
    )
    store.locked = False
    calls.items.clear()
    run(pipeline.run([0, 1, 2], store=store, run_id="r1"))
    assert calls.items == [("fetch", 1), ("save", 1)]


def test_a_store_that_cannot_be_read_fails_the_call_before_anything_runs(tmp_path: Path) -> None:
    calls = Recorder()
    store = SQLiteStore(tmp_path / "state.db")
    store.close()
    pipeline = build(calls)
    with pytest.raises(StateAccessError):
        run(pipeline.run([1], store=store, run_id="r1"))
    with pytest.raises(StateAccessError):
        run(collect(pipeline.stream([1], store=store, run_id="r1")))
    assert calls.items == []
    assert pipeline.get_stats().items_processed == 0


def test_bad_store_options_are_refused() -> None:
    pipeline = build(Recorder())
    store = MemoryStore()
    cases: list[tuple[dict[str, Any], str]] = [
        ({"store": {"not": "a store"}, "run_id": "r"},
         "store must implement StateStore, got {'not': 'a store'}"),
        ({"store": store},
         "a pipeline run with a store needs a run_id (a non-empty str) to resume by, got None"),
        ({"store": store, "run_id": ""},
         "a pipeline run with a store needs a run_id (a non-empty str) to resume by, got ''"),
        ({"store": store, "run_id": "r", "on_changed": "ignore"},
         "on_changed must be one of ['rerun', 'error'], got 'ignore'"),
    ]  # fmt: skip
    for options, message in cases:
        with pytest.raises(ConfigurationError) as info:
            run(pipeline.run([1], **options))
        assert str(info.value) == message
        with pytest.raises(ConfigurationError) as info:
            run(collect(pipeline.stream([1], **options)))
        assert str(info.value) == message
    for name in ("", 3):
        with pytest.raises(ConfigurationError) as info:
            Pipeline([Stage("S", 1, [str])], name=name)  # type: ignore[arg-type]
        assert str(info.value) == f"name must be a non-empty str or None, got {name!r}"


def test_item_errors_pickle_and_name_the_item() -> None:
    error = ItemMismatchError(("a", 1), "p", "r")
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.item_id, copy.pipeline, copy.run_id, str(copy)) == (
        ("a", 1), "p", "r", str(error)
    )  # fmt: skip
    named = SerializationError("T", "why").for_item(None)
    assert str(named) == "item None: cannot store a value of type 'T': why"
    assert str(SerializationError("T", "why")) == "cannot store a value of type 'T': why"


# -- what a restored item does not do --------------------------------------------------------


def test_restored_items_pass_no_stage_and_fire_no_callback() -> None:
    seen = Recorder()
    tracker = StatusTracker(
        on_status_change=lambda event: seen("status", event.item_id),
        on_success=lambda item_id, value, meta: seen("success", item_id),
    )

    async def work(x: int) -> int:
        return x

    def make() -> Pipeline:
        stage = Stage("S", 1, [work], on_success=lambda i, v, m: seen("stage", i))
        return Pipeline([stage], status_tracker=tracker)

    store = MemoryStore()
    run(make().run([5], store=store, run_id="r1"))
    assert seen.count(("success", 0)) == 1 and seen.count(("stage", 0)) == 1
    seen.items.clear()
    pipeline = make()
    results = run(pipeline.run([5, 6], store=store, run_id="r1"))
    assert [(r.id, r.restored) for r in results] == [(0, True), (1, False)]
    assert {item for item in seen.items if item[1] == 0} == set()  # type: ignore[index]
    assert seen.count(("success", 1)) == 1


def test_a_stream_left_early_commits_what_was_yielded_and_resumes_the_rest() -> None:
    calls, store = Recorder(), MemoryStore()

    async def leave_after(n: int) -> list[Any]:
        ids = []
        async for result in build(calls).stream(range(20), store=store, run_id="r1"):
            ids.append(result.id)
            if len(ids) == n:
                break
        return ids

    taken = run(leave_after(5))
    first_calls = Counter(calls.items)
    calls.items.clear()
    results = run(build(calls).run(range(20), store=store, run_id="r1"))
    assert [(r.id, r.value) for r in results] == expected(list(range(20)))
    restored = {r.id for r in results if r.restored}
    assert restored >= set(taken)  # yielded means committed
    for item in restored:  # committed: processed once in all
        assert first_calls[("save", item)] + calls.count(("save", item)) == 1


def test_a_shutdown_while_feeding_refuses_restored_items_too() -> None:
    calls, store = Recorder(), MemoryStore()
    run(build(calls).run(range(4), store=store, run_id="r1"))
    pipeline = build(calls)

    async def items() -> Any:
        yield 0
        yield 1
        await pipeline.shutdown()
        yield 2
        yield 3

    with pytest.raises(PipelineError) as info:
        run(pipeline.run(items(), store=store, run_id="r1"))
    assert str(info.value) == (
        "the pipeline was shut down while feeding stage 'Fetch': 2 item(s) were accepted, "
        "the one taken from the input was recorded as cancelled, the rest were not taken"
    )
    stats = pipeline.get_stats()  # item 2 was taken from the input as the run stopped: it ended
    assert (stats.items_processed, stats.items_restored, stats.items_failed) == (2, 2, 1)
    (failure,) = pipeline.get_error_summary().failed_items
    assert (failure.item_id, type(failure.error)) == (2, ItemCancelledError)


def test_restoring_many_items_lets_the_event_loop_run() -> None:
    calls, store = Recorder(), MemoryStore()
    run(build(calls).run(range(300), store=store, run_id="r1"))
    pipeline = build(calls)
    seen: list[int] = []

    async def watch() -> None:
        while True:
            seen.append(pipeline.get_stats().items_restored)
            await asyncio.sleep(0)

    async def restore_while_watching() -> None:
        watcher = asyncio.get_running_loop().create_task(watch())
        await pipeline.run(range(300), store=store, run_id="r1")
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)

    run(restore_while_watching())
    assert any(0 < n < 300 for n in seen)
    assert pipeline.get_stats().items_restored == 300


@settings(max_examples=25, deadline=None)
@given(
    st.lists(st.booleans(), min_size=1, max_size=12),
    st.integers(1, 4),
    st.sampled_from(["plain", "dict"]),
)
def test_any_failures_then_a_rerun_equal_one_clean_run(
    fails: list[bool], workers: int, kind: str
) -> None:
    calls, store = Recorder(), MemoryStore()
    values = list(range(len(fails)))
    bad = {v for v, f in zip(values, fails, strict=True) if f}
    items: list[Any] = values if kind == "plain" else [{"id": f"k{v}", "value": v} for v in values]

    run(build(calls, bad, workers=workers).run(items, store=store, run_id="r"))
    bad.clear()
    results = run(build(calls, bad, workers=workers).run(items, store=store, run_id="r"))
    assert [r.value for r in results] == [(v, "saved") for v in values]
    assert [r.restored for r in results] == [not f for f in fails]
    saves = Counter(call[1] for call in calls.items if call[0] == "save")  # type: ignore[index]
    assert saves == Counter(values)  # every item completed exactly once in all


def test_json_store_checkpoints_too(tmp_path: Path) -> None:
    calls = Recorder()
    with JSONFileStore(tmp_path / "state.json") as store:
        run(build(calls, {1}).run(range(3), store=store, run_id="r1"))
    calls.items.clear()
    with JSONFileStore(tmp_path / "state.json") as store:
        results = run(build(calls).run(range(3), store=store, run_id="r1"))
    assert calls.items == [("fetch", 1), ("save", 1)]
    assert [(r.value, r.restored) for r in results] == [
        ((0, "saved"), True), ((1, "saved"), False), ((2, "saved"), True),
    ]  # fmt: skip
