"""Flowkit's StateManager, on every store (the seed's examples first, import line changed)."""

from __future__ import annotations

import datetime as dt
import os
import stat
import sys
from typing import TYPE_CHECKING

import pytest

from flowweaver import (
    ConfigurationError,
    JSONFileStore,
    MemoryStore,
    SerializationError,
    SQLiteStore,
    StateManager,
    Task,
    Workflow,
)

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from .conftest import FakeClock


def test_seed_state_persistence_example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    data = {"rows": [1, 2, 3], "fetched": dt.date(2024, 6, 1)}
    # --- the seed's example, verbatim but for the import ---
    from flowweaver import StateManager

    # In-memory caching
    state = StateManager()

    # File-based persistence
    state = StateManager(storage_path=".flowkit/state.json", default_ttl=3600)

    # Store and retrieve results
    state.set("task_result", data, ttl=3600)
    cached = state.get("task_result")
    # --- end of the example ---
    assert cached == data
    assert isinstance(state.store, JSONFileStore)
    assert StateManager(storage_path=".flowkit/state.json").get("task_result") == data
    if sys.platform != "win32":
        assert stat.S_IMODE(os.stat(".flowkit").st_mode) == 0o700
        assert stat.S_IMODE(os.stat(".flowkit/state.json").st_mode) == 0o600


@pytest.fixture(params=["memory", "json", "sqlite"])
def manager(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock
) -> Iterator[StateManager]:
    path = {"memory": None, "json": tmp_path / "s.json", "sqlite": tmp_path / "s.sqlite"}
    with StateManager(path[request.param], clock=clock.now) as state:
        yield state


def test_set_get_has_delete(manager: StateManager) -> None:
    manager.set("a", (1, {2}))
    assert manager.get("a") == (1, {2}) and isinstance(manager.get("a"), tuple)
    assert manager.has("a") and "a" in manager
    assert manager.get("missing") is None
    assert manager.get("missing", "fallback") == "fallback"
    assert not manager.has("missing") and "missing" not in manager and 3 not in manager
    assert manager.delete("a") is True
    assert manager.delete("a") is False
    assert not manager.has("a")


def test_a_stored_none_is_a_value_not_a_miss(manager: StateManager) -> None:
    manager.set("nothing", None)
    assert manager.has("nothing")
    assert manager.get("nothing", "default") is None
    assert manager.get_all() == {"nothing": None}
    assert manager.delete("nothing") is True


def test_expired_entries_are_absent_for_every_method(
    manager: StateManager, clock: FakeClock
) -> None:
    manager.set("short", 1, ttl=10)
    manager.set("forever", 2)
    clock.t = 9.99
    assert manager.get_all() == {"short": 1, "forever": 2}
    clock.t = 10.0
    assert manager.get("short", "gone") == "gone"
    assert not manager.has("short")
    assert manager.get_all() == {"forever": 2}
    assert len(manager) == 1
    assert manager.delete("short") is False


def test_default_ttl_applies_when_set_gets_none(tmp_path: Path, clock: FakeClock) -> None:
    state = StateManager(tmp_path / "s.db", default_ttl=60, clock=clock.now)
    state.set("default", "a")
    state.set("own", "b", ttl=600)
    clock.t = 60.0
    assert state.get_all() == {"own": "b"}
    state.close()


def test_clear_and_get_all(manager: StateManager) -> None:
    for i in range(3):
        manager.set(f"k{i}", i)
    assert manager.get_all() == {"k0": 0, "k1": 1, "k2": 2}
    manager.clear()
    assert manager.get_all() == {}
    assert len(manager) == 0


def test_metadata_is_stored_beside_the_value(manager: StateManager) -> None:
    manager.set("report", "done", metadata={"rows": 3, "at": dt.date(2024, 1, 1)})
    manager.set("plain", "x")
    assert manager.get_metadata("report") == {"rows": 3, "at": dt.date(2024, 1, 1)}
    assert manager.get_metadata("plain") is None
    assert manager.get_metadata("missing") is None


def test_storage_path_suffix_picks_the_store(tmp_path: Path) -> None:
    kinds = {
        "s.json": JSONFileStore, "s.db": SQLiteStore, "s.sqlite": SQLiteStore,
        "s.sqlite3": SQLiteStore, "S.DB": SQLiteStore,
    }  # fmt: skip
    for name, kind in kinds.items():
        with StateManager(tmp_path / name) as state:
            assert type(state.store) is kind
    assert type(StateManager().store) is MemoryStore
    with pytest.raises(ConfigurationError) as info:
        StateManager("state.txt")
    assert str(info.value) == (
        "StateManager: storage_path must end in .json (JSON file) or .db, .sqlite, .sqlite3 "
        "(SQLite), got 'state.txt'"
    )


def test_managers_share_a_store_by_namespace_apart_from_runs(tmp_path: Path) -> None:
    with SQLiteStore(tmp_path / "s.db") as store:
        first = StateManager(store=store, namespace="first")
        second = StateManager(store=store, namespace="second")
        first.set("k", 1)
        second.set("k", 2)
        wf = Workflow("k")
        wf.add_task(Task(name="k", fn=lambda: 3))
        wf.execute(store=store, run_id="r")
        assert (first.get("k"), second.get("k")) == (1, 2)
        first.clear()
        assert (first.get_all(), second.get_all()) == ({}, {"k": 2})
        first.close()  # not its store: still open
        assert second.get("k") == 2


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: StateManager(default_ttl=-1),
         "StateManager: default_ttl must be a finite number > 0, got -1"),
        (lambda: StateManager(namespace=""),
         "StateManager: namespace must be a non-empty str, got ''"),
        (lambda: StateManager("x.json", store=MemoryStore()),
         "StateManager: give either store= or storage_path/serializer/clock, not both"),
        (lambda: StateManager(store={}),  # type: ignore[arg-type]
         "StateManager: store must implement StateStore, got {}"),
        (lambda: StateManager(42),  # type: ignore[arg-type]
         "StateManager: storage_path must be a str or path, got 42"),
        (lambda: StateManager().set(1, "v"),  # type: ignore[arg-type]
         "StateManager: keys must be str, got 1"),
        (lambda: StateManager().set("k", "v", ttl=0),
         "StateManager.set: ttl must be a finite number > 0, got 0"),
        (lambda: StateManager().set("k", "v", metadata=[1]),  # type: ignore[arg-type]
         "StateManager.set: metadata must be a dict or None, got [1]"),
    ],
)  # fmt: skip
def test_bad_arguments_are_named(make: object, message: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        make()  # type: ignore[operator]
    assert str(info.value) == message


def test_a_value_without_a_stored_form_names_the_key() -> None:
    with pytest.raises(SerializationError) as info:
        StateManager().set("sock", object())
    assert str(info.value) == (
        "cannot store a value of type 'object': it has no JSON form (plug in a Serializer that "
        "can store it) (state key 'sock')"
    )
