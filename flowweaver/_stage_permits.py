"""A pipeline's sync stage task with ``Stage(limits=)``: a thread first, then the permits.

A sync call runs on one of the run's threads (``_offload``). Were it to take its limiters'
permits first and then wait for a thread, a permit would sit in the thread pool's queue while
another run sharing the limiter waits for it. So :func:`take_with_thread` reserves a thread
(``SyncCalls.reserve``), then tries every limiter without waiting, all or none (as the
engine's ``_gates``: what one granted is refunded when another refuses). Refused, it gives the
thread back — none is left idle while a permit is awaited — and waits in the refusing
limiter's first-come-first-served queue (the same queue as every other caller), woken by a
release or when its rate is due on the limiter's clock; then it tries again.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

from ._limiter_parts import WAIT_FOR_RELEASE

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ._limiter import Grant, Limiter
    from ._offload import SyncCalls

__all__ = ["take_with_thread"]


class _Waiter:
    """A stage call's place in a limiter's queue; its event is made only once it waits (the
    common call is granted at once, and a wake-up reaches it through its loop, later)."""

    __slots__ = ("event", "loop")

    amount = 1.0
    thread: int | None = None

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.event: asyncio.Event | None = None

    def wake(self) -> bool:  # any thread, under the limiter's lock
        with contextlib.suppress(RuntimeError):  # its loop is closed: nobody is left to wake
            self.loop.call_soon_threadsafe(self._set)
        return True

    def _set(self) -> None:  # on the loop
        if self.event is not None:
            self.event.set()


async def take_with_thread(calls: SyncCalls, limiters: Sequence[Limiter]) -> None:
    """Return holding a reserved thread of ``calls`` and a permit of each of ``limiters``
    (the caller makes the ``reserved`` call and releases the permits); hold nothing if the
    wait is cancelled."""
    waiter = _Waiter()
    queued: Limiter | None = None  # whose queue the waiter is in
    try:
        while True:
            await calls.reserve()
            if waiter.event is not None:
                waiter.event.clear()  # a wake-up from now on is seen by the wait below
            order = (
                limiters if queued is None else [queued, *(x for x in limiters if x is not queued)]
            )
            granted: list[tuple[Limiter, Grant]] = []
            refused: Limiter | None = None
            delay = 0.0
            for limiter in order:
                delay, grant = limiter._take_for(waiter, limiter is queued)
                if grant is None:
                    refused = limiter
                    break
                if limiter is queued:
                    queued = None
                granted.append((limiter, grant))
            if refused is None:
                return
            calls.unreserve()  # no thread waits idle for a permit
            for limiter, grant in granted:
                limiter._refund(grant)
            if queued is not refused:
                if queued is not None:
                    queued._leave(waiter)  # it waits for this one now
                queued = refused
            if delay == WAIT_FOR_RELEASE:
                if waiter.event is None:  # before any wake-up runs: those go through the loop
                    waiter.event = asyncio.Event()
                await waiter.event.wait()
            else:
                await refused._clock.sleep_async(delay)
    except BaseException:
        if queued is not None:
            queued._leave(waiter)
        raise
