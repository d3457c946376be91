"""The package's layers, held by a test (trio's export test, applied to architecture).

Every module of ``flowweaver`` belongs to exactly one layer of :data:`LAYERS`, lowest first. A
module may import (at the top, lazily inside a function, or under ``TYPE_CHECKING``) modules of
its own layer and of the layers below it, never above — except the imports named in
:data:`ALLOWED`, each with its reason. Within a layer, imports that run (top level or lazy)
form no cycle; type-only imports may go both ways there (they order nothing at run time).

``docs/architecture.md`` explains the layers to people; this file is where they are decided.
"""

from __future__ import annotations

import ast
import pathlib
from dataclasses import dataclass

import pytest

import flowweaver

PACKAGE = pathlib.Path(flowweaver.__file__).parent

#: Layer name -> its modules (names without the ``flowweaver.`` prefix), lowest layer first.
LAYERS: dict[str, tuple[str, ...]] = {
    # What everything uses: errors, statuses, time, validation, values and their stored form,
    # how one call runs, the run record.
    "foundation": (
        "_version", "_public", "_errors", "_log", "_checks", "_status", "_clock", "_retry",
        "_store_types", "_serialize", "_fingerprint", "_binding", "_calls", "_channel", "_logging",
        "_aimd", "_limiter_parts", "_limiter", "_elements", "_run",
    ),
    # Where state persists: stores, run history.
    "state": (
        "_claim", "_store", "_history", "_history_read", "_json_store", "_sqlite_store",
        "_state_manager", "_recording",
    ),
    # What a workflow is, how its options read, and who watches a run; pipeline records.
    "model": (
        "_task", "_subflow", "_scope", "_graph", "_workflow", "_export", "_events", "_progress",
        "_options", "_pipeline_types",
    ),
    # The one scheduling state machine (and its durable half, and telemetry of it).
    "engine": (
        "_telemetry", "_telemetry_spans", "_map_state", "_nesting", "_engine", "_durable",
        "_map_elements", "_mapping", "_durable_map", "_engine_factory", "_ready", "_gates",
        "_release",
    ),
    # How a run waits: the inline, pool and asyncio drivers, and what they send calls to.
    "drivers": ("_lanes", "_drivers", "_handoff", "_offload", "_async_driver"),
    # Where a call runs; _resolve turns an executor= argument into an executor.
    "executors": (
        "_executors", "_process_pool", "_process", "_pool", "_pool_wait", "_async", "_dask",
        "_dask_ahead", "_dask_logs", "_resolve",
    ),
    # The decorator and builder styles of writing a workflow.
    "authoring": ("_decorator", "_dag", "_flow"),
    # What a pipeline run shows while it runs.
    "display": ("_dashboard_base", "_dashboard_render", "_dashboards", "_dashboard"),
    # The item-stream pipeline, on the executors.
    "pipeline": (
        "_stage", "_tracker", "_stage_items", "_stage_context", "_stage_plain", "_stage_permits", "_stage_run", "_pipeline_run", "_pipeline_state",
        "_pipeline_stats", "_pipeline", "_pipeline_builder",
    ),
    # The command line and the local web UI.
    "cli": ("_cli_runs", "_ui_assets", "_ui", "_cli", "__main__"),
    # The public namespaces.
    "api": ("__init__", "testing", "display", "context"),
}  # fmt: skip

#: The only imports that may point up, ``(importer, imported) -> why``. The seed API runs a
#: model object itself (``task.execute()``, ``workflow.execute()``): that one way up to the
#: executors goes through _resolve, which picks the executor.
ALLOWED: dict[tuple[str, str], str] = {
    ("_task", "_resolve"): "Task.execute() / execute_async(): the seed API runs a task",
    ("_workflow", "_resolve"): "Workflow.execute() / execute_async(): the seed API runs a workflow",
}


#: Cycles not broken yet, each with what breaks it. Keep this empty: a new entry needs a reason
#: a reviewer accepts.
KNOWN_CYCLES: dict[frozenset[str], str] = {}


@dataclass(frozen=True, slots=True)
class Import:
    importer: str
    imported: str
    line: int
    kind: str  # "top", "lazy" or "type"

    def where(self) -> str:
        return f"flowweaver/{self.importer}.py:{self.line} ({self.kind})"


def module_names() -> set[str]:
    return {p.stem for p in PACKAGE.glob("*.py")}


def imports_of(name: str, source: str, known: set[str]) -> list[Import]:
    """Every import of a flowweaver module in ``source``, with its kind."""
    found: list[Import] = []

    def visit(node: ast.AST, kind: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child.test):
                for part in child.body:
                    visit_node(part, "type")
                for part in child.orelse:
                    visit_node(part, kind)
                continue
            visit_node(child, kind)

    def visit_node(node: ast.AST, kind: str) -> None:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            kind = "lazy" if kind == "top" else kind
        line = getattr(node, "lineno", 0)
        found.extend(Import(name, target, line, kind) for target in _targets(node, known))
        visit(node, kind)

    visit(ast.parse(source), "top")
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _targets(node: ast.AST, known: set[str]) -> list[str]:
    if isinstance(node, ast.ImportFrom) and (
        node.level == 1 or (node.level == 0 and (node.module or "").split(".")[0] == "flowweaver")
    ):
        module = node.module or ""
        if node.level == 0:
            module = module.removeprefix("flowweaver").removeprefix(".")
        if module:
            return [module.split(".")[0]]
        # `from . import _scope`: modules by name; `from . import __version__`: the package
        return [a.name if a.name in known else "__init__" for a in node.names]
    if isinstance(node, ast.Import):
        return [
            (a.name.split(".")[1] if "." in a.name else "__init__")
            for a in node.names
            if a.name.split(".")[0] == "flowweaver"
        ]
    return []


