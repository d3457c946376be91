"""The public namespace is exactly what __all__ says, and nothing private leaks into it."""

from __future__ import annotations

import subprocess
import sys

import flowweaver


def test_all_is_sorted_and_unique() -> None:
    assert list(flowweaver.__all__) == sorted(set(flowweaver.__all__))


def test_all_matches_public_names() -> None:
    public = {
        name
        for name in vars(flowweaver)
        if not name.startswith("_") and not isinstance(getattr(flowweaver, name), type(sys))
    }
    assert public == set(flowweaver.__all__)


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
