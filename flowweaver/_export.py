"""Graph export: Mermaid, Graphviz DOT and plain text. Pure functions, no dependencies.

Every renderer takes the same neutral description — a title, task names in topological order,
and for each task the positions of its dependencies (earlier tasks) in declared order — so
workflows, DAGs and flows all render the same way.

Node identifiers are derived from task names (letters, digits and ``_`` only), prefixed where
a name would be empty, start with a digit, or be a keyword of the target language (Mermaid's
``end``, DOT's ``node`` …), and made unique with a ``_2``, ``_3`` … suffix: two tasks never
collapse into one node, even when their names only differ in characters that are replaced.
Names are shown as labels, escaped for each format (quotes, brackets, ``#``, ``<``, ``>``,
backslashes, newlines).

A mapped task is one node, marked: its label says what it maps over (``square`` becomes
``square (map over numbers)``), Mermaid draws it as a subroutine box ``[[...]]``, DOT as a
``box3d``, and the text listing appends ``[map over numbers]``. ``mapped`` gives that note
per task position.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

__all__ = ["to_dot", "to_mermaid", "to_text"]

_NOT_ID = re.compile(r"[^A-Za-z0-9_]+")
# Words that cannot be bare node ids (compared in lowercase).
_RESERVED = frozenset(
    {
        # Mermaid flowchart syntax
        "end", "graph", "flowchart", "subgraph", "direction", "style", "class", "classdef",
        "click", "linkstyle", "default", "call", "href",
        # DOT keywords
        "node", "edge", "digraph", "strict",
    }
)  # fmt: skip


def node_ids(names: Sequence[str]) -> list[str]:
    """A unique identifier per name, safe in Mermaid and DOT (see the module docstring)."""
    used: set[str] = set()
    ids: list[str] = []
    for name in names:
        base = _NOT_ID.sub("_", name)
        if not base or base[0].isdigit() or base.lower() in _RESERVED:
            base = "t_" + base
        candidate, n = base, 1
        while candidate in used:
            n += 1
            candidate = f"{base}_{n}"
        used.add(candidate)
        ids.append(candidate)
    return ids


_MERMAID_ENTITIES = {
    "#": "#35;",
    '"': "#quot;",
    "<": "#lt;",
    ">": "#gt;",
    "&": "#amp;",
    "`": "#96;",
}


def _mermaid_label(name: str) -> str:
    out: list[str] = []
    for char in name:
        if char in _MERMAID_ENTITIES:
            out.append(_MERMAID_ENTITIES[char])
        elif char == "\n":
            out.append("<br>")
        elif not char.isprintable():
            out.append(f"#{ord(char)};")
        else:
            out.append(char)
    return "".join(out)


def to_mermaid(
    title: str,
    names: Sequence[str],
    deps: Sequence[Sequence[int]],
    mapped: Mapping[int, str] | None = None,
) -> str:
    """A Mermaid ``flowchart`` (top-down), titled ``title``, one node per task.

    Examples:
        >>> print(to_mermaid("etl", ["extract", "load"], [[], [0]]), end="")
        ---
        title: "etl"
        ---
        flowchart TD
            extract["extract"]
            load["load"]
            extract --> load
    """
    import json  # only here: the import of flowweaver stays without it

    ids = node_ids(names)
    lines = ["---", f"title: {json.dumps(title)}", "---", "flowchart TD"]
    marks = mapped or {}
    for i, name in enumerate(names):
        note = marks.get(i)
        if note is None:
            lines.append(f'    {ids[i]}["{_mermaid_label(name)}"]')
        else:
            lines.append(f'    {ids[i]}[["{_mermaid_label(f"{name} ({note})")}"]]')
    for i, ds in enumerate(deps):
        lines.extend(f"    {ids[d]} --> {ids[i]}" for d in ds)
    return "\n".join(lines) + "\n"


def _dot_string(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    escaped = escaped.replace("\r\n", "\\n").replace("\n", "\\n").replace("\r", "\\n")
    return '"' + "".join(c if c.isprintable() else " " for c in escaped) + '"'


def to_dot(
    title: str,
    names: Sequence[str],
    deps: Sequence[Sequence[int]],
    mapped: Mapping[int, str] | None = None,
) -> str:
    """A Graphviz ``digraph`` named ``title``, one box per task, edges upstream → downstream.

    Examples:
        >>> print(to_dot("etl", ["extract", "load"], [[], [0]]), end="")
        digraph "etl" {
            rankdir=TB;
            node [shape=box];
            extract [label="extract"];
            load [label="load"];
            extract -> load;
        }
    """
    ids = node_ids(names)
    lines = [f"digraph {_dot_string(title)} {{", "    rankdir=TB;", "    node [shape=box];"]
    marks = mapped or {}
    for i, name in enumerate(names):
        note = marks.get(i)
        if note is None:
            lines.append(f"    {ids[i]} [label={_dot_string(name)}];")
        else:
            lines.append(f"    {ids[i]} [label={_dot_string(f'{name} ({note})')}, shape=box3d];")
    for i, ds in enumerate(deps):
        lines.extend(f"    {ids[d]} -> {ids[i]};" for d in ds)
    lines.append("}")
    return "\n".join(lines) + "\n"


_PLAIN = re.compile(r"[^\s,'\"\[\]]+")


def _text_name(name: str) -> str:
    # A name that could be misread (spaces, commas, quotes, "<-", brackets, newlines) is quoted.
    plain = _PLAIN.fullmatch(name) and "<-" not in name and name.isprintable()
    return name if plain else repr(name)


def to_text(
    title: str,
    names: Sequence[str],
    deps: Sequence[Sequence[int]],
    levels: Sequence[int],
    mapped: Mapping[int, str] | None = None,
) -> str:
    """A plain-text listing: one line per task in execution order, ``[layer] name <- deps``.

    ``levels`` are the tasks' Kahn layers (0 for tasks without dependencies), as the
    workflow computed them when the tasks were added.

    Examples:
        >>> names, deps = ["extract", "clean", "load"], [[], [0], [0, 1]]
        >>> print(to_text("dag 'etl'", names, deps, [0, 1, 2]), end="")
        dag 'etl': 3 tasks in 3 layers
          [0] extract
          [1] clean <- extract
          [2] load <- extract, clean
    """
    n_layers = max(levels, default=-1) + 1
    task_word = "task" if len(names) == 1 else "tasks"
    layer_word = "layer" if n_layers == 1 else "layers"
    lines = [f"{title}: {len(names)} {task_word} in {n_layers} {layer_word}"]
    for i, name in enumerate(names):
        line = f"  [{levels[i]}] {_text_name(name)}"
        if deps[i]:
            line += " <- " + ", ".join(_text_name(names[d]) for d in deps[i])
        if mapped and i in mapped:
            line += f" [{mapped[i]}]"
        lines.append(line)
    return "\n".join(lines) + "\n"
