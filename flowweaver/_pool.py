"""The ``concurrent.futures``-style pool behind :class:`AsyncExecutor`'s ``submit`` / ``map`` /
``as_completed`` / ``shutdown`` (AntFlow's API).

Design:

* Calls run as asyncio tasks on the running loop, at most ``limit`` at a time. ``submit`` never
  blocks: calls beyond the limit wait in a FIFO, and each call that ends starts the next one.
  Nothing polls and an idle pool costs nothing.
* Sync functions run on flowweaver's daemon threads through ``_offload.Offload``, as sync
  tasks of a workflow on this executor do; a sync function that returns an awaitable has it
  awaited on the loop. Cancelling a running sync call abandons it and replaces its thread.
* Exceptions follow the drivers' rule (``_calls.INTERRUPTS``): whatever a call raises settles
  its future — ``BaseException`` subclasses and a ``CancelledError`` of its own included — except
  ``KeyboardInterrupt`` / ``SystemExit``, which cancel the future and propagate to the loop.
* Per-call ``retries`` run on :class:`RetryPolicy` (``retry_delay * 2 ** (n - 1)``, no jitter)
  and wait through the pool's :class:`Clock`; the last failure itself is raised, never a
  wrapper. A ``semaphore`` (an ``asyncio.Semaphore``, a :class:`Limiter`, any async context
  manager) is held around each attempt, not across the wait between attempts.
* ``map`` submits lazily and keeps at most ``window`` calls submitted ahead of the result it is
  waiting for, so a huge or endless iterable never floods memory; results come in input order.
  Its ``timeout`` applies to each result, counted from when ``map`` starts waiting for it.
* A future's ``result()`` is a coroutine (AntFlow's ``await future.result()``); waiting for it
  never cancels the call (``cancel()`` does).
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

from ._binding import is_coroutine_callable
from ._calls import INTERRUPTS, awaitable_error
from ._checks import check_count, check_number, is_count
from ._clock import Clock, SystemClock
from ._errors import ConfigurationError, EventLoopError, ExecutorShutdownError
from ._events import call_safely
from ._offload import Offload
from ._public import publish
from ._retry import RetryPolicy, check_retry_fields, judged

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Callable, Generator, Iterable
    from contextlib import AbstractAsyncContextManager

    from ._retry import ResultCondition, RetryCondition

    #: What ``semaphore=`` holds around each attempt.
    Semaphore = AbstractAsyncContextManager[object]

#: A call waiting for a free slot: its future, function, arguments, retry policy, semaphore.
_Queued = tuple[
    "asyncio.Future[Any]",
    "Callable[..., Any]",
    "tuple[Any, ...]",
    "dict[str, Any]",
    "RetryPolicy | None",
    "Semaphore | None",
]

__all__ = ["AsyncFuture", "AsyncPool"]

R = TypeVar("R")


class AsyncFuture(Generic[R]):
    """The future of one call submitted to :class:`AsyncExecutor`.

    ``await future`` or ``await future.result(timeout)`` gives the call's result (or raises its
    exception). Waiting, and timing out, never cancels the call; :meth:`cancel` does.

    Attributes:
        sequence_id: The order in which it was submitted (0, 1, …).
    """

    __slots__ = ("_future", "sequence_id")

    def __init__(self, future: asyncio.Future[R], sequence_id: int) -> None:
        self._future = future
        self.sequence_id = sequence_id

    def __repr__(self) -> str:
        state = "pending" if not self.done() else ("cancelled" if self.cancelled() else "done")
        return f"<AsyncFuture #{self.sequence_id} {state}>"

    async def result(self, timeout: float | None = None) -> R:
        """Wait for the call and return its result.

        Raises:
            TimeoutError: It did not finish within ``timeout`` seconds (it goes on running).
            asyncio.CancelledError: It was cancelled.
            Exception: Whatever the call raised.
        """
        if timeout is None:
            return await asyncio.shield(self._future)
        async with asyncio.timeout(timeout):
            return await asyncio.shield(self._future)

    def __await__(self) -> Generator[Any, None, R]:
        return self.result().__await__()

    def done(self) -> bool:
        return self._future.done()

    def cancelled(self) -> bool:
        return self._future.cancelled()

    def cancel(self) -> bool:
        """Cancel the call (a queued one never starts, a running one is cancelled)."""
        return self._future.cancel()

    def exception(self) -> BaseException | None:
        """The call's exception; None if it succeeded or has not finished yet."""
        future = self._future
        return future.exception() if future.done() else None

    def add_done_callback(self, fn: Callable[[AsyncFuture[R]], object]) -> None:
        """Call ``fn(self)`` on the loop once the call has ended.

        An exception ``fn`` raises is logged (``call_safely``), never handed to the loop's
        exception handler, and never changes the call's outcome.
        """
        self._future.add_done_callback(
            lambda _: call_safely(fn, (self,), "done callback %r of %r", fn, self)
        )


