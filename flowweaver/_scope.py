"""Where ``>>`` and ``<<`` record edges: the open graph of the current context.

A :class:`~flowweaver.Task` is a frozen definition, so ``a >> b`` cannot store the edge on ``a``
or ``b``. It records ``(a, b)`` in the *open graph* of the current ``contextvars`` context
instead, and a :class:`~flowweaver.DAG` takes edges from there. The rule (also in the DAG's
docstring and the README):

* ``DAG(name)`` built without ``tasks=`` / ``edges=`` *claims* every edge recorded in this
  context since the previous claim, and the open graph starts empty again. So pipeline A
  (``a1 >> a2``, ``DAG("A")``) and then pipeline B (``b1 >> a2``, ``DAG("B")``) never see each
  other's edges, and a task reused by B does not bring A's edges along.
* Inside ``with DAG(name) as dag:`` the block has an open graph of its own: its edges go to
  that DAG only, and edges recorded outside the block are neither seen nor consumed by it.
* ``DAG(name, tasks=[...], edges=[...])``, ``dag.add(...)`` and ``dag.connect(...)`` use no
  implicit state at all.

Mechanics. The open graph is an immutable linked list of ``(previous, upstream, downstream)``
records held by a module-level ``ContextVar`` (the only module-level state: each context sees
its own value). Recording sets a new head, so it never mutates a value another context can
see: a copied context (an asyncio task, ``contextvars.copy_context().run``) starts from its
parent's edges, but what it records stays its own; a new thread starts with an empty graph.
"""

from __future__ import annotations

from contextvars import ContextVar, Token
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from ._task import Task

__all__ = ["Edge", "claim", "close_scope", "give_back", "open_scope", "record", "recorded"]

#: ``(upstream, downstream)``
Edge = tuple["Task[..., Any]", "Task[..., Any]"]
#: One recorded edge and the records before it (None: the graph is empty).
_Record = tuple["_Record | None", "Task[..., Any]", "Task[..., Any]"]

_OPEN: ContextVar[_Record | None] = ContextVar("flowweaver_open_graph", default=None)


def record(upstream: Sequence[Task[..., Any]], downstream: Sequence[Task[..., Any]]) -> None:
    """Record an edge from every task of ``upstream`` to every task of ``downstream``."""
    head = _OPEN.get()
    for up in upstream:
        for down in downstream:
            head = (head, up, down)
    _OPEN.set(head)


def _unroll(head: _Record | None) -> list[Edge]:
    edges: list[Edge] = []
    while head is not None:
        head, up, down = head
        edges.append((up, down))
    edges.reverse()
    return edges


def _link(edges: Iterable[Edge]) -> _Record | None:
    head: _Record | None = None
    for up, down in edges:
        head = (head, up, down)
    return head


def recorded() -> list[Edge]:
    """The edges recorded in this context and not yet claimed, oldest first (read only)."""
    return _unroll(_OPEN.get())


def claim() -> list[Edge]:
    """Take every edge recorded since the previous claim; the open graph starts empty again."""
    edges = _unroll(_OPEN.get())
    _OPEN.set(None)
    return edges


def give_back(edges: Sequence[Edge]) -> None:
    """Undo a :func:`claim`: put ``edges`` back before anything recorded since."""
    if edges:
        _OPEN.set(_link([*edges, *_unroll(_OPEN.get())]))


def open_scope() -> Token[_Record | None]:
    """Start an empty open graph (a ``with DAG(...)`` block); returns what closes it."""
    return _OPEN.set(None)


def close_scope(token: Token[_Record | None]) -> list[Edge]:
    """End the scope ``token`` opened; return the edges recorded in it, oldest first.

    The open graph is what it was before the scope opened.
    """
    edges = _unroll(_OPEN.get())
    _OPEN.reset(token)
    return edges
