"""Resuming runs from a state store, on every executor (see conftest: ``executor``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowweaver import (
    ConfigurationError,
    JSONFileStore,
    MemoryStore,
    SequentialExecutor,
    SerializationError,
    SQLiteStore,
    StateCorruptError,
    StateLockedError,
    StateMismatchError,
    Task,
    TaskStatus,
    Workflow,
    WorkflowFailedError,
)
from flowweaver._store import run_namespace

from .conftest import Recorder
from .conftest import execute as run
from .test_engine import Tally

if TYPE_CHECKING:
    from pathlib import Path

S = TaskStatus


@dataclass(frozen=True)
class Batch:
    rows: tuple[int, ...]


class Faults:
    """Which tasks raise. Captured by the task closures: a mutable object, so only its type is
    part of their fingerprint (see _fingerprint)."""

    def __init__(self, names: set[str] | set[int]) -> None:
        self.names: set[Any] = set(names)


def pipeline(calls: Recorder, fail: set[str] | None = None, name: str = "etl") -> Workflow:
    """extract -> (clean, count) -> report; plus an independent 'audit'. Tasks in ``fail`` raise."""
    faults = Faults(fail or set())

    def step(task: str, fn: Any) -> Any:
        def run(*args: Any) -> Any:
            calls(task)
            if task in faults.names:
                raise ConnectionError(f"{task} is down")
            return fn(*args)

        return run

    wf = Workflow(name)
    wf.add_task(Task(name="extract", fn=step("extract", lambda: Batch((3, 1, 2)))))
    wf.add_task(Task(name="clean", fn=step("clean", lambda b: tuple(sorted(b.rows)))),
                depends_on=["extract"])  # fmt: skip
    wf.add_task(Task(name="count", fn=step("count", lambda b: {len(b.rows)})),
                depends_on=["extract"])  # fmt: skip
    wf.add_task(Task(name="report", fn=step("report", lambda c, n: (c, n))),
                depends_on=["clean", "count"])  # fmt: skip
    wf.add_task(Task(name="audit", fn=step("audit", lambda: "ok")))
    return wf


EXPECTED = {
    "extract": Batch((3, 1, 2)), "clean": (1, 2, 3), "count": {3},
    "report": ((1, 2, 3), {3}), "audit": "ok",
}  # fmt: skip


def test_a_rerun_runs_only_what_did_not_complete(executor: Any, tmp_path: Path) -> None:
    calls = Recorder()
    with SQLiteStore(tmp_path / "state.db") as store:
        with pytest.raises(WorkflowFailedError):
            run(executor, pipeline(calls, fail={"count"}), store=store, run_id="r1",
                failure_policy="continue")  # fmt: skip
        assert sorted(calls.items, key=str) == ["audit", "clean", "count", "extract"]
        calls.items.clear()

        resumed = run(executor, pipeline(calls), store=store, run_id="r1")
    assert sorted(calls.items, key=str) == ["count", "report"]
    assert resumed.results == EXPECTED  # restored values kept their types (tuple, set, Batch)
    assert sorted(resumed.restored) == ["audit", "clean", "extract"]
    assert resumed.cached == []
    assert resumed.attempts("extract") == 0 and resumed.attempts("count") == 1
    assert resumed.ok and set(resumed.statuses.values()) == {S.COMPLETED}


def test_a_finished_run_reruns_nothing(executor: Any) -> None:
    calls, store = Recorder(), MemoryStore()
    run(executor, pipeline(calls), store=store, run_id="r1")
    calls.items.clear()
    again = run(executor, pipeline(calls), store=store, run_id="r1")
    assert calls.items == []
    assert again.results == EXPECTED
    assert sorted(again.restored) == sorted(EXPECTED)


def test_execute_async_resumes_too(executor: Any, tmp_path: Path) -> None:
    calls = Recorder()
    with SQLiteStore(tmp_path / "state.db") as store:  # used from another thread than its own
        with pytest.raises(WorkflowFailedError):
            asyncio.run(executor.execute_async(pipeline(calls, fail={"report"}), store=store,
                                               run_id="r1"))  # fmt: skip
        calls.items.clear()
        resumed = asyncio.run(executor.execute_async(pipeline(calls), store=store, run_id="r1"))
    assert calls.items == ["report"]
    assert resumed.results == EXPECTED


def test_run_ids_and_workflows_never_see_each_others_results() -> None:
    calls, store = Recorder(), MemoryStore()
    pipeline(calls).execute(store=store, run_id="monday")
    pipeline(calls).execute(store=store, run_id="tuesday")
    pipeline(calls, name="other").execute(store=store, run_id="monday")
    assert calls.count("extract") == 3
    assert set(store.entries(run_namespace("etl", "monday"))) == set(EXPECTED)
    assert set(store.entries(run_namespace("other", "monday"))) == set(EXPECTED)


def test_without_a_run_id_every_run_is_new_and_still_committed() -> None:
    calls, store = Recorder(), MemoryStore()
    first = pipeline(calls).execute(store=store)
    second = pipeline(calls).execute(store=store)
    assert calls.count("extract") == 2 and first.run_id != second.run_id
    assert set(store.entries(run_namespace("etl", first.run_id))) == set(EXPECTED)


def two_steps(first: Any, second: Any = lambda first: first * 10) -> Workflow:
    wf = Workflow("change")
    wf.add_task(Task(name="first", fn=first))
    wf.add_task(Task(name="second", fn=second), depends_on=["first"])
    wf.add_task(Task(name="third", fn=lambda second: second + 1), depends_on=["second"])
    return wf


def test_a_changed_task_reruns_and_only_a_changed_result_reruns_downstream(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = MemoryStore()
    two_steps(lambda: 1).execute(store=store, run_id="r")
    with caplog.at_level(logging.WARNING, logger="flowweaver"):
        # New code, same result: 'first' re-runs; its dependants' inputs did not change.
        same = two_steps(lambda: int("1")).execute(store=store, run_id="r")
    assert sorted(same.restored) == ["second", "third"]
    assert [r.getMessage() for r in caplog.records] == [
        "task 'first': code or inputs changed since run r committed its result; running it again"
    ]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="flowweaver"):
        changed = two_steps(lambda: 5).execute(store=store, run_id="r")  # a different result
    assert changed.results == {"first": 5, "second": 50, "third": 51}
    assert changed.restored == []
    assert [r.getMessage().split(":")[0] for r in caplog.records] == [
        "task 'first'", "task 'second'", "task 'third'",
    ]  # fmt: skip
    assert two_steps(lambda: 5).execute(store=store, run_id="r").restored == [
        "first", "second", "third",
    ]  # fmt: skip


def test_closure_and_default_values_are_part_of_the_code(executor: Any) -> None:
    store = MemoryStore()
    for factor in (2, 2, 3):
        wf = two_steps(lambda: 1, lambda first, factor=factor: first * factor)
        outcome = run(executor, wf, store=store, run_id="r")
    assert outcome.results["second"] == 3
    assert outcome.restored == ["first"]


def test_a_task_closing_over_changing_state_still_resumes(executor: Any) -> None:
    # A recorder and a set captured by the task functions differ between the two runs; they
    # must not make the committed tasks look changed.
    store = MemoryStore()
    seen = Recorder()
    failing = {"second"}

    def first() -> int:
        seen("first")
        return 1

    def second(first: int) -> int:
        seen("second")
        if "second" in failing:
            raise RuntimeError("not yet")
        return first + 1

    def build() -> Workflow:
        wf = Workflow("closures")
        wf.add_task(Task(name="first", fn=first))
        wf.add_task(Task(name="second", fn=second), depends_on=["first"])
        return wf

    with pytest.raises(WorkflowFailedError):
        run(executor, build(), store=store, run_id="r")
    failing.clear()
    seen("---")
    outcome = run(executor, build(), store=store, run_id="r")
    assert outcome.restored == ["first"]
    assert seen.items == ["first", "second", "---", "second"]
    assert outcome.results == {"first": 1, "second": 2}


def test_on_changed_error_refuses_a_changed_task(executor: Any) -> None:
    store = MemoryStore()
    run(executor, two_steps(lambda: 1), store=store, run_id="r")
    calls = Recorder()

    def first() -> int:
        calls("first")
        return 1

    wf = two_steps(first)
    with pytest.raises(WorkflowFailedError) as info:
        run(executor, wf, store=store, run_id="r", on_changed="error")
    (failure,) = info.value.failures
    assert str(failure.__cause__) == (
        "task 'first' of workflow 'change' changed (code or inputs) since run 'r' committed "
        "its result"
    )
    assert isinstance(failure.__cause__, StateMismatchError) and failure.attempts == 1
    assert calls.items == []
    assert wf.last_run is not None
    assert wf.last_run.statuses == {
        "first": S.FAILED, "second": S.UPSTREAM_FAILED, "third": S.UPSTREAM_FAILED,
    }  # fmt: skip


def test_a_result_that_cannot_be_stored_fails_its_task_cleanly(executor: Any) -> None:
    store, calls = MemoryStore(), Recorder()

    def sock() -> object:
        calls("sock")
        return object()

    wf = Workflow("w")
    wf.add_task(Task(name="fine", fn=lambda: 1))
    wf.add_task(Task(name="sock", fn=sock, retries=3, delay=0))
    wf.add_task(Task(name="use", fn=lambda sock: sock), depends_on=["sock"])
    with pytest.raises(WorkflowFailedError) as info:
        run(executor, wf, store=store, run_id="r", failure_policy="continue")
    (failure,) = info.value.failures
    assert str(failure) == (
        "task 'sock' failed after 1 attempt: SerializationError: task 'sock': cannot store a "
        "value of type 'object': it has no JSON form (plug in a Serializer that can store it)"
    )
    assert calls.items == ["sock"]  # not retried: the same kind of value would fail again
    assert isinstance(failure.__cause__, SerializationError)
    assert failure.__cause__.task_name == "sock"
    assert wf.last_run is not None
    assert wf.last_run.statuses == {"fine": S.COMPLETED, "sock": S.FAILED, "use": S.UPSTREAM_FAILED}
    assert set(store.entries(run_namespace("w", "r"))) == {"fine"}


def test_a_locked_store_fails_the_task_and_keeps_every_commit(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    holder: list[sqlite3.Connection] = []

    def grab_the_lock() -> str:  # another writer takes the lock while this task runs
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        holder.append(other)
        return "value"

    def build(second: Any) -> Workflow:
        wf = Workflow("locked")
        wf.add_task(Task(name="a", fn=lambda: "a"))
        wf.add_task(Task(name="b", fn=second), depends_on=["a"])
        wf.add_task(Task(name="c", fn=lambda b: b + "!"), depends_on=["b"])
        return wf

    with SQLiteStore(path, timeout=0.05) as store:
        with pytest.raises(WorkflowFailedError) as info:
            build(lambda a: grab_the_lock()).execute(store=store, run_id="r")
        (failure,) = info.value.failures
        assert isinstance(failure.__cause__, StateLockedError)
        assert str(failure.__cause__) == (
            f"state store {str(path)!r} is locked by another writer; gave up after 0.05 s"
        )
        holder[0].execute("ROLLBACK")
        holder[0].close()
        assert set(store.entries(run_namespace("locked", "r"))) == {"a"}
        resumed = build(lambda a: "value").execute(store=store, run_id="r")
    assert resumed.restored == ["a"]
    assert resumed.results == {"a": "a", "b": "value", "c": "value!"}


def test_a_corrupt_store_fails_the_run_before_anything_runs(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    store = JSONFileStore(path)
    calls = Recorder()
    pipeline(calls).execute(store=store, run_id="r")
    path.write_text(path.read_text()[:40])  # truncated behind the store's back
    calls.items.clear()
    with pytest.raises(StateCorruptError) as info:
        pipeline(calls).execute(store=store, run_id="r")
    assert str(info.value).startswith(f"state store {str(path)!r} is corrupt: not valid JSON")
    assert calls.items == []


def test_observers_see_restored_tasks_complete(executor: Any) -> None:
    store = MemoryStore()
    run(executor, pipeline(Recorder()), store=store, run_id="r")
    seen, tally = Recorder(), Tally()
    wf = pipeline(Recorder())
    wf.add_task(Task(name="watched", fn=lambda: 1, on_status_change=lambda n, s: seen(s)))
    run(executor, wf, store=store, run_id="r", monitors=[tally])
    wf2 = pipeline(Recorder())
    wf2.add_task(Task(name="watched", fn=lambda: 1, on_status_change=lambda n, s: seen(s)))
    run(executor, wf2, store=store, run_id="r", monitors=[tally])
    assert seen.items == [S.RUNNING, S.COMPLETED, S.COMPLETED]  # ran once, then restored
    restored_events = [e for e in tally.events if e[1] == "extract"]
    assert restored_events == [("status", "extract", S.COMPLETED)] * 2


def test_skipped_tasks_are_decided_again_and_their_dependants_restored() -> None:
    store, checks, calls = MemoryStore(), Recorder(), Recorder()

    def big_enough(size: int) -> bool:
        checks("when")
        return size > 10

    def after(big: object) -> str:
        calls("after")
        return f"got {big}"

    def build() -> Workflow:
        wf = Workflow("skips")
        wf.add_task(Task(name="size", fn=lambda: 5))
        wf.add_task(Task(name="big", fn=lambda size: calls("big"), when=big_enough),
                    depends_on=["size"])  # fmt: skip
        wf.add_task(Task(name="after", fn=after), depends_on=["big"])
        return wf

    build().execute(store=store, run_id="r")
    again = build().execute(store=store, run_id="r")
    assert checks.items == ["when", "when"]
    assert calls.items == ["after"]
    assert again.status("big") is S.SKIPPED
    assert again.restored == ["size", "after"]
    assert again.results == {"size": 5, "big": None, "after": "got None"}


def test_state_run_options_are_validated() -> None:
    wf = two_steps(lambda: 1)
    with pytest.raises(ConfigurationError) as info:
        wf.execute(store="state.db")  # type: ignore[arg-type]
    assert str(info.value) == "store must implement StateStore, got 'state.db'"
    with pytest.raises(ConfigurationError) as info:
        wf.execute(on_changed="ignore")
    assert str(info.value) == "on_changed must be one of ['rerun', 'error'], got 'ignore'"


class Reversed:
    """A serializer of one's own: JSON text, reversed (any text form will do)."""

    def dumps(self, value: object) -> str:
        import json

        return json.dumps(value)[::-1]

    def loads(self, text: str) -> object:
        import json

        return json.loads(text[::-1])


