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
* ``@task`` *declares* its task in the open graph too. A claim that holds no edge at all
  makes a DAG of the tasks declared since the previous claim whose function lives in the
  module that creates the DAG (``@task def flaky(): ...`` then ``DAG("flaky").run()``). Tasks
  of imported modules never join that way, and once there is an edge only edges count.
* A ``>>`` that would close a loop raises :class:`~flowweaver.CycleError` there, with the
  path, and records nothing.

Mechanics. The open graph is an immutable linked list of ``(previous, upstream, downstream)``
records (``downstream`` None: a declaration) held by a module-level ``ContextVar`` (each
context sees its own value). Recording sets a new head, so it never mutates a value another
context can see: a copied context (an asyncio task, ``contextvars.copy_context().run``) starts
from its parent's edges, but what it records stays its own; a new thread starts with an empty
graph. The cycle check uses an index (adjacency lists and a topological order, kept up to
date as edges arrive) held in a second ``ContextVar``; the index names the head it describes
and is extended in place only by a context whose head that is (any other context, or a head
changed by a claim, rebuilds it once). A ``>>`` costs O(1) unless its edge runs against the
order so far, and then only the tasks between its two ends are searched and reordered.
"""

from __future__ import annotations

from contextvars import ContextVar, Token
from typing import TYPE_CHECKING, Any

from ._errors import CycleError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

    from ._task import Task

__all__ = [
    "Edge",
    "claim",
    "close_scope",
    "declare",
    "declared_in",
    "edges_of",
    "give_back",
    "open_scope",
    "record",
    "recorded",
]

#: ``(upstream, downstream)``; ``(task, None)`` is a ``@task`` declaration.
Edge = tuple["Task[..., Any]", "Task[..., Any] | None"]
#: One record and the records before it (None: the graph is empty).
_Record = tuple["_Record | None", "Task[..., Any]", "Task[..., Any] | None"]

_OPEN: ContextVar[_Record | None] = ContextVar("flowweaver_open_graph", default=None)


class _Order:
    """The open graph whose head is ``head`` as adjacency lists plus a topological order
    kept up to date as edges arrive (Pearce and Kelly's dynamic topological sort).

    An edge ``up -> down`` can close a loop only if ``down`` comes before ``up`` in the order,
    so most edges cost O(1): those between tasks already in order, and those that bring a new
    task (a new upstream task is put first, a new downstream task last). Only an edge against
    the order searches, and only among the tasks between its two ends, which it then reorders.
    """

    __slots__ = ("children", "head", "hi", "lo", "order", "parents")

    def __init__(self, head: _Record | None) -> None:
        self.head = head
        self.children: dict[Task[..., Any], list[Task[..., Any]]] = {}
        self.parents: dict[Task[..., Any], list[Task[..., Any]]] = {}
        self.order: dict[Task[..., Any], int] = {}
        self.lo, self.hi = 0, 1
        for up, down in _unroll(head):
            if down is not None:
                self.add(up, down)

    def _place(self, up: Task[..., Any], down: Task[..., Any]) -> None:
        order = self.order
        if up not in order:
            order[up], self.lo = self.lo, self.lo - 1
        if down not in order:
            order[down], self.hi = self.hi, self.hi + 1

    def _reach(
        self,
        start: Task[..., Any],
        links: dict[Task[..., Any], list[Task[..., Any]]],
        keep: Callable[[Task[..., Any]], bool],
    ) -> dict[Task[..., Any], Task[..., Any] | None]:
        """Tasks reachable from ``start`` along ``links`` among those ``keep`` accepts, each
        with the task it was reached from."""
        seen: dict[Task[..., Any], Task[..., Any] | None] = {start: None}
        stack = [start]
        while stack:
            node = stack.pop()
            for nxt in links.get(node, ()):
                if nxt not in seen and keep(nxt):
                    seen[nxt] = node
                    stack.append(nxt)
        return seen

    def loop(self, up: Task[..., Any], down: Task[..., Any]) -> list[Task[..., Any]]:
        """The path ``down -> ... -> up`` that the edge ``up -> down`` would close (empty:
        none). Reads only."""
        if up is down:
            return [down]
        order = self.order
        if up not in order or down not in order or order[up] < order[down]:
            return []
        bound = order[up]
        seen = self._reach(down, self.children, lambda t: order[t] <= bound)
        if up not in seen:
            return []
        path = [up]
        while (before := seen[path[-1]]) is not None:
            path.append(before)
        path.reverse()
        return path

    def add(self, up: Task[..., Any], down: Task[..., Any]) -> None:
        """Add the edge (it closes no loop: see :meth:`loop`) and keep the order topological."""
        self._place(up, down)
        self.children.setdefault(up, []).append(down)
        self.parents.setdefault(down, []).append(up)
        order = self.order
        low, high = order[down], order[up]
        if high < low:
            return
        # Against the order: what follows from down (up to up's place) must move after what
        # leads to up (down to down's place); they take the same places, in that order.
        ahead = self._reach(down, self.children, lambda t: order[t] <= high)
        behind = self._reach(up, self.parents, lambda t: order[t] >= low)
        moved = sorted(behind, key=order.__getitem__) + sorted(ahead, key=order.__getitem__)
        for task, place in zip(moved, sorted(order[t] for t in moved), strict=True):
            order[task] = place


_INDEX: ContextVar[_Order | None] = ContextVar("flowweaver_open_graph_index", default=None)


def record(upstream: Sequence[Task[..., Any]], downstream: Sequence[Task[..., Any]]) -> None:
    """Record an edge from every task of ``upstream`` to every task of ``downstream``.

    Raises:
        CycleError: An edge would close a loop; nothing is recorded then.
    """
    head = _OPEN.get()
    index = _INDEX.get()
    if index is None or index.head is not head:
        index = _Order(head)
        _INDEX.set(index)
    # Checked against the graph as it is: a loop through several of these new edges always
    # contains one of them alone (each upstream meets each downstream), so this finds it.
    for down in downstream:
        for up in upstream:
            loop = index.loop(up, down)
            if loop:
                # loop runs down -> ... -> up along edges; the new edge up -> down closes it.
                raise CycleError([t.name for t in (down, *reversed(loop))], written=">>")
    for up in upstream:
        for down in downstream:
            head = (head, up, down)
            index.add(up, down)
    index.head = head
    _OPEN.set(head)


def declare(task: Task[..., Any]) -> None:
    """Note that ``@task`` made ``task`` (see the module docstring for what that does)."""
    _OPEN.set((_OPEN.get(), task, None))


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


def edges_of(records: Iterable[Edge]) -> list[tuple[Task[..., Any], Task[..., Any]]]:
    """The edges among ``records`` (declarations left out), in order."""
    return [(up, down) for up, down in records if down is not None]


def declared_in(records: Iterable[Edge], module: str | None) -> list[Task[..., Any]]:
    """The tasks declared among ``records`` whose function is defined in ``module``."""
    return [
        up for up, down in records if down is None and getattr(up.fn, "__module__", None) == module
    ]


def recorded() -> list[tuple[Task[..., Any], Task[..., Any]]]:
    """The edges recorded in this context and not yet claimed, oldest first (read only)."""
    return edges_of(_unroll(_OPEN.get()))


def claim() -> list[Edge]:
    """Take every record since the previous claim; the open graph starts empty again."""
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