class _Shutdown:
    """What ``shutdown()`` returns: its work is done when called; awaiting it waits for the
    calls in flight (when ``wait``). Not awaiting it is fine: it is not a coroutine."""

    __slots__ = ("_pool", "_wait")

    def __init__(self, pool: AsyncPool, wait: bool) -> None:
        self._pool = pool
        self._wait = wait

    def __await__(self) -> Generator[Any, None, None]:
        return self._pool._drained(self._wait).__await__()


class AsyncPool:
    """The pool of one :class:`AsyncExecutor`; see the module docstring."""

    def __init__(self, limit: int, clock: Clock | None = None) -> None:
        self.limit = limit  # calls at once, and threads for the sync ones
        self.clock: Clock = clock if clock is not None else SystemClock()
        self._threads: Offload | None = None  # made on first sync call, on the pool's loop
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: deque[_Queued] = deque()
        self._running: set[asyncio.Task[None]] = set()
        self._next_id = 0
        self.closed = False

    @property
    def idle(self) -> bool:
        """Nothing running and nothing queued."""
        return not self._running and not self._queue

    # -- submit --------------------------------------------------------------------------------

    def submit(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        policy: RetryPolicy | None = None,
        semaphore: Semaphore | None = None,
    ) -> AsyncFuture[Any]:
        if self.closed:
            raise ExecutorShutdownError("cannot submit to an AsyncExecutor that was shut down")
        if not callable(fn):
            raise ConfigurationError(f"submit() needs a callable, got {fn!r}")
        loop = self._bind()
        future: asyncio.Future[Any] = loop.create_future()
        handle = AsyncFuture(future, self._next_id)
        self._next_id += 1
        call: _Queued = (future, fn, args, kwargs, policy, semaphore)
        if len(self._running) < self.limit:
            self._start(call)
        else:
            self._queue.append(call)
        return handle

    def _bind(self) -> asyncio.AbstractEventLoop:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise EventLoopError(
                "AsyncExecutor.submit() needs a running event loop: call it from a coroutine "
                "(use execute() to run a workflow from sync code)"
            ) from None
        if self._loop is not loop:
            if self._running or self._queue:
                raise EventLoopError(
                    "this AsyncExecutor is running calls on another event loop; "
                    "use one executor per loop"
                )
            self._release()  # threads that report to the old loop
            self._loop = loop
        return loop

    def _start(self, call: _Queued) -> None:
        assert self._loop is not None
        future = call[0]
        task = self._loop.create_task(self._call(*call))
        self._running.add(task)
        task.add_done_callback(self._ended)
        # Cancelling the future cancels the running call.
        future.add_done_callback(lambda f: task.cancel() if f.cancelled() else None)

    async def _call(
        self,
        future: asyncio.Future[Any],
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        policy: RetryPolicy | None,
        semaphore: Semaphore | None,
    ) -> None:
        attempt = 1
        while True:
            try:
                if semaphore is None:
                    value = await self._attempt(fn, args, kwargs)
                else:
                    async with semaphore:
                        value = await self._attempt(fn, args, kwargs)
            except BaseException as error:
                me = asyncio.current_task()
                if isinstance(error, INTERRUPTS) or (me is not None and me.cancelling()):
                    future.cancel()  # Ctrl-C, sys.exit(), or the call was cancelled
                    raise
                if policy is not None:  # the one retry rule (retry_if, Retry-After, results)
                    delay, error = policy.decide(error, attempt)
                    if delay is not None:
                        await self.clock.sleep_async(delay)
                        attempt += 1
                        continue
                if not future.done():  # the call's failure, whatever its type
                    future.set_exception(awaitable_error(error))
                return
            if not future.done():
                future.set_result(value)
            return

    async def _attempt(
        self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        if is_coroutine_callable(fn):
            return await fn(*args, **kwargs)
        return await self._offload().call(fn, args, kwargs, "submit", None)

    def _offload(self) -> Offload:
        if self._threads is None:
            assert self._loop is not None
            self._threads = Offload(self._loop, self.limit, "flowweaver-async-pool")
        return self._threads

    def _ended(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        queue = self._queue
        while queue and len(self._running) < self.limit:
            call = queue.popleft()
            if not call[0].cancelled():
                self._start(call)
        if self.closed and self.idle:  # shut down without waiting: the last call frees threads
            self._release()

    # -- map / as_completed ----------------------------------------------------------------------

    async def map(
        self,
        fn: Callable[..., Any],
        iterables: tuple[Iterable[Any], ...],
        timeout: float | None,
        window: int,
        policy: RetryPolicy | None = None,
    ) -> AsyncGenerator[Any, None]:
        source = iter(zip(*iterables, strict=False))
        ahead: deque[AsyncFuture[Any]] = deque()
        exhausted = False
        try:
            while True:
                while not exhausted and len(ahead) < window:
                    args = next(source, None)
                    if args is None:
                        exhausted = True
                    else:
                        ahead.append(self.submit(fn, args, {}, policy))
                if not ahead:
                    return
                head = ahead.popleft()
                try:
                    value = await head.result(timeout)
                except BaseException:
                    head.cancel()
                    raise
                yield value
        finally:
            for future in ahead:  # an error, a timeout, or the caller stopped early
                future.cancel()

    async def as_completed(
        self, futures: Iterable[AsyncFuture[Any]], timeout: float | None
    ) -> AsyncGenerator[AsyncFuture[Any], None]:
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        todo = list(dict.fromkeys(futures))
        for future in todo:
            if not isinstance(future, AsyncFuture):
                raise ConfigurationError(f"as_completed() needs AsyncFutures, got {future!r}")
        finished: deque[AsyncFuture[Any]] = deque()
        wake = asyncio.Event()
        hooks: list[tuple[asyncio.Future[Any], Callable[[asyncio.Future[Any]], None]]] = []
        for future in todo:
            if future.done():
                finished.append(future)
            else:
                hook = _on_done(future, finished, wake)
                future._future.add_done_callback(hook)
                hooks.append((future._future, hook))
        try:
            for _ in range(len(todo)):
                while not finished:
                    wake.clear()
                    async with asyncio.timeout_at(deadline):
                        await wake.wait()
                yield finished.popleft()
        finally:
            for inner, hook in hooks:
                inner.remove_done_callback(hook)

    # -- shutdown ------------------------------------------------------------------------------

    def shutdown(self, wait: bool, cancel_futures: bool) -> _Shutdown:
        self.closed = True
        if cancel_futures:
            while self._queue:
                self._queue.popleft()[0].cancel()
        if not self._running and not self._queue:
            self._release()
        return _Shutdown(self, wait)

    def cancel_all(self) -> None:
        """Cancel every queued and running call (an ``async with`` body raised)."""
        while self._queue:
            self._queue.popleft()[0].cancel()
        for task in self._running:
            task.cancel()

    async def _drained(self, wait: bool) -> None:
        if wait:
            while self._running:
                await asyncio.wait(set(self._running))
        if not self._running and not self._queue:
            self._release()

    def _release(self) -> None:
        threads, self._threads = self._threads, None
        if threads is not None:
            # A sync call that was cancelled may still be running: never block the loop on it.
            threads.close()


def _on_done(
    future: AsyncFuture[Any], finished: deque[AsyncFuture[Any]], wake: asyncio.Event
) -> Callable[[asyncio.Future[Any]], None]:
    def hook(_: asyncio.Future[Any]) -> None:
        finished.append(future)
        wake.set()

    return hook


def retry_policy(
    owner: str,
    retries: object,
    retry_delay: object,
    retry_if: object = None,
    retry_if_result: object = None,
) -> RetryPolicy | None:
    """AntFlow's per-call retries as a :class:`RetryPolicy` (None: no retries, no conditions).

    The wait before retry ``n`` is ``retry_delay * 2 ** (n - 1)``, without jitter or cap (a
    failure's Retry-After may lengthen it); ``retry_if`` and ``retry_if_result`` are the
    policy's own.
    """
    count = check_count(owner, "retries", retries)
    delay = check_number(owner, "retry_delay", retry_delay)
    check_retry_fields(owner, count, delay, 2.0, _NO_CAP, 0.0, (Exception,), retry_if,
                       None, retry_if_result)  # fmt: skip
    if count == 0 and retry_if is None and retry_if_result is None:
        return None
    return RetryPolicy(
        count, delay, backoff=2.0, max_delay=_NO_CAP, jitter=0.0,
        retry_if=cast("RetryCondition | None", retry_if),
        retry_if_result=cast("ResultCondition | None", retry_if_result),
    )  # fmt: skip


def judged_call(fn: Callable[..., Any], policy: RetryPolicy | None) -> Callable[..., Any]:
    """``fn``, judging its result when the policy has a ``retry_if_result``."""
    if policy is None or policy.retry_if_result is None:
        return fn
    return judged(fn, policy.retry_if_result, getattr(fn, "__name__", None) or repr(fn))


def check_semaphore(semaphore: object) -> Semaphore | None:
    """``semaphore=`` must be None or an async context manager."""
    if semaphore is None or (hasattr(semaphore, "__aenter__") and hasattr(semaphore, "__aexit__")):
        return cast("Semaphore | None", semaphore)
    raise ConfigurationError(
        "submit(): semaphore must be an async context manager (an asyncio.Semaphore, a "
        f"Limiter) or None, got {semaphore!r}"
    )


#: The cap of AntFlow-style exponential waits: none (a finite number RetryPolicy accepts).
_NO_CAP = 1e300


def window_for(limit: int, max_concurrency: object) -> int:
    """How many calls ``map`` keeps submitted ahead (``max_concurrency`` or twice the pool)."""
    if max_concurrency is None:
        return 2 * limit
    if not is_count(max_concurrency, 1):
        raise ConfigurationError(
            f"map(): max_concurrency must be an int >= 1 or None, got {max_concurrency!r}"
        )
    return max_concurrency


publish(__name__)  # last: every exported class above exists
