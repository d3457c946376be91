"""Stores under hostile files: typed refusals that change nothing, expiry that frees space,
and temporary files a killed writer left behind."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from flowweaver import (
    JSONFileStore,
    MemoryStore,
    SerializationError,
    SQLiteStore,
    StateCorruptError,
    StateEntry,
    StateManager,
    StateStore,
    StateVersionError,
    Task,
    Workflow,
    WorkflowFailedError,
)
from flowweaver._store import PURGE_EVERY

if TYPE_CHECKING:
    from collections.abc import Iterator

    from .conftest import FakeClock

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="flock")


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- 5: JSON files no parser can take -------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("[" * 100_000 + "]" * 100_000, "JSON nested too deeply to read"),
        (
            '{"format": "flowweaver-state", "version": 1, "n": ' + "7" * 5000 + "}",
            "not valid JSON (Exceeds the limit (4300 digits) for integer string conversion: "
            "value has 5000 digits; use sys.set_int_max_str_digits() to increase the limit)",
        ),
    ],
    ids=["deep", "huge-int"],
)
def test_json_store_unparseable_file_is_corrupt_naming_it(
    tmp_path: Path, text: str, reason: str
) -> None:
    path = tmp_path / "s.json"
    path.write_text(text)
    with pytest.raises(StateCorruptError) as info:
        JSONFileStore(path)
    assert str(info.value) == f"state store {str(path)!r} is corrupt: {reason}"
    assert (info.value.path, info.value.reason) == (str(path), reason)
    assert path.read_text() == text


# -- 6: a refused SQLite file is left byte-for-byte ------------------------------------------


def _newer(path: Path) -> None:
    raw = sqlite3.connect(path)  # a rollback-journal file, as a newer release might leave
    raw.execute("CREATE TABLE flowweaver_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    raw.execute("INSERT INTO flowweaver_meta VALUES ('schema_version', '99')")
    raw.commit()
    raw.close()


def _damaged(path: Path) -> None:
    with SQLiteStore(path) as store:
        store.put("ns", "k", StateEntry("1", 0.0))
    raw = sqlite3.connect(path)
    raw.execute("PRAGMA journal_mode=DELETE")  # so that only reading it creates no files
    (root,) = raw.execute(
        "SELECT rootpage FROM sqlite_master WHERE name = 'flowweaver_entries'"
    ).fetchone()
    (page_size,) = raw.execute("PRAGMA page_size").fetchone()
    raw.close()
    with open(path, "r+b") as file:  # garbage over the entries table's root page
        file.seek((root - 1) * page_size)
        file.write(b"\xff" * page_size)


@pytest.mark.parametrize(
    ("make", "error"),
    [(_newer, StateVersionError), (_damaged, StateCorruptError)],
    ids=["newer-schema", "damaged"],
)
def test_sqlite_refused_file_stays_byte_for_byte(
    tmp_path: Path, make: object, error: type[Exception]
) -> None:
    path = tmp_path / "s.db"
    make(path)  # type: ignore[operator]
    before = digest(path)
    with pytest.raises(error) as info:
        SQLiteStore(path)
    assert str(path) in str(info.value)
    assert digest(path) == before  # not switched to WAL (which rewrites the header)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.db"]


def test_sqlite_version_one_file_without_the_expiry_index_gains_it(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with SQLiteStore(path) as store:
        store.put("ns", "k", StateEntry("1", 0.0))
    raw = sqlite3.connect(path)
    raw.execute("DROP INDEX flowweaver_expiry")  # as the first release wrote it
    raw.commit()
    raw.close()
    with SQLiteStore(path) as store:
        assert store.get("ns", "k") == StateEntry("1", 0.0)
    raw = sqlite3.connect(path)
    names = {row[0] for row in raw.execute("SELECT name FROM sqlite_master")}
    raw.close()
    assert "flowweaver_expiry" in names


# -- 7: lone surrogates on SQLite ------------------------------------------------------------


def test_sqlite_lone_surrogate_is_a_serialization_error_naming_it(tmp_path: Path) -> None:
    with SQLiteStore(tmp_path / "s.db") as store:
        for call in (
            lambda: store.put("ns", "bad\ud800", StateEntry("1", 0.0)),
            lambda: store.get("ns", "bad\ud800"),
            lambda: store.delete("ns", "bad\ud800"),
        ):
            with pytest.raises(SerializationError) as info:
                call()
            assert str(info.value) == (
                "cannot store a value of type 'str': 'bad\\ud800' contains a lone surrogate "
                "at position 3, and SQLiteStore holds only valid Unicode text"
            )
        assert store.entries("ns") == {}


def test_a_task_named_with_a_lone_surrogate_fails_typed_on_sqlite(tmp_path: Path) -> None:
    workflow = Workflow("w")
    workflow.add_task(Task(name="t\udcff", fn=lambda: 1))
    with SQLiteStore(tmp_path / "s.db") as store, pytest.raises(WorkflowFailedError) as info:
        workflow.execute(store=store, run_id="r")
    (failure,) = info.value.failures
    assert isinstance(failure.__cause__, SerializationError)
    assert "'t\\udcff' contains a lone surrogate" in str(failure.__cause__)


def test_json_store_keeps_a_lone_surrogate_losslessly(tmp_path: Path) -> None:
    JSONFileStore(tmp_path / "s.json").put("ns", "k\ud800", StateEntry("v\udfff", 0.0))
    assert JSONFileStore(tmp_path / "s.json").entries("ns") == {
        "k\ud800": StateEntry("v\udfff", 0.0)
    }


# -- 11: expired entries are removed, not only hidden ----------------------------------------


@pytest.fixture(params=["memory", "sqlite", "json"])
def store(request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock) -> Iterator[StateStore]:
    clock.t = 1000.0
    made: StateStore
    if request.param == "memory":
        made = MemoryStore(clock=clock.now)
    elif request.param == "sqlite":
        made = SQLiteStore(tmp_path / "state.db", clock=clock.now)
    else:
        made = JSONFileStore(tmp_path / "state.json", clock=clock.now, fsync=False)
    yield made
    made.close()


def _stored_keys(store: StateStore) -> set[tuple[str, str]]:
    """Every (namespace, key) physically held, expired or not."""
    if isinstance(store, MemoryStore):
        return {(ns, k) for ns, entries in store._data.items() for k in entries}
    if isinstance(store, SQLiteStore):
        conn = store._conn
        assert conn is not None
        return set(conn.execute("SELECT namespace, key FROM flowweaver_entries"))
    assert isinstance(store, JSONFileStore)
    reread = JSONFileStore(store.path)
    reread._refresh()
    return {(ns, k) for ns, entries in reread._data.items() for k in entries}


def test_writing_purges_expired_entries(store: StateStore, clock: FakeClock) -> None:
    store.put("kv:a", "old", StateEntry("1", 1000.0, 1010.0))
    store.put("run", "keep", StateEntry("2", 1000.0))
    clock.t = 2000.0
    for k in range(PURGE_EVERY):  # enough writes for every backend to sweep once
        store.put("kv:b", f"k{k}", StateEntry("3", 2000.0, 5000.0))
    held = _stored_keys(store)
    assert ("kv:a", "old") not in held
    assert ("run", "keep") in held
    assert len(held) == PURGE_EVERY + 1


def test_purge_removes_expired_entries_of_one_namespace_or_all(
    store: StateStore, clock: FakeClock
) -> None:
    for ns in ("a", "b"):
        store.put(ns, "old", StateEntry("1", 1000.0, 1010.0))
        store.put(ns, "new", StateEntry("2", 1000.0, 3000.0))
    clock.t = 2000.0
    purge = store.purge  # type: ignore[attr-defined]
    if isinstance(store, JSONFileStore):  # its every rewrite leaves out all that expired
        assert (purge("a"), purge()) == (2, 0)
    else:
        assert purge("a") == 1
        assert _stored_keys(store) == {("a", "new"), ("b", "old"), ("b", "new")}
        assert purge() == 1
    assert purge() == 0
    assert _stored_keys(store) == {("a", "new"), ("b", "new")}


def test_state_manager_purge_frees_the_file(tmp_path: Path, clock: FakeClock) -> None:
    clock.t = 1000.0
    path = tmp_path / "kv.json"
    with StateManager(path, clock=clock.now) as state:
        for k in range(50):
            state.set(f"k{k}", "x" * 100, ttl=10)
        state.set("forever", 1)
        size = path.stat().st_size
        clock.t = 2000.0
        assert state.purge() == 50
        assert path.stat().st_size < size / 10
        assert state.get_all() == {"forever": 1}

    class Bare(MemoryStore):  # a store of one's own without purge()
        purge = None  # type: ignore[assignment]

    assert StateManager(store=Bare()).purge() == 0


# -- 14: temporary files a killed writer left behind ----------------------------------------


@posix_only
def test_json_store_removes_only_its_own_leftover_temp_files(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    JSONFileStore(path).put("ns", "k", StateEntry("1", 0.0))
    leftovers = [".s.json.ab3_9xyz.tmp", ".s.json.00000000.tmp"]
    others = [
        ".t.json.ab3_9xyz.tmp",  # another store's
        ".s.json.x.json.ab3_9xyz.tmp",  # the store "s.json.x.json"'s
        ".s.json.ab3.tmp",  # not a name the store makes
        "s.json.ab3_9xyz.tmp",
    ]
    for name in [*leftovers, *others]:
        (tmp_path / name).write_text("partial")
    os.symlink(tmp_path / "elsewhere", tmp_path / ".s.json.symlinkx.tmp")
    store = JSONFileStore(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["s.json", "s.json.lock", ".s.json.symlinkx.tmp", *others]
    )
    assert store.entries("ns") == {"k": StateEntry("1", 0.0)}


@posix_only
def test_json_store_leaves_temp_files_alone_while_a_writer_holds_the_lock(
    tmp_path: Path,
) -> None:
    import fcntl

    path = tmp_path / "s.json"
    JSONFileStore(path).put("ns", "k", StateEntry("1", 0.0))
    (tmp_path / ".s.json.inflight.tmp").write_text("a live writer's")
    fd = os.open(str(path) + ".lock", os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        JSONFileStore(path, timeout=5.0)  # does not wait for the lock, and touches nothing
        assert (tmp_path / ".s.json.inflight.tmp").exists()
    finally:
        os.close(fd)
    JSONFileStore(path)
    assert not (tmp_path / ".s.json.inflight.tmp").exists()
