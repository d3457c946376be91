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
