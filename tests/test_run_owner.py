"""One owner per durable run id: a second run is refused (or waits), a killed owner's claim
goes with it. Owners are real processes (``owner_worker.py``) or runs in this process."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from flowweaver import (
    ConfigurationError,
    MemoryStore,
    Pipeline,
    RunLockedError,
    SQLiteStore,
    Stage,
    StateLockedError,
    StateStore,
    Task,
    ThreadedExecutor,
    Workflow,
    WorkflowRun,
)

from .conftest import run
from .owner_worker import open_store, workflow

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="claims use flock")

ROOT = Path(__file__).resolve().parent.parent
WAIT = 30.0


@pytest.fixture(params=["db", "json"])
def path(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return str(tmp_path / f"state.{request.param}")


@pytest.fixture
def owner(path: str) -> Iterator[subprocess.Popen[str]]:
    """A process that owns run "nightly" of workflow "owned": it committed ``first`` and
    holds in ``gate`` until a line is written to its standard input."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.owner_worker", path],
        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert process.stdout is not None
    try:
        assert process.stdout.readline() == "HOLDING\n"
        yield process
    finally:
        process.kill()
        process.communicate(timeout=WAIT)


def let_go(process: subprocess.Popen[str]) -> str:
    out, _ = process.communicate("\n", timeout=WAIT)
    assert process.returncode == 0
    return out


def run_here(path: str, **options: float | None) -> WorkflowRun:
    store = open_store(path)
    try:
        return workflow().execute(store=store, run_id="nightly", **options)  # type: ignore[arg-type]
    finally:
        store.close()


def test_a_second_process_is_refused_naming_the_run_and_its_holder(
    path: str, owner: subprocess.Popen[str]
) -> None:
    with pytest.raises(RunLockedError) as info:
        run_here(path)
    error = info.value
    assert isinstance(error, StateLockedError) and isinstance(error, TimeoutError)
    assert error.holder is not None
    assert error.holder.startswith(f"process {owner.pid} on host ")
    assert str(error) == (
        f"workflow 'owned' run 'nightly' is already in progress, owned by {error.holder} "
        f"(store {path!r})"
    )
    assert (error.name, error.run_id, error.path, error.timeout) == ("owned", "nightly", path, 0)
    assert let_go(owner) == "DONE\n"  # the owner went on undisturbed
    assert run_here(path).restored == ["first", "gate", "last"]


def test_a_killed_owner_leaves_no_claim_and_the_run_resumes(
    path: str, owner: subprocess.Popen[str]
) -> None:
    owner.kill()  # SIGKILL: no cleanup code runs
    owner.wait(timeout=WAIT)
    run = run_here(path)
    assert run.restored == ["first"]
    assert run.results == {"first": 1, "gate": 2, "last": 20}


