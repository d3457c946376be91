"""The ready queue of a run whose tasks have priorities.

A plain run keeps its ready tasks in a ``deque`` (FIFO: the order they became ready). When any
task of the workflow has a non-zero ``priority``, the engine uses a :class:`PriorityReady`
instead: the same five operations the drivers and the engine use on a deque (``append``,
``appendleft``, ``extend``, ``popleft``, ``[0]``, ``len``), ordered by priority first.

Order: a **higher** ``priority`` leaves first; among equal priorities, the order of a deque is
kept exactly: ``append`` joins the back, ``appendleft`` (a retry whose delay is over) goes to
the front. A heap of ``(-priority, sequence, index)`` does both: ``append`` takes an
increasing sequence number, ``appendleft`` a decreasing negative one. So a workflow whose
priorities are all equal runs in the order it would without them, and a run without any never
builds this object (its hot path is the deque's).
"""

from __future__ import annotations

import heapq
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

__all__ = ["PriorityReady"]


class PriorityReady:
    """Ready task indices, highest priority first, FIFO among equals (see the module docstring).

    Args:
        items: The indices ready at the start, in order.
        priority_of: The priority of an index (a task, or a mapped task's element slot).
    """

    __slots__ = ("_back", "_front", "_heap", "_priority_of")

    def __init__(self, items: Iterable[int], priority_of: Callable[[int], int]) -> None:
        self._priority_of = priority_of
        self._heap: list[tuple[int, int, int]] = []
        self._back = 0
        self._front = 0
        self.extend(items)

    def append(self, i: int) -> None:
        self._back += 1
        heapq.heappush(self._heap, (-self._priority_of(i), self._back, i))

    def appendleft(self, i: int) -> None:
        self._front -= 1
        heapq.heappush(self._heap, (-self._priority_of(i), self._front, i))

    def extend(self, items: Iterable[int]) -> None:
        for i in items:
            self.append(i)

    def popleft(self) -> int:
        """The next index to run. Raises IndexError when empty (as a deque does)."""
        if not self._heap:
            raise IndexError("pop from an empty ready queue")
        return heapq.heappop(self._heap)[2]

    def __getitem__(self, position: int) -> int:
        if position != 0 or not self._heap:
            raise IndexError(position)
        return self._heap[0][2]

    def __len__(self) -> int:
        return len(self._heap)

    def __bool__(self) -> bool:
        return bool(self._heap)

    def __repr__(self) -> str:
        return f"PriorityReady({[i for _, _, i in sorted(self._heap)]!r})"
