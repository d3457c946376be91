"""Sync calls from an event loop: where they run, and when their timeout starts.

Three things run user functions that may be sync from a loop — a workflow on
:class:`AsyncExecutor`, the ``AsyncExecutor`` pool (``submit`` / ``map``) and a pipeline's sync
tasks — and all of them do it through this module, under one rule: **a call's timeout starts
when the call can start**, never while it waits in somebody's queue.

* :class:`Offload` is the default: flowweaver's daemon threads (``_lanes.WorkerThreads``), one
  call per thread at a time. A semaphore as large as the pool guarantees a free thread when a
  call is sent. A call that times out or is cancelled is abandoned and its thread *replaced*,
  so the pool keeps its size and the next call does not wait for the stuck one.
* :class:`ExecutorCalls` sends calls to an executor the user chose (anything with
  ``submit``). It holds one of ``capacity`` slots from ``submit`` until the executor's future
  completes — not until we stop waiting for it — so a call is only submitted when the executor
  has a free worker, and a stuck call keeps its slot: later calls wait for a slot (their
  timeout not ticking) instead of timing out in the executor's queue. A call that times out
  is abandoned (cancelled if it had not started); this module never kills anything. The
  capacity is the executor's ``max_workers`` (:func:`capacity_of`); an executor that does not
  say gets no slots, and time in its queue counts against the timeout.
* :func:`sync_calls` picks one of the two for a pipeline run.

Both finish an awaitable that a sync function returns on the loop, within the same timeout,
and hand back whatever the call raised (``BaseException`` subclasses included): what counts
as a failure is the caller's rule (``_calls.INTERRUPTS``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import contextlib
import itertools
from time import perf_counter
from typing import TYPE_CHECKING, Any, Protocol

from ._calls import awaitable_error, bounded
from ._checks import is_count
from ._errors import TaskTimeoutError
from ._lanes import WorkerThreads

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._lanes import Outcome

__all__ = [
    "ExecutorCalls",
    "Offload",
    "Submitter",
    "SyncCalls",
    "capacity_of",
    "sync_calls",
]


class Submitter(Protocol):
    """Where a pipeline's sync tasks run: anything with ``submit`` returning a
    ``concurrent.futures.Future`` (every flowweaver executor, any ``concurrent.futures``
    executor) or an awaitable (:class:`AsyncExecutor`). How many calls it runs at once is
    read from its ``max_workers`` (see :func:`capacity_of`)."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> object: ...


class SyncCalls(Protocol):
    """Where sync calls made from the loop run (:class:`Offload`, :class:`ExecutorCalls`)."""

    async def call(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any] | None,
        name: str,
        timeout: float | None,
        reserved: bool = False,
    ) -> Any:
        """Run ``fn(*args, **kwargs)`` and return its result (an awaitable one awaited).

        ``reserved``: the caller holds a place already (:meth:`reserve`); the call uses it.

        Raises:
            TaskTimeoutError: It took longer than ``timeout`` seconds from when it could start.
        """
        ...

    async def reserve(self) -> None:
        """Wait until a call could start now, and hold that place for the next
        ``call(..., reserved=True)`` (or give it back with :meth:`unreserve`)."""
        ...

    def unreserve(self) -> None:
        """Give back a place held by :meth:`reserve` for a call that will not be made."""
        ...

    def close(self) -> None:
        """Release what this object started (never waits for an abandoned call)."""
        ...


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
            future.set_exception(awaitable_error(value))

    async def call(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any] | None,
        name: str,
        timeout: float | None,
        reserved: bool = False,
        started: Callable[[], object] | None = None,
    ) -> Any:
        """Run ``fn(*args, **kwargs)`` on a thread; ``started()`` once a thread is free for it.

        ``reserved``: the caller holds a thread already (:meth:`reserve`); the call uses it.
        """
        if not reserved:
            await self._slots.acquire()
        try:
            if started is not None:
                started()
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
        finally:
            self._slots.release()

    async def reserve(self) -> None:
        """Wait until a thread is free and hold it for the next ``call(..., reserved=True)``
        (give it back with :meth:`unreserve` if no call follows). For a call that must take
        something only once it can start, such as a limiter's permit."""
        await self._slots.acquire()

    def unreserve(self) -> None:
        """Give back a thread held by :meth:`reserve` for a call that will not be made."""
        self._slots.release()

    def close(self) -> None:
        self._threads.close(wait=False)