def layer_of() -> dict[str, int]:
    return {m: k for k, modules in enumerate(LAYERS.values()) for m in modules}


def problems(sources: dict[str, str]) -> list[str]:
    """What breaks the layering in ``sources`` (module name -> its text)."""
    known = set(sources)
    layers, names = layer_of(), list(LAYERS)
    found = [
        f"flowweaver/{module}.py has no layer: add it to LAYERS in tests/test_layers.py, in the "
        f"lowest layer that holds every flowweaver module it imports (docs/architecture.md, "
        f"'Where a new module goes')"
        for module in sorted(known - set(layers))
    ]
    runtime: dict[str, set[str]] = {m: set() for m in known}
    for module in sorted(known & set(layers)):
        for edge in imports_of(module, sources[module], known):
            if edge.imported not in layers or edge.imported == module:
                continue
            if edge.kind != "type":
                runtime[module].add(edge.imported)
            mine, theirs = layers[module], layers[edge.imported]
            if theirs > mine and (module, edge.imported) not in ALLOWED:
                found.append(
                    f"{edge.where()} imports flowweaver.{edge.imported}: layer "
                    f"{names[mine]!r} may not import layer {names[theirs]!r} above it. Move the "
                    f"code that needs it up a layer, or the thing it needs down; or pass it in "
                    f"(a callback, or a Protocol defined in the lower layer)"
                )
    found.extend(_cycles(runtime, layers, names))
    return found


def _cycles(graph: dict[str, set[str]], layers: dict[str, int], names: list[str]) -> list[str]:
    """Import cycles (imports that run) inside one layer, each reported once."""
    found, seen = [], set()
    for start in sorted(graph):
        stack: list[tuple[str, list[str]]] = [(start, [start])]
        while stack:
            node, path = stack.pop()
            for nxt in sorted(graph.get(node, ())):
                if nxt == start and len(path) > 1:
                    key = frozenset(path)
                    if key not in seen and key not in KNOWN_CYCLES:
                        seen.add(key)
                        cycle = " -> ".join(f"flowweaver.{m}" for m in [*path, start])
                        found.append(
                            f"import cycle in layer {names[layers[start]]!r}: {cycle}. Break it "
                            f"by moving the shared piece into its own module, or by typing the "
                            f"back-reference with a Protocol (a type-only import may go both "
                            f"ways within a layer)"
                        )
                elif nxt not in path and layers.get(nxt) == layers.get(start) and nxt > start:
                    stack.append((nxt, [*path, nxt]))
    return found


def package_sources() -> dict[str, str]:
    return {p.stem: p.read_text(encoding="utf-8") for p in PACKAGE.glob("*.py")}


def test_every_module_has_a_layer_and_every_layer_lists_only_modules() -> None:
    listed = [m for modules in LAYERS.values() for m in modules]
    assert sorted(set(listed)) == sorted(listed), "a module is listed in two layers"
    gone = sorted(set(listed) - module_names())
    assert gone == [], f"LAYERS lists modules that do not exist: {gone}"
    assert all(set(pair) <= set(listed) for pair in ALLOWED)


def test_no_import_points_up_the_layers_and_no_layer_has_a_cycle() -> None:
    found = problems(package_sources())
    assert not found, "\n".join(found)


def test_an_upward_import_is_caught_with_what_to_do() -> None:
    """The demonstration the issue asks for: a test-only upward import fails the check."""
    sources = package_sources()
    sources["_status"] += "\n\ndef _peek() -> None:\n    from ._pipeline import Pipeline\n"
    line = sources["_status"].count("\n")
    assert problems(sources) == [
        f"flowweaver/_status.py:{line} (lazy) imports flowweaver._pipeline: layer 'foundation' "
        f"may not import layer 'pipeline' above it. Move the code that needs it up a layer, or "
        f"the thing it needs down; or pass it in (a callback, or a Protocol defined in the "
        f"lower layer)"
    ]


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (
            "if TYPE_CHECKING:\n    from ._engine import Engine\n",
            "(type) imports flowweaver._engine",
        ),
        ("from flowweaver._cli import main\n", "(top) imports flowweaver._cli"),
    ],
)
def test_type_only_and_absolute_imports_count_too(extra: str, expected: str) -> None:
    sources = package_sources()
    sources["_run"] = "from typing import TYPE_CHECKING\n" + extra + sources["_run"]
    (found,) = problems(sources)
    assert expected in found


def test_a_module_without_a_layer_and_a_cycle_within_a_layer_fail() -> None:
    sources = package_sources()
    sources["_brand_new"] = "from ._errors import FlowWeaverError\n"
    sources["_status"] = "def _f() -> None:\n    from ._clock import Clock\n" + sources["_status"]
    sources["_clock"] = "from ._status import TaskStatus\n" + sources["_clock"]
    found = problems(sources)
    assert found[0].startswith("flowweaver/_brand_new.py has no layer: add it to LAYERS")
    assert any(
        "import cycle in layer 'foundation': flowweaver._clock -> flowweaver._status -> "
        "flowweaver._clock" in f
        for f in found
    )
