"""The state stores: one protocol, three backends, typed errors that never lose commits."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from flowweaver import (
    ConfigurationError,
    JSONFileStore,
    MemoryStore,
    SerializationError,
    SQLiteStore,
    StateAccessError,
    StateCorruptError,
    StateEntry,
    StateError,
    StateLockedError,
    StateMismatchError,
    StateStore,
    StateVersionError,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from .conftest import FakeClock

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions and flock")


@pytest.fixture(params=["memory", "sqlite", "json"])
def store(request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock) -> Iterator[StateStore]:
    """Each backend, on a fake wall clock starting at 1000."""
    clock.t = 1000.0
    made: StateStore
    if request.param == "memory":
        made = MemoryStore(clock=clock.now)
    elif request.param == "sqlite":
        made = SQLiteStore(tmp_path / "state.db", clock=clock.now)
    else:
        made = JSONFileStore(tmp_path / "state.json", clock=clock.now)
    yield made
    made.close()


def entry(data: str, expires_at: float | None = None) -> StateEntry:
    return StateEntry(data, 1000.0, expires_at, "fp", None)


# -- the protocol, on every backend ----------------------------------------------------------


def test_put_get_replace_and_namespaces_are_apart(store: StateStore) -> None:
    assert isinstance(store, StateStore)
    store.put("a", "k", entry("1"))
    store.put("b", "k", entry("2"))
    store.put("a", "k2", StateEntry("3", 999.0, None, "", '{"m":1}'))
    store.put("a", "k", entry("4"))  # replaces
    assert store.get("a", "k") == entry("4")
    assert store.get("b", "k") == entry("2")
    assert store.get("a", "missing") is None
    assert store.entries("a") == {
        "k": entry("4"),
        "k2": StateEntry("3", 999.0, None, "", '{"m":1}'),
    }
    assert store.entries("nothing") == {}


def test_expired_entries_are_absent_everywhere(store: StateStore, clock: FakeClock) -> None:
    store.put("ns", "short", entry("1", expires_at=1010.0))
    store.put("ns", "long", entry("2", expires_at=2000.0))
    assert set(store.entries("ns")) == {"short", "long"}
    clock.t = 1010.0  # expiry is inclusive: at expires_at the entry is gone
    assert store.get("ns", "short") is None
    assert set(store.entries("ns")) == {"long"}
    assert store.delete("ns", "short") is False  # expired: it was not there
    assert store.delete("ns", "long") is True
    assert store.delete("ns", "long") is False
    assert store.now() == 1010.0


def test_clear_removes_one_namespace(store: StateStore) -> None:
    store.put("a", "k", entry("1"))
    store.put("b", "k", entry("2"))
    store.clear("a")
    assert store.entries("a") == {}
    assert store.entries("b") == {"k": entry("2")}


def test_file_stores_survive_reopening(tmp_path: Path) -> None:
    for make in (
        lambda: SQLiteStore(tmp_path / "s.db"),
        lambda: JSONFileStore(tmp_path / "s.json"),
    ):
        with make() as first:
            first.put("ns", "k", entry("[1,2]"))
        with make() as second:
            assert second.get("ns", "k") == entry("[1,2]")


def test_a_closed_store_says_so(tmp_path: Path) -> None:
    for store in (SQLiteStore(tmp_path / "s.db"), JSONFileStore(tmp_path / "s.json")):
        store.close()
        store.close()  # idempotent
        with pytest.raises(StateAccessError) as info:
            store.get("ns", "k")
        assert str(info.value) == f"state store {store.path!r} cannot be used: the store is closed"


@posix_only
def test_files_and_new_folders_are_owner_only(tmp_path: Path) -> None:
    with SQLiteStore(tmp_path / "new" / "deeper" / "s.db") as db:
        db.put("ns", "k", entry("1"))
        wal = [stat.S_IMODE(os.stat(str(db.path) + s).st_mode) for s in ("-wal", "-shm")]
        assert wal == [0o600, 0o600]
    with JSONFileStore(tmp_path / "other" / "s.json") as js:
        js.put("ns", "k", entry("1"))
    for path in ("new", "new/deeper", "other"):
        assert stat.S_IMODE(os.stat(tmp_path / path).st_mode) == 0o700, path
    for path in ("new/deeper/s.db", "other/s.json", "other/s.json.lock"):
        assert stat.S_IMODE(os.stat(tmp_path / path).st_mode) == 0o600, path


def test_constructor_arguments_are_validated(tmp_path: Path) -> None:
    cases: list[tuple[Callable[[], object], str]] = [
        (lambda: SQLiteStore(tmp_path / "s.db", synchronous="sometimes"),
         "SQLiteStore: synchronous must be one of ['normal', 'full', 'extra'], got 'sometimes'"),
        (lambda: SQLiteStore(tmp_path / "s.db", timeout=-1),
         "SQLiteStore: timeout must be a finite number >= 0, got -1"),
        (lambda: SQLiteStore(""), "SQLiteStore: path must be a file path, got ''"),
        (lambda: JSONFileStore(3),  # type: ignore[arg-type]
         "JSONFileStore: path must be a file path, got 3"),
        (lambda: MemoryStore(serializer=object()),  # type: ignore[arg-type]
         "MemoryStore: serializer must implement Serializer (dumps/loads), got <object object"),
        (lambda: MemoryStore(clock=5),  # type: ignore[arg-type]
         "MemoryStore: clock must be a callable returning seconds, got 5"),
    ]  # fmt: skip
    for make, message in cases:
        with pytest.raises(ConfigurationError) as info:
            make()
        assert str(info.value).startswith(message)


# -- SQLite ----------------------------------------------------------------------------------


def test_sqlite_uses_wal_and_the_chosen_synchronous_level(tmp_path: Path) -> None:
    for level, number in (("normal", 1), ("full", 2)):
        with SQLiteStore(tmp_path / f"{level}.db", synchronous=level) as store:
            conn = store._conn
            assert conn is not None
            assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
            assert conn.execute("PRAGMA synchronous").fetchone() == (number,)


def test_sqlite_not_a_database_is_corrupt_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    path.write_bytes(b"this is not a database" * 100)
    before = path.read_bytes()
    with pytest.raises(StateCorruptError) as info:
        SQLiteStore(path)
    assert str(info.value) == f"state store {str(path)!r} is corrupt: file is not a database"
    assert isinstance(info.value, ValueError)
    assert path.read_bytes() == before


def test_sqlite_truncated_file_is_corrupt_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with SQLiteStore(path) as store:
        for i in range(500):
            store.put("ns", f"k{i}", entry("x" * 200))
        store._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # type: ignore[union-attr]
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    for suffix in ("-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    with pytest.raises(StateCorruptError) as info:
        SQLiteStore(path).entries("ns")
    assert str(info.value) == (
        f"state store {str(path)!r} is corrupt: database disk image is malformed"
    )
    assert path.read_bytes() == data[: len(data) // 2]


def test_sqlite_from_a_newer_schema_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with SQLiteStore(path) as store:
        store.put("ns", "k", entry("1"))
    raw = sqlite3.connect(path)
    raw.execute("UPDATE flowweaver_meta SET value = '7' WHERE key = 'schema_version'")
    raw.commit()
    raw.close()
    with pytest.raises(StateVersionError) as info:
        SQLiteStore(path)
    assert str(info.value) == (
        f"state store {str(path)!r} has schema version 7; this flowweaver reads versions up "
        "to 2 (upgrade flowweaver to open it)"
    )
    assert (info.value.found, info.value.supported) == (7, 2)
    raw = sqlite3.connect(path)
    assert raw.execute("SELECT key, data FROM flowweaver_entries").fetchall() == [("k", "1")]
    raw.close()


def test_sqlite_shares_a_database_with_other_tables(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    raw = sqlite3.connect(path)
    raw.execute("CREATE TABLE users (name TEXT)")
    raw.execute("INSERT INTO users VALUES ('ada')")
    raw.commit()
    raw.close()
    with SQLiteStore(path) as store:
        store.put("ns", "k", entry("1"))
    raw = sqlite3.connect(path)
    assert raw.execute("SELECT name FROM users").fetchall() == [("ada",)]
    raw.close()


def test_sqlite_locked_by_another_writer_times_out_and_loses_nothing(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = SQLiteStore(path, timeout=0.05)
    store.put("ns", "before", entry("1"))
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process's write transaction holds the lock
    try:
        with pytest.raises(StateLockedError) as info:
            store.put("ns", "during", entry("2"))
        assert str(info.value) == (
            f"state store {str(path)!r} is locked by another writer; gave up after 0.05 s"
        )
        assert isinstance(info.value, TimeoutError)
        assert store.get("ns", "before") == entry("1")  # readers are not blocked (WAL)
    finally:
        other.execute("ROLLBACK")
        other.close()
    store.put("ns", "after", entry("3"))
    assert set(store.entries("ns")) == {"before", "after"}
    store.close()


def test_two_sqlite_stores_on_one_file_see_each_others_commits(tmp_path: Path) -> None:
    with SQLiteStore(tmp_path / "s.db") as one, SQLiteStore(tmp_path / "s.db") as two:
        one.put("ns", "a", entry("1"))
        two.put("ns", "b", entry("2"))
        assert set(one.entries("ns")) == set(two.entries("ns")) == {"a", "b"}


def test_a_store_that_cannot_be_created_is_an_access_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("in the way")
    for make, name in ((SQLiteStore, "s.db"), (JSONFileStore, "s.json")):
        path = tmp_path / "file" / name
        with pytest.raises(StateAccessError) as info:
            make(path)
        assert str(info.value) == f"state store {str(path)!r} cannot be used: Not a directory"
        assert isinstance(info.value, OSError)


# -- JSON file -------------------------------------------------------------------------------


def _json_doc(version: object = 1, **namespaces: object) -> str:
    return json.dumps({"format": "flowweaver-state", "version": version, "namespaces": namespaces})


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("", "the file is empty (truncated?)"),
        ('{"format": "flowweaver-state", "vers',
         "not valid JSON (Unterminated string starting at: line 1 column 32 (char 31))"),
        ("[1, 2]", "not a flowweaver state file"),
        ('{"format": "other"}', "not a flowweaver state file"),
        (_json_doc("1"), "unreadable format version '1'"),
        (json.dumps({"format": "flowweaver-state", "version": 1, "namespaces": []}),
         "'namespaces' is not an object"),
        (_json_doc(ns={"k": {"data": 1}}), "malformed entry 'k' in 'ns'"),
        (_json_doc(ns={"k": {"data": "1", "created_at": "x", "expires_at": None,
                             "fingerprint": "", "metadata": None}}),
         "malformed entry 'k' in 'ns'"),
        (_json_doc(ns=[1]), "namespace 'ns' is not an object"),
    ],
)  # fmt: skip
def test_json_corrupt_or_truncated_is_refused_and_never_overwritten(
    tmp_path: Path, content: str, reason: str
) -> None:
    path = tmp_path / "s.json"
    path.write_text(content)
    with pytest.raises(StateCorruptError) as info:
        JSONFileStore(path)
    assert str(info.value) == f"state store {str(path)!r} is corrupt: {reason}"
    assert info.value.reason == reason
    assert path.read_text() == content


def test_json_truncated_after_commits_keeps_the_file_for_recovery(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    store = JSONFileStore(path)
    store.put("ns", "a", entry("1"))
    good = path.read_bytes()
    path.write_bytes(good[: len(good) // 2])  # torn by something outside flowweaver
    with pytest.raises(StateCorruptError):
        store.put("ns", "b", entry("2"))  # refuses to write over what it cannot read
    assert path.read_bytes() == good[: len(good) // 2]


def test_json_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.write_text(_json_doc(2))
    with pytest.raises(StateVersionError) as info:
        JSONFileStore(path)
    assert str(info.value) == (
        f"state store {str(path)!r} has schema version 2; this flowweaver reads versions up "
        "to 1 (upgrade flowweaver to open it)"
    )


def test_json_write_interrupted_before_the_rename_keeps_every_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "s.json"
    store = JSONFileStore(path)
    store.put("ns", "a", entry("1"))

    def crash(src: str, dst: str) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(StateAccessError) as info:
        store.put("ns", "b", entry("2"))
    assert str(info.value) == f"state store {str(path)!r} cannot be used: Input/output error"
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.json", "s.json.lock"]  # no temp
    assert JSONFileStore(path).entries("ns") == {"a": entry("1")}


@posix_only
def test_json_locked_by_another_writer_times_out_and_loses_nothing(tmp_path: Path) -> None:
    import fcntl

    path = tmp_path / "s.json"
    store = JSONFileStore(path, timeout=0.05)
    store.put("ns", "before", entry("1"))
    fd = os.open(str(path) + ".lock", os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)  # another writer holds the lock
    try:
        with pytest.raises(StateLockedError) as info:
            store.put("ns", "during", entry("2"))
        assert str(info.value) == (
            f"state store {str(path)!r} is locked by another writer; gave up after 0.05 s"
        )
        assert store.entries("ns") == {"before": entry("1")}  # reading needs no lock
    finally:
        os.close(fd)
    store.put("ns", "after", entry("3"))
    assert set(JSONFileStore(path).entries("ns")) == {"before", "after"}


def test_json_writers_in_turn_keep_each_others_entries(tmp_path: Path) -> None:
    one, two = JSONFileStore(tmp_path / "s.json"), JSONFileStore(tmp_path / "s.json")
    one.put("ns", "a", entry("1"))
    two.put("ns", "b", entry("2"))  # re-reads under the lock before writing
    one.put("ns", "c", entry("3"))
    assert set(one.entries("ns")) == set(two.entries("ns")) == {"a", "b", "c"}


def test_json_file_is_readable(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    JSONFileStore(path).put("ns", "k", StateEntry("[1]", 5.0, None, "", None))
    assert json.loads(path.read_text()) == {
        "format": "flowweaver-state",
        "version": 1,
        "namespaces": {"ns": {"k": {"data": "[1]", "created_at": 5.0, "expires_at": None,
                                    "fingerprint": "", "metadata": None}}},
    }  # fmt: skip


_WRITER = """
import sys
from flowweaver import JSONFileStore, SQLiteStore, StateEntry
path, me, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
store = SQLiteStore(path) if path.endswith(".db") else JSONFileStore(path)
for i in range(count):
    store.put("shared", f"{me}-{i}", StateEntry(str(i), 0.0))
    store.get("shared", f"{me}-0")