def test_a_plugged_in_serializer_is_used_for_every_value(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db", serializer=Reversed())
    two_steps(lambda: 1).execute(store=store, run_id="r")
    assert store.entries(run_namespace("change", "r"))["second"].data == "01"
    assert two_steps(lambda: 1).execute(store=store, run_id="r").restored == [
        "first", "second", "third",
    ]  # fmt: skip
    store.close()


@settings(max_examples=40, deadline=None)
@given(
    deps=st.lists(st.lists(st.integers(0, 30), max_size=3), min_size=1, max_size=12),
    failing=st.sets(st.integers(0, 11)),
)
def test_resume_runs_each_unfinished_task_once_and_matches_a_clean_run(
    deps: list[list[int]], failing: set[int]
) -> None:
    def build(calls: Recorder, fail: set[int]) -> Workflow:
        faults = Faults(fail)
        wf = Workflow("random")
        for i, ds in enumerate(deps):
            upstream = sorted({d % i for d in ds}) if i else []

            def fn(*inputs: Any, i: int = i) -> Any:
                calls(i)
                if i in faults.names:
                    raise ValueError(i)
                return (i, sum(x[1] for x in inputs) + i)

            wf.add_task(Task(name=f"t{i}", fn=fn), depends_on=[f"t{d}" for d in upstream])
        return wf

    store = MemoryStore()
    first = build(Recorder(), failing)
    with contextlib.suppress(WorkflowFailedError):
        SequentialExecutor().execute(first, store=store, run_id="r", failure_policy="continue")
    assert first.last_run is not None
    done_first = {n for n, s in first.last_run.statuses.items() if s is S.COMPLETED}
    second_calls = Recorder()
    resumed = SequentialExecutor().execute(build(second_calls, set()), store=store, run_id="r")
    clean = SequentialExecutor().execute(build(Recorder(), set()))
    assert resumed.results == clean.results
    assert set(resumed.restored) == done_first
    # Exactly the tasks that did not complete ran again, once each.
    assert sorted(f"t{i}" for i in second_calls.items) == sorted(set(clean.results) - done_first)
