"""Run history: what every durable run records in its store, and the API that reads it."""

from __future__ import annotations

import contextlib
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from flowweaver import (
    ConfigurationError,
    JSONFileStore,
    MemoryStore,
    Pipeline,
    RunKind,
    RunStatus,
    SequentialExecutor,
    SQLiteStore,
    Stage,
    StateAccessError,
    StateStore,
    Task,
    ThreadedExecutor,
    UnknownRunError,
    Workflow,
    __version__,
)
from flowweaver._store import pipeline_namespace, run_namespace

from .conftest import run

FIXTURE = Path(__file__).with_name("fixtures") / "state_v1.db"


@pytest.fixture(params=["sqlite", "json", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StateStore]:
    made: SQLiteStore | JSONFileStore | MemoryStore
    if request.param == "sqlite":
        made = SQLiteStore(tmp_path / "s.db")
    elif request.param == "json":
        made = JSONFileStore(tmp_path / "s.json", fsync=False)
    else:
        made = MemoryStore()
    yield made
    made.close()


def extract() -> list[int]:
    return [1, 2, 3]


def total(extract: list[int]) -> int:
    return sum(extract)


def etl(flaky_fails: int = 0, fatal: bool = False) -> Workflow:
    """extract -> total -> report, plus a task that fails ``flaky_fails`` times, and one that
    fails for good when ``fatal``."""
    left = [flaky_fails]

    def flaky() -> str:
        if left[0]:
            left[0] -= 1
            raise ConnectionError("try again")
        return "ok"

    def broken(total: int) -> int:
        if fatal:
            raise ValueError(f"<b>bad</b> total {total}")
        return total

    wf = Workflow("etl")
    wf.add_task(Task("extract", extract))
    wf.add_task(Task("total", total), depends_on=["extract"])
    wf.add_task(Task("flaky", flaky, retries=2, delay=0, jitter=0))
    wf.add_task(Task("broken", broken), depends_on=["total"])
    wf.add_task(Task("report", lambda broken: broken), depends_on=["broken"])
    return wf


def test_a_completed_run_records_its_metadata_tasks_and_graph(store: StateStore) -> None:
    ThreadedExecutor(max_workers=2).execute(etl(flaky_fails=1), store=store, run_id="r1")
    (record,) = store.runs()  # type: ignore[attr-defined]
    assert (record.kind, record.name, record.run_id) == (RunKind.WORKFLOW, "etl", "r1")
    assert record.status is RunStatus.COMPLETED
    assert record.executor == "ThreadedExecutor" and record.version == __version__
    assert dict(record.counts) == {"completed": 5} and record.total == 5
    assert record.ended_at is not None and record.ended_at >= record.started_at
    assert record.resumes == 0 and record.error is None
    detail = store.run("etl", "r1")  # type: ignore[attr-defined]
    tasks = {t.name: t for t in detail.tasks}
    assert [t.name for t in detail.tasks] == ["extract", "total", "flaky", "broken", "report"]
    assert {t.status for t in detail.tasks} == {"completed"}
    assert (tasks["flaky"].attempts, tasks["extract"].attempts) == (2, 1)
    flaky = tasks["flaky"]
    assert flaky.started_at is not None and flaky.started_at >= record.started_at
    assert flaky.duration is not None and 0 <= flaky.duration <= record.ended_at - record.started_at
    assert dict(detail.dependencies) == {
        "extract": (), "total": ("extract",), "flaky": (), "broken": ("total",),
        "report": ("broken",),
    }  # fmt: skip
    assert detail.layers == (("extract", "flaky"), ("total",), ("broken",), ("report",))


def test_a_failed_run_records_each_task_and_the_error_with_its_traceback(
    store: StateStore,
) -> None:
    with pytest.raises(RuntimeError):
        SequentialExecutor().execute(
            etl(fatal=True), store=store, run_id="r1", failure_policy="continue"
        )
    (record,) = store.runs()  # type: ignore[attr-defined]
    assert record.status is RunStatus.FAILED
    assert dict(record.counts) == {"completed": 3, "failed": 1, "upstream_failed": 1}
    assert record.error == "task 'broken' failed after 1 attempt: ValueError: <b>bad</b> total 6"
    tasks = {t.name: t for t in store.run("etl", "r1").tasks}  # type: ignore[attr-defined]
    broken = tasks["broken"]
    assert (broken.status, broken.attempts, broken.error_type) == ("failed", 1, "ValueError")
    assert broken.error == "<b>bad</b> total 6"
    assert broken.traceback is not None
    assert 'raise ValueError(f"<b>bad</b> total {total}")' in broken.traceback
    assert (tasks["report"].status, tasks["report"].attempts) == ("upstream_failed", 0)


def test_a_resumed_run_counts_its_resumes_and_marks_restored_tasks(store: StateStore) -> None:
    with pytest.raises(RuntimeError):
        SequentialExecutor().execute(etl(fatal=True), store=store, run_id="r1")
    SequentialExecutor().execute(etl(), store=store, run_id="r1")
    (record,) = store.runs()  # type: ignore[attr-defined]
    assert (record.status, record.resumes) == (RunStatus.COMPLETED, 1)
    tasks = {t.name: t for t in store.run("etl", "r1").tasks}  # type: ignore[attr-defined]
    assert {name: t.reused for name, t in tasks.items()} == {
        "extract": "restored", "total": "restored", "flaky": "restored", "broken": None,
        "report": None,
    }  # fmt: skip
    assert tasks["extract"].attempts == 1  # as the first execution recorded it
    assert {t.status for t in tasks.values()} == {"completed"}


def test_runs_are_newest_first_and_filtered(tmp_path: Path) -> None:
    now = [1000.0]
    store = SQLiteStore(tmp_path / "s.db", clock=lambda: now[0])
    for i in range(4):
        wf = Workflow("a" if i % 2 else "b")
        wf.add_task(Task("t", (lambda: 1) if i != 3 else _fail))
        with contextlib.suppress(RuntimeError):
            SequentialExecutor().execute(wf, store=store, run_id=f"r{i}")
    assert [r.run_id for r in store.runs()] == ["r3", "r2", "r1", "r0"]
    assert [r.run_id for r in store.runs("a")] == ["r3", "r1"]
    assert [r.run_id for r in store.runs(status="failed")] == ["r3"]
    assert [r.run_id for r in store.runs(limit=2)] == ["r3", "r2"]
    since = store.runs()[1].started_at
    assert [r.run_id for r in store.runs(since=since)] == ["r3", "r2"]
    assert store.runs(kind="pipeline") == []
    with pytest.raises(ConfigurationError) as info:
        store.runs(status="lost")
    assert str(info.value) == (
        "status must be one of ['running', 'completed', 'failed', 'cancelled', 'interrupted', "
        "'unknown'], got 'lost'"
    )
    with pytest.raises(ConfigurationError) as info:
        store.runs(limit=-1)
    assert str(info.value) == "limit must be an int >= 0 or None, got -1"
    with pytest.raises(KeyError) as missing:
        store.run("a", "nope")
    assert isinstance(missing.value, UnknownRunError)
    assert str(missing.value) == "no run 'nope' of 'a' is recorded in this store"


def _fail() -> None:
    raise OSError("disk full")


def test_retention_keeps_the_last_runs_per_name_and_prune_removes_results_too(
    tmp_path: Path,
) -> None:
    store = SQLiteStore(tmp_path / "s.db", keep_runs=3)
    for i in range(5):
        SequentialExecutor().execute(etl(), store=store, run_id=f"r{i}")
    assert [r.run_id for r in store.runs()] == ["r4", "r3", "r2"]
    assert store.entries(run_namespace("etl", "r0")) == {}  # its results went with it
    assert len(store.entries(run_namespace("etl", "r2"))) == 5
    assert store.prune_runs(keep_last=1) == 2
    assert [r.run_id for r in store.runs()] == ["r4"]
    assert store.entries(run_namespace("etl", "r3")) == {}
    assert store.prune_runs(before=store.runs()[0].started_at + 1) == 1
    assert store.runs() == []
    with pytest.raises(ConfigurationError) as info:
        store.prune_runs()
    assert str(info.value) == "prune needs keep_last= or before= (or both)"
    with pytest.raises(ConfigurationError) as info:
        SQLiteStore(tmp_path / "t.db", keep_runs=-1)
    assert str(info.value) == "SQLiteStore: keep_runs must be an int >= 0 or None, got -1"


def test_a_pipeline_run_records_stage_counts_and_failed_items(store: StateStore) -> None:
    async def double(x: int) -> int:
        if x == 2:
            raise ValueError(f"no <{x}>")
        return x * 2

    async def keep(x: int) -> int:
        return x

    pipeline = Pipeline(
        [Stage("double", workers=2, tasks=[double], task_attempts=1), Stage("keep", 1, [keep])],
        name="doubler",
    )
    results = run(pipeline.run([1, 2, 3], store=store, run_id="b1"))
    assert [r.value for r in results] == [2, 6]
    (record,) = store.runs(kind="pipeline")  # type: ignore[attr-defined]
    assert (record.name, record.run_id, record.status) == ("doubler", "b1", RunStatus.FAILED)
    assert dict(record.counts) == {"completed": 2, "failed": 1, "restored": 0}
    assert record.total == 3
    detail = store.run("doubler", "b1")  # type: ignore[attr-defined]
    assert [(s.name, s.workers, s.processed, s.failed) for s in detail.stages] == [
        ("double", 2, 2, 1), ("keep", 1, 2, 0),
    ]  # fmt: skip
    failed = [t for t in detail.tasks if t.status == "failed"]
    assert [(t.name, t.stage, t.error_type, t.error) for t in failed] == [
        ("1", "double", "ValueError", "no <2>")
    ]
    assert sorted(t.name for t in detail.tasks if t.status == "completed") == ["0", "2"]


def test_a_store_of_schema_1_opens_migrates_and_resumes(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    shutil.copy(FIXTURE, path)
    with SQLiteStore(path) as store:
        runs = {(r.kind, r.name, r.run_id): r for r in store.runs()}
        assert set(runs) == {
            (RunKind.WORKFLOW, "etl", "2026-12-01"), (RunKind.PIPELINE, "doubler", "batch-1"),
        }  # fmt: skip
        legacy = runs[RunKind.WORKFLOW, "etl", "2026-12-01"]
        assert legacy.status is RunStatus.UNKNOWN and dict(legacy.counts) == {"completed": 2}
        tasks = store.run("etl", "2026-12-01").tasks
        assert [(t.name, t.status) for t in tasks] == [
            ("extract", "completed"),
            ("total", "completed"),
        ]
        # The committed results are untouched, and the run id still resumes.
        assert store.entries(run_namespace("etl", "2026-12-01"))["total"].data == "6"
        assert len(store.entries(pipeline_namespace("doubler", "batch-1"))) == 3
        wf = Workflow("etl")
        wf.add_task(Task("extract", extract))
        wf.add_task(Task("total", total), depends_on=["extract"])
        done = SequentialExecutor().execute(wf, store=store, run_id="2026-12-01")
        assert done.result("total") == 6
        assert store.runs("etl")[0].status is RunStatus.COMPLETED
    raw = sqlite3.connect(path)
    version = raw.execute("SELECT value FROM flowweaver_meta WHERE key = 'schema_version'")
    assert version.fetchone() == ("2",)
    raw.close()


def test_a_read_only_store_reads_history_and_never_writes(tmp_path: Path) -> None:
    with pytest.raises(StateAccessError):
        SQLiteStore(tmp_path / "missing.db", read_only=True)
    assert not (tmp_path / "missing.db").exists()
    path = tmp_path / "old.db"
    shutil.copy(FIXTURE, path)
    before = path.read_bytes()
    with SQLiteStore(path, read_only=True) as store:
        assert store.runs() == []  # schema 1 is read as it is: no history before migration
        with pytest.raises(StateAccessError):
            store.put("ns", "k", store.get(run_namespace("etl", "2026-12-01"), "total"))  # type: ignore[arg-type]
    assert path.read_bytes() == before


KILLED = textwrap.dedent(
    """
    import os, sys, threading
    from flowweaver import SQLiteStore, Task, ThreadedExecutor, Workflow

    def first():
        return 1

    def second(first):
        if os.environ.get("BLOCK"):
            print("BLOCKED", flush=True)
            threading.Event().wait()
        return first + 1

    wf = Workflow("killed")
    wf.add_task(Task("first", first))
    wf.add_task(Task("second", second), depends_on=["first"])
    with SQLiteStore(sys.argv[1]) as store:
        ThreadedExecutor().execute(wf, store=store, run_id="k1")
    print("DONE", flush=True)
    """
)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_a_run_killed_halfway_shows_as_interrupted_then_resumes(tmp_path: Path) -> None:
    path, script = tmp_path / "s.db", tmp_path / "killed.py"
    script.write_text(KILLED)
    env = {"BLOCK": "1", "PATH": "/usr/bin:/bin"}
    proc = subprocess.Popen(
        [sys.executable, str(script), str(path)], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "BLOCKED"
        with SQLiteStore(path) as store:  # while it runs, it is running
            assert store.runs()[0].status is RunStatus.RUNNING
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.kill()
        proc.wait(timeout=30)
        if proc.stdout is not None:
            proc.stdout.close()
    with SQLiteStore(path) as store:
        (record,) = store.runs()
        assert (record.status, record.ended_at) == (RunStatus.INTERRUPTED, None)
        assert store.runs(status="interrupted") == [record]
        tasks = {t.name: t.status for t in store.run("killed", "k1").tasks}
        assert tasks == {"first": "completed", "second": "unknown"}
    done = subprocess.run(
        [sys.executable, str(script), str(path)], capture_output=True, text=True, timeout=60, check=False,
        env={"PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert done.stdout.strip() == "DONE", done.stderr
    with SQLiteStore(path) as store:
        (record,) = store.runs()
        assert (record.status, record.resumes) == (RunStatus.COMPLETED, 1)
        tasks_after = {t.name: t.reused for t in store.run("killed", "k1").tasks}
        assert tasks_after == {"first": "restored", "second": None}


def test_keep_runs_0_records_no_history(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db", keep_runs=0)
    SequentialExecutor().execute(etl(), store=store, run_id="r1")
    run(Pipeline([Stage("s", 1, [_double])], name="p").run([1], store=store, run_id="b1"))
    assert store.runs() == []
    results = store.entries(run_namespace("etl", "r1"))
    assert len(results) == 5 and {e.metadata for e in results.values()} == {None}
    store.close()


async def _double(x: int) -> int:
    return 2 * x


def test_a_mapped_task_is_recorded_as_one_task_with_its_elements(store: StateStore) -> None:
    wf = Workflow("mapped")
    wf.add_task(Task("numbers", lambda: [1, 2, 3]))
    wf.add_task(Task("square", _square, map_over="numbers"), depends_on=["numbers"])
    SequentialExecutor().execute(wf, store=store, run_id="m1")
    detail = store.run("mapped", "m1")  # type: ignore[attr-defined]
    assert [(t.name, t.status, t.elements) for t in detail.tasks] == [
        ("numbers", "completed", None), ("square", "completed", 3),
    ]  # fmt: skip
    assert dict(detail.dependencies) == {"numbers": (), "square": ("numbers",)}


def _square(x: int) -> int:
    return x * x


def test_a_subflow_is_recorded_with_its_opener_and_its_child_tasks(store: StateStore) -> None:
    from .subflow_tasks import squares_workflow

    SequentialExecutor().execute(squares_workflow(), store=store, run_id="s1")
    detail = store.run("squares_of_numbers", "s1")  # type: ignore[attr-defined]
    tasks = {t.name: t for t in detail.tasks}
    assert [t.name for t in detail.tasks[:4]] == ["numbers", "build_squares", "total", "static"]
    assert (tasks["build_squares"].status, tasks["build_squares"].subflow) == ("completed", 3)
    assert tasks["static"].subflow == 1
    children = {(t.name, t.parent, t.status) for t in detail.tasks[4:]}
    assert children == {
        ("build_squares/square_1", "build_squares", "completed"),
        ("build_squares/square_2", "build_squares", "completed"),
        ("build_squares/square_3", "build_squares", "completed"),
        ("static/ten", "static", "completed"),
    }
    assert tasks["build_squares/square_2"].attempts == 1
    (record,) = store.runs()  # type: ignore[attr-defined]
    assert (record.total, dict(record.counts)) == (8, {"completed": 8})