store.close()
"""


@posix_only
@pytest.mark.parametrize(("name", "count"), [("s.db", 200), ("s.json", 40)])
def test_concurrent_writer_processes_lose_nothing(tmp_path: Path, name: str, count: int) -> None:
    path = tmp_path / name
    writers = [
        subprocess.Popen([sys.executable, "-c", _WRITER, str(path), f"w{k}", str(count)],
                         stderr=subprocess.PIPE, text=True)
        for k in range(3)
    ]  # fmt: skip
    for writer in writers:
        _, err = writer.communicate(timeout=60)
        assert writer.returncode == 0, err
    store: StateStore = SQLiteStore(path) if name.endswith(".db") else JSONFileStore(path)
    assert set(store.entries("shared")) == {f"w{k}-{i}" for k in range(3) for i in range(count)}
    if isinstance(store, SQLiteStore):
        assert store._conn is not None
        assert store._conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    store.close()


def test_every_state_error_is_a_flowweaver_error_and_a_builtin() -> None:
    for error, builtin in (
        (StateCorruptError("p", "r"), ValueError),
        (StateVersionError("p", 2, 1), ValueError),
        (StateLockedError("p", 1.0), TimeoutError),
        (StateAccessError("p", "r"), OSError),
        (SerializationError("T", "r"), TypeError),
        (StateMismatchError("t", "w", "r"), RuntimeError),
    ):
        assert isinstance(error, StateError)
        assert isinstance(error, builtin)
