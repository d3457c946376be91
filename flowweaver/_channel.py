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

A channel of capacity 0 is a *hand-off* (a pull stage's input, ``stream(buffer_size=0)``), as
an unbuffered channel in Go or trio: a put succeeds at once only when a getter is waiting and
not yet promised an item; otherwise the putter waits *with its item* (a sender), and the next
getter takes it straight from the first sender, first come first served, calling the sender's
``on_handoff`` in that same step (so whoever held the item stops holding it exactly when the
getter has it). An item never waits in the channel for a getter; the items a hand-off holds
at any moment are each promised to a woken getter, never more than the getters waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
from bisect import insort
from collections import deque
from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable

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
        capacity: Most items held at once by ordinary puts (None: unbounded; 0: a hand-off).
    """

    __slots__ = (
        "_buckets",
        "_getters",
        "_order",
        "_putters",
        "_senders",
        "_size",
        "capacity",
        "closed",
    )

    def __init__(self, capacity: int | None) -> None:
        self.capacity = capacity
        self.closed = False
        self._size = 0
        #: One FIFO per priority. A bucket that empties stays (a pipeline of one priority
        #: keeps one deque for good) until a get finds it empty below the next item.
        self._buckets: dict[int, deque[T]] = {}
        self._order: list[int] = []  # the priorities of the buckets, lowest first
        self._getters: deque[asyncio.Future[None]] = deque()
        self._putters: deque[asyncio.Future[None]] = deque()
        #: A hand-off's waiting putters with their items (and what to call when it is taken).
        self._senders: deque[tuple[asyncio.Future[None], T, Callable[[], object] | None]] = deque()

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
            if capacity:
                return False  # full
            getters = self._getters  # a hand-off: only into the hands of a waiting getter
            while getters and getters[0].done():
                getters.popleft()  # cancelled, on its way out (see _pass_on)
            if not getters:
                return False
        bucket = self._buckets.get(priority)
        if bucket is None:
            bucket = self._buckets[priority] = deque()
            insort(self._order, priority)
        bucket.append(item)
        self._size += 1
        if self._getters:
            _wake(self._getters)
        return True

    async def put(
        self, item: T, priority: int, on_handoff: Callable[[], object] | None = None
    ) -> None:
        """Add ``item``, waiting for room (a hand-off: for a getter to take it).

        Args:
            item: What to add.
            priority: Lower is taken first (a hand-off serves waiting putters in order).
            on_handoff: Called in the very step a getter takes ``item`` from this waiting put
                (hand-offs only; not called when the put succeeds without waiting).

        Raises:
            ChannelClosed: The channel is (or becomes) closed before there is room.
        """
        if self.capacity == 0:
            if self.put_nowait(item, priority):
                return
            taken = asyncio.get_running_loop().create_future()
            sender = (taken, item, on_handoff)
            self._senders.append(sender)
            try:
                await taken  # the getter that takes it sets it; close() fails it
            except BaseException:
                with contextlib.suppress(ValueError):
                    self._senders.remove(sender)
                raise
            return
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
            senders = self._senders
            while senders:  # a hand-off: take the first waiting putter's item
                taken, item, on_handoff = senders.popleft()
                if not taken.done():
                    taken.set_result(None)
                    if on_handoff is not None:
                        on_handoff()
                    return item
            return None
        order, buckets = self._order, self._buckets
        bucket = buckets[order[0]]
        while not bucket:  # an emptied priority below the next item's: forget it
            del buckets[order.pop(0)]
            bucket = buckets[order[0]]
        item = bucket.popleft()
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
        while self._senders:
            taken = self._senders.popleft()[0]
            if not taken.done():
                taken.set_exception(ChannelClosed())

    def drain(self) -> list[T]:
        """Remove and return every item, in the order :meth:`get` would have returned them."""
        items: list[T] = []
        for priority in self._order:
            items.extend(self._buckets[priority])
        self._buckets.clear()
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