class _Waiting(logging.Handler):
    """Sets ``seen`` when a run logs that it waits for the owner."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.seen = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if "waiting for it to finish" in record.getMessage():
            self.seen.set()


def test_owner_timeout_waits_for_the_owner_to_finish(
    path: str, owner: subprocess.Popen[str]
) -> None:
    handler = _Waiting()
    state_logger = logging.getLogger("flowweaver.state")
    state_logger.addHandler(handler)
    level = state_logger.level
    state_logger.setLevel(logging.INFO)
    outcome: list[WorkflowRun | BaseException] = []

    def second() -> None:
        try:
            outcome.append(run_here(path, owner_timeout=None))
        except BaseException as error:  # reported below
            outcome.append(error)

    thread = threading.Thread(target=second)
    try:
        thread.start()
        assert handler.seen.wait(WAIT)  # it found the run owned, and waits
        assert not outcome
        assert let_go(owner) == "DONE\n"
        thread.join(WAIT)
    finally:
        state_logger.removeHandler(handler)
        state_logger.setLevel(level)
    (run,) = outcome
    assert isinstance(run, WorkflowRun)
    assert run.restored == ["first", "gate", "last"]  # all of it done by the owner


def test_owner_timeout_gives_up_when_the_owner_goes_on(
    path: str, owner: subprocess.Popen[str]
) -> None:
    with pytest.raises(RunLockedError) as info:
        run_here(path, owner_timeout=0.05)
    assert str(info.value).endswith(f"(store {path!r}); gave up after 0.05 s")
    assert info.value.timeout == 0.05


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_two_runs_of_one_id_in_one_process_have_one_owner(kind: str, tmp_path: Path) -> None:
    store: StateStore = MemoryStore() if kind == "memory" else SQLiteStore(tmp_path / "s.db")
    started, go = threading.Event(), threading.Event()

    def hold() -> int:
        started.set()
        assert go.wait(WAIT)
        return 1

    first = Workflow("w")
    first.add_task(Task(name="hold", fn=hold))
    other = Workflow("w")
    other.add_task(Task(name="hold", fn=lambda: 2))
    with ThreadedExecutor(max_workers=2) as executor:
        thread = threading.Thread(target=lambda: executor.execute(first, store=store, run_id="r"))
        thread.start()
        try:
            assert started.wait(WAIT)
            with pytest.raises(RunLockedError) as info:
                executor.execute(other, store=store, run_id="r")
            assert info.value.holder is not None
            assert info.value.holder.startswith(f"process {os.getpid()} on host ")
            other.execute(store=store, run_id="another id")  # other run ids are free
        finally:
            go.set()
            thread.join(WAIT)
    assert first.execute(store=store, run_id="r").restored == ["hold"]  # released at the end
    store.close()


def test_a_failed_or_refused_run_releases_its_claim(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db")
    bad = Workflow("w")
    bad.add_task(Task(name="boom", fn=lambda: 1 / 0))
    for _ in range(2):
        with pytest.raises(RuntimeError):
            bad.execute(store=store, run_id="r")
    with pytest.raises(TypeError):
        bad.execute(store=store, run_id="r", owner_timeout="soon")  # type: ignore[arg-type]
    with pytest.raises(RuntimeError):
        bad.execute(store=store, run_id="r")
    assert os.listdir(tmp_path / "s.db.runs") == []  # every claim file went with its claim
    store.close()


# -- pipelines: one owner per run id, and item ids unique in a run -------------------------


def test_a_checkpointed_pipeline_run_id_has_one_owner(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db")
    inside = asyncio.Event()
    go = asyncio.Event()

    async def hold(x: int) -> int:
        inside.set()
        await go.wait()
        return x

    async def main() -> None:
        first = Pipeline([Stage("S", workers=1, tasks=[hold])], name="p")
        second = Pipeline([Stage("S", workers=1, tasks=[hold])], name="p")
        running = asyncio.ensure_future(first.run([1], store=store, run_id="r"))
        await inside.wait()
        with pytest.raises(RunLockedError) as info:
            await second.run([1], store=store, run_id="r")
        assert str(info.value).startswith("pipeline 'p' run 'r' is already in progress, owned by")
        go.set()
        assert [r.value for r in await running] == [1]
        again = await second.run([1], store=store, run_id="r")  # released when it ended
        assert [r.restored for r in again] == [True]

    run(main())
    store.close()


def test_an_item_id_fed_twice_in_a_checkpointed_run_is_refused_naming_it() -> None:
    calls: list[object] = []

    def work(x: object) -> object:
        calls.append(x)
        return x

    pipeline = Pipeline([Stage("S", workers=1, tasks=[work])], name="p")
    items = [{"id": "a", "value": 1}, {"id": "b", "value": 2}, {"id": "a", "value": 3}]
    results = run(pipeline.run(items, store=MemoryStore(), run_id="r"))
    assert [(r.id, r.value) for r in results] == [("a", 1), ("b", 2)]
    assert calls == [1, 2]
    [failure] = pipeline.get_error_summary().failed_items
    assert isinstance(failure.error, ConfigurationError)
    assert (failure.item_id, failure.attempts) == ("a", 0)
    assert str(failure.error) == (
        "pipeline 'p': item id 'a' was fed twice in run 'r'; ids must be unique in a "
        "checkpointed run (the second would reuse or replace the first one's committed result)"
    )
    # Without a checkpoint nothing is at stake: repeated ids run as before.
    assert len(run(pipeline.run(items))) == 3


def test_a_claim_nothing_refers_to_any_more_frees_its_run_id(tmp_path: Path) -> None:
    import gc

    store = SQLiteStore(tmp_path / "s.db")
    label = ("workflow", "w", "r")
    claim = store.claim("ns", label, 0.0)
    with pytest.raises(RunLockedError):
        store.claim("ns", label, 0.0)
    del claim
    gc.collect()
    store.claim("ns", label, 0.0).release()
    store.close()
