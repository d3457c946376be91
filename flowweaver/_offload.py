"""Sync calls from an event loop onto flowweaver's daemon threads: a call's timeout starts
when the call can start, never while it waits for a thread.

:class:`Offload` runs them on ``_lanes.WorkerThreads``, one call per thread at a time. A
semaphore as large as the pool guarantees a free thread when a call is sent. A call that times
out or is cancelled is abandoned and its thread *replaced*, so the pool keeps its size and the
next call does not wait for the stuck one. An awaitable a sync function returns is awaited on
the loop, within the same timeout. Whatever the call raised (``BaseException`` subclasses
included) is handed back: what counts as a failure is the caller's rule
(``_calls.INTERRUPTS``).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from typing import TYPE_CHECKING, Any

from ._calls import bounded
from ._lanes import WorkerThreads

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._lanes import Outcome

__all__ = ["Offload"]


class Offload:
    """Sync calls from the event loop onto daemon threads, one call per thread at a time.

    The semaphore guarantees a free thread when a call is sent, so a call's timeout starts
    when it starts; a thread stuck in a timed-out or cancelled call is replaced. Threads start
    on demand. Make it on the loop it serves.
    """

    def __init__(
        self, loop: asyncio.AbstractEventLoop, threads: int, name: str = "flowweaver-async"
    ) -> None:
        self._loop = loop
        self._slots = asyncio.Semaphore(threads)
        self._waiting: dict[int, asyncio.Future[Any]] = {}
        self._tokens = itertools.count()
        self._threads = WorkerThreads(threads, name, self._report, finish_awaitables=False)

    def _report(self, outcome: Outcome) -> None:  # on a worker thread
        # A closed loop means an abandoned call returned after its run ended: nobody listens.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._deliver, outcome)

    def _deliver(self, outcome: Outcome) -> None:  # on the loop
        token, ok, value = outcome
        future = self._waiting.pop(token, None)
        if future is None or future.done():
            return
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)

    async def call(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any] | None,
        name: str,
        timeout: float | None,
    ) -> Any:
        async with self._slots:
            token = next(self._tokens)
            future = self._loop.create_future()
            self._waiting[token] = future
            self._threads.send(token, fn, args, kwargs, name, None)
            try:
                if timeout is None:
                    return await _then_await(future)
                return await bounded(_then_await(future), name, timeout)
            except BaseException:
                # Still waiting for its outcome (our timeout or cancellation also cancelled
                # ``future``, so that cannot tell): keep it from starting, or abandon it.
                if self._waiting.pop(token, None) is not None and not self._threads.cancel(token):
                    self._threads.abandon(token)  # a fresh thread takes its place
                raise

    def close(self) -> None:
        self._threads.close(wait=False)


async def _then_await(future: Any) -> Any:
    """Await ``future``; then, if its result is awaitable, await that too (the seeds'
    ``fn=lambda uid=uid: fetch_user(uid)``: a sync function returning a coroutine)."""
    value = await future
    if hasattr(value, "__await__"):
        value = await value
    return value
