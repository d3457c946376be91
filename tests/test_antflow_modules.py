"""AntFlow 0.10's submodule imports work with only the package name changed."""

from __future__ import annotations

import importlib

import pytest

import flowweaver

ANTFLOW_SUBMODULES = {
    "display": [
        "BaseDashboard",
        "CompactDashboard",
        "DetailedDashboard",
        "FullDashboard",
        "ProgressDisplay",
    ],
    "context": [
        "call_rate_has_capacity",
        "concurrency_limit",
        "get_worker_state",
        "rate_limit",
        "set_task_status",
    ],
}


@pytest.mark.parametrize("module", sorted(ANTFLOW_SUBMODULES))
def test_antflow_submodules_reexport_the_public_objects(module: str) -> None:
    mod = importlib.import_module(f"flowweaver.{module}")
    assert sorted(mod.__all__) == ANTFLOW_SUBMODULES[module]
    for name in mod.__all__:
        assert getattr(mod, name) is getattr(flowweaver, name)
