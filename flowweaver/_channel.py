"""A stage's input queue: bounded, closable, ordered by priority, and waited on without polling.

Why not ``asyncio.PriorityQueue``:

* Priorities are FIFO within a priority in O(1) (one deque per priority in use) instead of a
  heap of ``(priority, counter, item)`` tuples per item.
* ``put_nowait(..., force=True)`` lets a per-stage retry re-enter its own stage's full queue
  without waiting. AntFlow waits there, and when every worker of a stage does so at once, no
  worker is left to make room: the pipeline deadlocks.
* :meth:`Channel.close` wakes every waiter at once: getters see the end (``None``), putters get
  :class:`ChannelClosed`. A shutdown therefore never waits on a full queue.
* :meth:`Channel.drain` hands back what is left, so a shutdown can account for every item.

Waiters are futures woken one at a time (a put wakes one getter, a get wakes one putter), as in
``asyncio.Queue``. Only the event loop's thread touches a channel.
"""

from __future__ import annotations

import asyncio
import contextlib
from bisect import insort
from collections import deque
from typing import Generic, TypeVar

__all__ = ["Channel", "ChannelClosed"]

T = TypeVar("T")


class ChannelClosed(Exception):
    """Raised to a putter when the channel is (or becomes) closed."""


def _wake(waiters: deque[asyncio.Future[None]]) -> None:
    while waiters:
        waiter = waiters.popleft()
        if not waiter.done():
            waiter.set_result(None)
            return


class Channel(Generic[T]):
    """A bounded multi-priority FIFO of items (never ``None``); see the module docstring.

    Args:
        capacity: Most items held at once by ordinary puts (None: unbounded).
    """

    __slots__ = ("_buckets", "_getters", "_order", "_putters", "_size", "capacity", "closed")

    def __init__(self, capacity: int | None) -> None:
        self.capacity = capacity
        self.closed = False
        self._size = 0
        self._buckets: dict[int, deque[T]] = {}
        self._order: list[int] = []  # priorities with a non-empty bucket, lowest first
        self._getters: deque[asyncio.Future[None]] = deque()
        self._putters: deque[asyncio.Future[None]] = deque()

    def __len__(self) -> int:
        return self._size

    def put_nowait(self, item: T, priority: int, force: bool = False) -> bool:
        """Add ``item`` if there is room (always, with ``force``).

        Returns:
            False when the channel is full and ``force`` is not set.

        Raises:
            ChannelClosed: The channel is closed.
        """
        if self.closed:
            raise ChannelClosed
        capacity = self.capacity
        if capacity is not None and self._size >= capacity and not force:
            return False
        bucket = self._buckets.get(priority)
        if bucket is None:
            bucket = self._buckets[priority] = deque()
        if not bucket:
            insort(self._order, priority)
        bucket.append(item)
        self._size += 1
        if self._getters:
            _wake(self._getters)
        return True

    async def put(self, item: T, priority: int) -> None:
        """Add ``item``, waiting for room.

        Raises:
            ChannelClosed: The channel is (or becomes) closed before there is room.
        """
        while not self.put_nowait(item, priority):
            waiter = asyncio.get_running_loop().create_future()
            self._putters.append(waiter)
            try:
                await waiter
            except BaseException:
                self._pass_on(waiter, self._putters)
                raise

    def get_nowait(self) -> T | None:
        """The next item (lowest priority first, FIFO within one), or None if there is none."""
        if not self._size:
            return None
        order = self._order
        priority = order[0]
        bucket = self._buckets[priority]
        item = bucket.popleft()
        if not bucket:
            del order[0]
        self._size -= 1
        if self._putters:
            _wake(self._putters)
        return item

    async def get(self) -> T | None:
        """The next item, waiting for one; None once the channel is closed and empty."""
        while True:
            item = self.get_nowait()
            if item is not None:
                return item
            if self.closed:
                return None
            waiter = asyncio.get_running_loop().create_future()
            self._getters.append(waiter)
            try:
                await waiter
            except BaseException:
                self._pass_on(waiter, self._getters)
                raise

    def close(self) -> None:
        """Refuse further puts and wake every waiter (getters drain what is left, then end)."""
        self.closed = True
        for waiters in (self._getters, self._putters):
            while waiters:
                waiter = waiters.popleft()
                if not waiter.done():
                    waiter.set_result(None)

    def drain(self) -> list[T]:
        """Remove and return every item, in the order :meth:`get` would have returned them."""
        items: list[T] = []
        for priority in self._order:
            items.extend(self._buckets[priority])
            self._buckets[priority].clear()
        self._order.clear()
        self._size = 0
        while self._putters:
            _wake(self._putters)
        return items

    def _pass_on(self, waiter: asyncio.Future[None], waiters: deque[asyncio.Future[None]]) -> None:
        # A waiter cancelled after it was woken must hand the wake-up to the next in line,
        # or that one would sleep although there is an item (or room) for it.
        if waiter.done() and not waiter.cancelled():
            _wake(waiters)
        else:
            with contextlib.suppress(ValueError):
                waiters.remove(waiter)
