"""Store files written by flowweaver 0.3.0 (private-module type tags) resume with today's code.

The fixtures were written by ``tests/legacy_store.py`` before the type tags became public names
(``flowweaver:TaskStatus``); every committed result must be reused (``on_changed="error"``
fails a task or item whose fingerprint no longer matches) and rebuilt with its type.
"""

from __future__ import annotations

import asyncio
import enum
import json
import pickle
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

import flowweaver
from flowweaver import (
    FailurePolicy,
    JSONFileStore,
    JSONSerializer,
    SQLiteStore,
    StateManager,
    TaskStatus,
)
from flowweaver._serialize import is_rebuildable

from . import legacy_store as legacy

FIXTURES = Path(__file__).parent / "fixtures"


def open_copy(kind: str, tmp_path: Path) -> SQLiteStore | JSONFileStore:
    name = f"store-0.3.0.{kind}"
    shutil.copyfile(FIXTURES / name, tmp_path / name)
    path = tmp_path / name
    assert b"flowweaver._status:TaskStatus" in path.read_bytes()  # really the old tags
    return SQLiteStore(path) if kind == "sqlite" else JSONFileStore(path, fsync=False)


def kinds(values: Any) -> list[type]:
    return [type(v) for v in values]


@pytest.mark.parametrize("kind", ["sqlite", "json"])
def test_a_store_written_by_0_3_0_resumes_its_workflow_pipeline_and_state(
    kind: str, tmp_path: Path
) -> None:
    with open_copy(kind, tmp_path) as store:
        seen: list[Any] = []

        def last(copy: tuple[Any, ...]) -> int:
            seen.append(copy)
            return len(copy)

        run = legacy.workflow(last).execute(store=store, run_id=legacy.RUN_ID, on_changed="error")
        assert sorted(run.restored) == ["bundle", "copy"]
        assert run.results["copy"] == legacy.BUNDLE
        assert kinds(run.results["copy"]) == kinds(legacy.BUNDLE)
        assert seen == [legacy.BUNDLE]
        assert run.results["last"] == len(legacy.BUNDLE)

        results = asyncio.run(
            legacy.pipeline().run(
                legacy.ITEMS, store=store, run_id=legacy.PIPELINE_RUN_ID, on_changed="error"
            )
        )
        assert [(r.value, r.restored) for r in results] == [
            (tuple(item), True) for item in legacy.ITEMS
        ]
        assert kinds(results[0].value) == kinds(legacy.ITEMS[0])

        value = StateManager(store=store).get(legacy.STATE_KEY)
        assert (value, type(value)) == (legacy.STATE_VALUE, FailurePolicy)


def test_stored_type_tags_and_pickles_name_the_public_namespace() -> None:
    text = JSONSerializer().dumps((TaskStatus.RUNNING, legacy.BUNDLE[5]))
    assert '"cls":"flowweaver:TaskStatus"' in text
    assert '"cls":"flowweaver:StageStats"' in text
    assert "flowweaver._" not in text
    assert b"flowweaver._" not in pickle.dumps(legacy.BUNDLE[:7])
    assert repr(TaskStatus) == "<enum 'TaskStatus'>"
    assert str(flowweaver.Task) == "<class 'flowweaver.Task'>"


def test_every_exported_class_lives_in_the_public_namespace() -> None:
    private = [
        f"{name} ({obj.__module__})"
        for name in flowweaver.__all__
        if isinstance(obj := getattr(flowweaver, name), type) and obj.__module__ != "flowweaver"
    ]
    assert private == []


def test_every_old_tag_of_an_exported_class_still_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    serializer = JSONSerializer(allow_imported=False, classes=[TaskStatus])
    old = '{"__fw__":"enum","cls":"flowweaver._status:TaskStatus","v":"pending"}'
    assert serializer.loads(old) is TaskStatus.PENDING  # registered under its new tag
    from flowweaver._serialize import LEGACY_TAGS

    # As if every private module had moved: the old tags must not depend on them.
    for module in {old.partition(":")[0] for old in LEGACY_TAGS}:
        monkeypatch.delitem(sys.modules, module)
    for old, public in LEGACY_TAGS.items():
        cls = getattr(flowweaver, public.partition(":")[2])
        assert public == f"flowweaver:{cls.__qualname__}"
        if is_rebuildable(cls) and issubclass(cls, enum.Enum):
            member = next(iter(cls))
            stored = f'{{"__fw__":"enum","cls":"{old}","v":{json.dumps(member.value)}}}'
            assert JSONSerializer().loads(stored) is member