class ExecutorCalls:
    """Sync calls through a given executor's ``submit``, at most ``capacity`` in flight.

    ``submit`` may return a ``concurrent.futures.Future`` (read at once when it is already
    done: the sequential executor ran the call inline), an asyncio-style future (anything with
    ``add_done_callback`` and ``cancel`` that can be awaited: :class:`AsyncExecutor`'s), or any
    other awaitable. See the module docstring for the slots.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        submit: Callable[..., object],
        capacity: int | None,
    ) -> None:
        self._loop = loop
        self._submit = submit
        self._slots = asyncio.Semaphore(capacity) if capacity is not None else None

    def _release_soon(self, _: object) -> None:  # on whichever thread completed the future
        assert self._slots is not None
        # A closed loop: a call abandoned by a run that has ended came back; nobody waits.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._slots.release)

    async def call(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any] | None,
        name: str,
        timeout: float | None,
        reserved: bool = False,
    ) -> Any:
        slots = self._slots
        if slots is not None and not reserved:
            await slots.acquire()
        submit = self._submit
        start = perf_counter()
        try:
            future: Any = submit(fn, *args, **kwargs) if kwargs else submit(fn, *args)
        except BaseException:
            if slots is not None:
                slots.release()
            raise
        if isinstance(future, cf.Future):
            if future.done():  # ran inline (the sequential executor): it blocked the loop
                if slots is not None:
                    slots.release()
                return await _finish_inline(future, name, timeout, start)
            if slots is not None:
                future.add_done_callback(self._release_soon)
            waiting: Any = _on_loop(future, self._loop)
        else:
            if not (hasattr(future, "add_done_callback") and hasattr(future, "cancel")):
                future = asyncio.ensure_future(future)  # a bare awaitable: give it a future
            if slots is not None:
                future.add_done_callback(lambda _: slots.release())
            waiting = future
        try:
            if timeout is None:
                return await _then_await(waiting)
            return await bounded(_then_await(waiting), name, timeout)
        except BaseException:
            future.cancel()  # one that has not started never will; a running one is abandoned
            raise

    async def reserve(self) -> None:
        """Wait for a free slot (the executor has a free worker) and hold it for the next
        ``call(..., reserved=True)``; nothing to wait for when it has no slots."""
        if self._slots is not None:
            await self._slots.acquire()

    def unreserve(self) -> None:
        """Give back a slot held by :meth:`reserve` for a call that will not be made."""
        if self._slots is not None:
            self._slots.release()

    def close(self) -> None:
        """Nothing to release: the executor is the user's."""


def _on_loop(future: cf.Future[Any], loop: asyncio.AbstractEventLoop) -> asyncio.Future[Any]:
    """``asyncio.wrap_future``, but holding what the call raised as :func:`awaitable_error`
    makes it (a ``GeneratorExit`` thrown into the awaiting coroutine would close it)."""
    waiting: asyncio.Future[Any] = loop.create_future()

    def copy(done: cf.Future[Any]) -> None:  # on the loop
        if waiting.done():
            return
        if done.cancelled():
            waiting.cancel()
        elif (error := done.exception()) is not None:
            waiting.set_exception(awaitable_error(error))
        else:
            waiting.set_result(done.result())

    def soon(done: cf.Future[Any]) -> None:  # on whichever thread completed the call
        # A closed loop: a call abandoned by a run that has ended came back; nobody waits.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(copy, done)

    future.add_done_callback(soon)
    return waiting


async def _finish_inline(
    future: cf.Future[Any], name: str, timeout: float | None, start: float
) -> Any:
    """A call that ran inside ``submit``: nothing could interrupt it, but an overrun is still a
    timeout (as on a sequential workflow run), never a success. What it raised is raised as on
    any other executor (:func:`awaitable_error`)."""
    error = future.exception()
    if error is not None:
        raise awaitable_error(error)
    value = future.result()
    if timeout is None:
        if hasattr(value, "__await__"):
            value = await value
        return value
    left = timeout - (perf_counter() - start)
    if left < 0:
        raise TaskTimeoutError(name, timeout)
    if hasattr(value, "__await__"):
        value = await bounded(value, name, timeout, left)
    return value


async def _then_await(future: Any) -> Any:
    """Await ``future``; then, if its result is awaitable, await that too (the seeds'
    ``fn=lambda uid=uid: fetch_user(uid)``: a sync function returning a coroutine)."""
    value = await future
    if hasattr(value, "__await__"):
        value = await value
    return value


def sync_calls(executor: Submitter | None, threads: int, name: str) -> SyncCalls:
    """Where sync calls made from the running loop go: ``executor``'s ``submit`` (through
    :class:`ExecutorCalls`, with its :func:`capacity_of`), or ``threads`` of our own."""
    loop = asyncio.get_running_loop()
    if executor is None:
        return Offload(loop, threads, name)
    return ExecutorCalls(loop, executor.submit, capacity_of(executor))


def capacity_of(executor: object) -> int | None:
    """How many calls ``executor`` runs at once, if it says so: its ``submit_capacity`` (an
    :class:`AsyncExecutor`'s pool size), ``max_workers`` (flowweaver's executors), else a
    ``concurrent.futures`` pool's ``_max_workers``. None: it does not say; no limit applies."""
    for attribute in ("submit_capacity", "max_workers", "_max_workers"):
        value = getattr(executor, attribute, None)
        if is_count(value, 1):
            return value
    return None
