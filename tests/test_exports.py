"""The public namespace is exactly what __all__ says, and nothing private leaks into it."""

from __future__ import annotations

import subprocess
import sys

import pytest

import flowweaver


def test_all_is_sorted_and_unique() -> None:
    assert list(flowweaver.__all__) == sorted(set(flowweaver.__all__))


def test_all_matches_public_names() -> None:
    # dir(), not vars(): names that load on first use are public before anything touched them.
    public = {
        name
        for name in dir(flowweaver)
        if not name.startswith("_") and not isinstance(getattr(flowweaver, name), type(sys))
    }
    assert public == set(flowweaver.__all__)


def test_lazily_loaded_names_resolve_to_their_objects_once() -> None:
    from flowweaver._public import LAZY

    assert set(LAZY) <= set(flowweaver.__all__)
    for name in LAZY:
        first = getattr(flowweaver, name)
        assert vars(flowweaver)[name] is first  # cached: later look-ups are plain attributes
    with pytest.raises(AttributeError, match=r"^module 'flowweaver' has no attribute 'Nope'$"):
        flowweaver.Nope  # type: ignore[attr-defined]  # noqa: B018


def _fresh(code: str) -> list[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout.split()


def test_sequential_and_threaded_workflows_never_import_asyncio() -> None:
    code = (
        "import sys, flowweaver as fw\n"
        "print('asyncio' in sys.modules)\n"
        "wf = fw.Workflow('w')\n"
        "wf.add_task(fw.Task('a', lambda: 1))\n"
        "wf.add_task(fw.Task('b', lambda a: a + 1, retries=1), depends_on=['a'])\n"
        "for executor in (fw.SequentialExecutor(), fw.ThreadedExecutor(2)):\n"
        "    run = wf.execute(executor=executor)\n"
        "    print(run.result('b'), 'asyncio' in sys.modules)\n"
        "fw.AsyncExecutor\n"
        "print('asyncio' in sys.modules)\n"
    )
    assert _fresh(code) == ["False", "2", "False", "2", "False", "True"]


#: What a plain workflow run leaves out (each loads on first use): the event loop, the stores
#: with their history and serializer, telemetry, progress, the exporters, limiters, and the
#: standard library only they need.
RUN_KEEPS_OUT = (
    "asyncio", "flowweaver._store", "flowweaver._history", "flowweaver._history_read",
    "flowweaver._claim", "flowweaver._serialize", "flowweaver._telemetry_spans",
    "flowweaver._progress", "flowweaver._export", "flowweaver._limiter", "socket", "hashlib",
    "platform", "uuid", "datetime", "decimal", "pickle", "signal",
)  # fmt: skip
#: And what ``import flowweaver`` leaves out besides: a run logs, a pool needs futures, and
#: the decorator and builder styles of writing a workflow load when a program names them.
IMPORT_KEEPS_OUT = (
    *RUN_KEEPS_OUT, "logging", "concurrent.futures", "flowweaver._dag", "flowweaver._flow",
    "flowweaver._decorator",
)  # fmt: skip


def test_import_and_a_plain_run_leave_out_what_they_do_not_use() -> None:
    code = (
        "import sys\n"
        "before = set(sys.modules)\n"  # what the interpreter loaded for itself is not ours
        "import flowweaver as fw\n"
        "def loaded(names): return sorted(set(names) & set(sys.modules) - before) or '-'\n"
        f"print(loaded({IMPORT_KEEPS_OUT!r}))\n"
        "wf = fw.Workflow('w')\n"
        "wf.add_task(fw.Task('a', lambda: 1))\n"
        "wf.add_task(fw.Task('b', lambda a: a + 1, retries=1), depends_on=['a'])\n"
        "for executor in (fw.SequentialExecutor(), fw.ThreadedExecutor(2)):\n"
        "    assert wf.execute(executor=executor).result('b') == 2\n"
        f"print(loaded({RUN_KEEPS_OUT!r}))\n"
        "fw.MemoryStore\n"
        "print('flowweaver._store' in sys.modules)\n"
    )
    assert _fresh(code) == ["-", "-", "True"]


def test_run_options_and_store_protocols_resolve_their_annotations() -> None:
    # Users' tools (validators, docs) read RunOptions' hints at run time; the stores it names
    # load lazily, and so does concurrent.futures, so the names must resolve without them: in
    # a fresh process. (Any concurrent.futures.Executor is an Executor to a type checker.)
    code = (
        "import typing, flowweaver as fw\n"
        "hints = typing.get_type_hints(fw.RunOptions)\n"
        "print(hints['store'] is fw.StateStore, hints['clock'] is fw.Clock)\n"
        "print(typing.get_type_hints(fw.StateStore)['serializer'] is fw.Serializer)\n"
        "print(typing.get_type_hints(fw.PoolExecutor.__init__)['executor'] is fw.Executor)\n"
        "print(sorted(typing.get_type_hints(fw.StateEntry)))\n"
    )
    assert _fresh(code) == [
        "True", "True", "True", "True",
        "['created_at',", "'data',", "'expires_at',", "'fingerprint',", "'metadata']",
    ]  # fmt: skip


def test_a_class_loaded_by_flowweaver_itself_still_claims_the_public_module() -> None:
    # The pipeline module imports the tracker's module directly, before any program names it.
    code = (
        "import flowweaver._tracker as t, flowweaver._pipeline_types as p\n"
        "print(t.StatusTracker.__module__, p.ItemStatus.__module__)\n"
    )
    assert _fresh(code) == ["flowweaver", "flowweaver"]


def test_public_objects_claim_the_public_module() -> None:
    # Every exported object is defined in a private module and re-exported on purpose.
    for name in flowweaver.__all__:
        module = getattr(getattr(flowweaver, name), "__module__", "flowweaver")
        assert module.startswith("flowweaver"), name


def test_core_imports_only_the_standard_library() -> None:
    code = (
        "import sys, flowweaver\n"
        "optional = {'uvloop', 'rich', 'dask', 'distributed'}\n"
        "print(sorted(optional & set(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_process_machinery_loads_only_when_a_process_executor_is_made() -> None:
    code = (
        "import sys, flowweaver\n"
        "print('multiprocessing' in sys.modules)\n"
        "flowweaver.ProcessExecutor(1)\n"
        "print('multiprocessing' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.split() == ["False", "True"]


def test_package_ships_py_typed() -> None:
    from importlib.resources import files

    assert files("flowweaver").joinpath("py.typed").is_file()
