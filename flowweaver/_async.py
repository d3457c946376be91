"""The asyncio executor: workflows on an event loop (optionally uvloop), and a
``concurrent.futures``-style pool of calls (``submit`` / ``map`` / ``as_completed``)."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, Self, TypeVar, Unpack, overload

from ._async_driver import drive_async
from ._calls import signals_wake
from ._checks import check_count, check_number
from ._clock import Clock, SystemClock
from ._engine_factory import make_engine
from ._errors import ConfigurationError, EventLoopError
from ._executors import default_workers
from ._pool import (
    AsyncFuture,
    AsyncPool,
    check_semaphore,
    judged_call,
    retry_policy,
    window_for,
)
from ._pool_wait import MapResults, WaitStrategy, wait
from ._public import publish

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable
    from contextlib import AbstractAsyncContextManager
    from types import TracebackType

    from ._options import RunOptions
    from ._run import WorkflowRun
    from ._workflow import Workflow

R = TypeVar("R")

__all__ = ["AsyncExecutor"]

logger = logging.getLogger("flowweaver.executors")


def _loop_factory(use_uvloop: bool) -> Callable[[], asyncio.AbstractEventLoop] | None:
    if not use_uvloop:
        return None
    try:
        import uvloop
    except ImportError:
        logger.warning(
            "use_uvloop=True but uvloop is not installed (pip install 'flowweaver[uvloop]'); "
            "running on the default asyncio event loop"
        )
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


class AsyncExecutor:
    """Runs workflows on an asyncio event loop: I/O-bound work without a thread per task.

    Async task functions run as tasks on the loop; sync ones run on daemon threads, and an
    awaitable they return is awaited on the loop (so the seed's
    ``fn=lambda uid=uid: fetch_user(uid)`` runs concurrently). A timed-out async task is
    cancelled; a timed-out sync task's thread cannot be, so its late result is discarded and a
    fresh thread takes its place. Under fail-fast, when a task fails for good, the coroutines
    in flight are cancelled and the sync calls in flight run to their end.

    Examples:
        >>> import asyncio
        >>> from flowweaver import Task, Workflow, AsyncExecutor
        >>> async def fetch() -> int:
        ...     await asyncio.sleep(0)
        ...     return 7
        >>> wf = Workflow("w")
        >>> wf.add_task(Task(name="fetch", fn=fetch))
        >>> AsyncExecutor().execute(wf).result("fetch")
        7

    ``execute`` works from sync code (it runs its own loop); inside a running loop (Jupyter, a
    web server) use ``await executor.execute_async(wf)``.

    It is also a ``concurrent.futures``-style pool for single calls, inside a running loop::

        async with AsyncExecutor(max_workers=10) as executor:
            future = executor.submit(fetch, url)        # an AsyncFuture
            page = await future.result()                # or: await future
            async for value in executor.map(fetch, urls):   # input order
                ...
            pages = await executor.map(fetch, urls, retries=2)  # or all at once, as a list
            done, pending = await executor.wait(futures, return_when=WaitStrategy.FIRST_COMPLETED)
            async for done in executor.as_completed(futures):  # completion order
                ...

    At most ``max_workers`` calls run at once; more wait their turn (``map`` keeps at most
    ``2 * max_workers`` submitted ahead, whatever the length of its input). Leaving the
    ``async with`` waits for the calls in flight and shuts the pool down; leaving it with an
    error cancels them. A later ``async with`` on the same executor opens a fresh pool.

    Args:
        use_uvloop: Run ``execute`` on uvloop. Without uvloop installed this logs a warning and
            uses asyncio. (``execute_async`` runs on whatever loop is running.)
        max_workers: Most tasks in flight at once in a workflow (None: no limit) and calls at
            once in the pool (None: ``min(32, cpu_count + 4)``); also the number of daemon
            threads for a workflow's sync functions (the same default). A sync call only
            starts when a thread is free, so its timeout never ticks while it waits.
        clock: Where the pool's retry waits come from (tests inject one); workflows take
            theirs from the run's options.

    Raises:
        ConfigurationError: ``max_workers`` is not an int >= 1, or ``clock`` is no Clock.
    """

    #: Calls run on this loop or its threads: an OpenTelemetry span reaches them.
    local_calls = True
    #: :meth:`submit` returns an awaitable, not a ``concurrent.futures.Future`` (so
    #: :class:`PoolExecutor` refuses to wrap it).
    submit_is_awaitable = True

    def __init__(
        self,
        use_uvloop: bool = False,
        max_workers: int | None = None,
        *,
        clock: Clock | None = None,
    ) -> None:
        if max_workers is not None:
            check_count("AsyncExecutor", "max_workers", max_workers, minimum=1)
        if clock is not None and not isinstance(clock, Clock):
            raise ConfigurationError(f"AsyncExecutor: clock must implement Clock, got {clock!r}")
        self.use_uvloop = bool(use_uvloop)
        self.max_workers = max_workers
        self.clock: Clock = clock if clock is not None else SystemClock()
        self._calls: AsyncPool | None = None

    def __repr__(self) -> str:
        return f"AsyncExecutor(use_uvloop={self.use_uvloop!r}, max_workers={self.max_workers!r})"

    def execute(self, workflow: Workflow, **options: Unpack[RunOptions]) -> WorkflowRun:
        """Run ``workflow`` on a new event loop and return when it has ended.

        Raises:
            EventLoopError: Called from inside a running event loop; await
                :meth:`execute_async` there instead.
            WorkflowFailedError: A task failed (a ``RuntimeError``).
        """
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise EventLoopError(
                "AsyncExecutor.execute() cannot run inside a running event loop; "
                "use 'await executor.execute_async(workflow)' (or 'await workflow.execute_async()')"
            )
        with (
            asyncio.Runner(loop_factory=_loop_factory(self.use_uvloop)) as runner,
            signals_wake(runner.get_loop()),  # Ctrl-C wakes an idle loop (observers waiting)
        ):
            return runner.run(self.execute_async(workflow, **options))

    async def execute_async(self, workflow: Workflow, **options: Unpack[RunOptions]) -> WorkflowRun:
        """Run ``workflow`` on the running loop.

        Cancelling the awaiting task cancels the tasks in flight, marks everything unfinished
        ``cancelled`` and re-raises ``CancelledError``.

        Raises:
            WorkflowFailedError: A task failed (a ``RuntimeError``).
        """
        engine = make_engine(workflow, options)
        engine.executor, engine.local_calls = type(self).__name__, self.local_calls
        threads = self.max_workers or default_workers()
        await drive_async(engine, threads, self.max_workers)
        return engine.raise_for_failures()

    # -- the pool of single calls (AntFlow's concurrent.futures-style API) -------------------

    @property
    def submit_capacity(self) -> int:
        """How many :meth:`submit` calls run at once (``max_workers``, or the default)."""
        return self._pool().limit

    def _pool(self) -> AsyncPool:
        pool = self._calls
        if pool is None:
            size = self.max_workers or default_workers()
            pool = self._calls = AsyncPool(size, self.clock)
        return pool

    @overload
    def submit(
        self,
        fn: Callable[..., Awaitable[R]],
        /,
        *args: Any,
        retries: int = 0,
        retry_delay: float = 0.1,
        retry_if: Callable[[BaseException], object] | None = None,
        retry_if_result: Callable[[Any], object] | None = None,
        semaphore: AbstractAsyncContextManager[object] | None = None,
        **kwargs: Any,
    ) -> AsyncFuture[R]: ...

    @overload
    def submit(
        self,
        fn: Callable[..., R],
        /,
        *args: Any,
        retries: int = 0,
        retry_delay: float = 0.1,
        retry_if: Callable[[BaseException], object] | None = None,
        retry_if_result: Callable[[Any], object] | None = None,
        semaphore: AbstractAsyncContextManager[object] | None = None,
        **kwargs: Any,
    ) -> AsyncFuture[R]: ...

    def submit(
        self,
        fn: Callable[..., Any],
        /,
        *args: Any,
        retries: int = 0,
        retry_delay: float = 0.1,
        retry_if: Callable[[BaseException], object] | None = None,
        retry_if_result: Callable[[Any], object] | None = None,
        semaphore: AbstractAsyncContextManager[object] | None = None,
        **kwargs: Any,
    ) -> AsyncFuture[Any]:
        """Schedule ``fn(*args, **kwargs)`` on the running loop (a sync ``fn`` on a thread).

        Args:
            fn: An async or a sync callable.
            *args: Its positional arguments.
            retries: Run it again up to this many times when it raises; the wait before retry
                ``n`` is ``retry_delay * 2 ** (n - 1)``, through the executor's clock. The last
                failure is what the future raises (never a wrapper).
            retry_delay: Seconds before the first retry.
            retry_if: ``(error) -> bool``: a false answer makes a failure final (as
                ``Task(retry_if=...)``); a failure's ``retry_after`` lengthens the next wait.
            retry_if_result: ``(result) -> bool``: a true answer counts a returned value as
                a failure (:class:`~flowweaver.RejectedResultError`), retried while
                ``retries`` are left; then the future raises it. One rule for all three:
                :meth:`RetryPolicy.decide <flowweaver.RetryPolicy.decide>`. A predicate that
                raises makes its exception the call's failure.
            semaphore: Held around each attempt (not across the waits): an
                ``asyncio.Semaphore``, a :class:`~flowweaver.Limiter`, any async context
                manager.
            **kwargs: Its keyword arguments (``retries``, ``retry_delay``, ``retry_if``,
                ``retry_if_result`` and ``semaphore`` are this method's own).

        Returns:
            An :class:`AsyncFuture`: ``await future.result()`` (or ``await future``).

        Raises:
            ExecutorShutdownError: The pool was shut down.
            EventLoopError: No event loop is running (call it from a coroutine).
            ConfigurationError: A bad ``retries``, ``retry_delay`` or ``semaphore``.
        """
        policy = retry_policy("submit()", retries, retry_delay, retry_if, retry_if_result)
        fn = judged_call(fn, policy)
        return self._pool().submit(fn, args, kwargs, policy, check_semaphore(semaphore))

    @overload
    def map(
        self,
        fn: Callable[..., Awaitable[R]],
        *iterables: Iterable[Any],
        timeout: float | None = None,
        retries: int = 0,
        retry_delay: float = 0.1,
        retry_if: Callable[[BaseException], object] | None = None,
        retry_if_result: Callable[[Any], object] | None = None,
        max_concurrency: int | None = None,
    ) -> MapResults[R]: ...

    @overload
    def map(
        self,
        fn: Callable[..., R],
        *iterables: Iterable[Any],
        timeout: float | None = None,
        retries: int = 0,
        retry_delay: float = 0.1,
        retry_if: Callable[[BaseException], object] | None = None,
        retry_if_result: Callable[[Any], object] | None = None,
        max_concurrency: int | None = None,
    ) -> MapResults[R]: ...

    def map(
        self,
        fn: Callable[..., Any],
        *iterables: Iterable[Any],
        timeout: float | None = None,
        retries: int = 0,
        retry_delay: float = 0.1,
        retry_if: Callable[[BaseException], object] | None = None,
        retry_if_result: Callable[[Any], object] | None = None,
        max_concurrency: int | None = None,
    ) -> MapResults[Any]:
        """``fn`` applied to each item (zipped across ``iterables``), in input order.

        ``await executor.map(fn, xs)`` returns the list of results (AntFlow 0.10);
        ``async for r in executor.map(fn, xs)`` streams them (the seeds). Either way calls run
        concurrently, but at most ``max_concurrency`` (default ``2 * max_workers``) are
        submitted ahead of the result being waited for: an endless iterable is fine when
        streamed. If a call raises (after its ``retries``), ``map`` raises it in its place and
        cancels the calls ahead of it. See :meth:`submit` for ``retries``, ``retry_delay``,
        ``retry_if`` and ``retry_if_result``.

        Raises:
            TimeoutError: A result did not come within ``timeout`` seconds of ``map`` starting
                to wait for it (AntFlow's per-result timeout); the rest are cancelled.
        """
        return MapResults(
            self.map_iter(
                fn,
                *iterables,
                timeout=timeout,
                retries=retries,
                retry_delay=retry_delay,
                retry_if=retry_if,
                retry_if_result=retry_if_result,
                max_concurrency=max_concurrency,
            )
        )

    @overload
    def map_iter(
        self,
        fn: Callable[..., Awaitable[R]],
        *iterables: Iterable[Any],
        timeout: float | None = None,
        retries: int = 0,
        retry_delay: float = 0.1,
        retry_if: Callable[[BaseException], object] | None = None,
        retry_if_result: Callable[[Any], object] | None = None,
        max_concurrency: int | None = None,
    ) -> AsyncGenerator[R, None]: ...

    @overload
    def map_iter(
        self,
        fn: Callable[..., R],
        *iterables: Iterable[Any],
        timeout: float | None = None,
        retries: int = 0,
        retry_delay: float = 0.1,
        retry_if: Callable[[BaseException], object] | None = None,
        retry_if_result: Callable[[Any], object] | None = None,
        max_concurrency: int | None = None,
    ) -> AsyncGenerator[R, None]: ...

    def map_iter(
        self,
        fn: Callable[..., Any],
        *iterables: Iterable[Any],
        timeout: float | None = None,
        retries: int = 0,
        retry_delay: float = 0.1,
        retry_if: Callable[[BaseException], object] | None = None,
        retry_if_result: Callable[[Any], object] | None = None,
        max_concurrency: int | None = None,
    ) -> AsyncGenerator[Any, None]:
        """The streaming form of :meth:`map` (AntFlow 0.10's name): an async generator."""
        if timeout is not None:
            check_number("map()", "timeout", timeout)
        policy = retry_policy("map()", retries, retry_delay, retry_if, retry_if_result)
        pool = self._pool()
        window = window_for(pool.limit, max_concurrency)
        return pool.map(judged_call(fn, policy), iterables, timeout, window, policy)

    async def wait(
        self,
        futures: Iterable[AsyncFuture[R]],
        timeout: float | None = None,
        return_when: WaitStrategy | str = WaitStrategy.ALL_COMPLETED,
    ) -> tuple[set[AsyncFuture[R]], set[AsyncFuture[R]]]:
        """Wait for ``futures`` by a :class:`WaitStrategy`; return ``(done, not_done)``.

        ``FIRST_COMPLETED`` returns once any has finished, ``FIRST_EXCEPTION`` once any has
        raised (or all have finished), ``ALL_COMPLETED`` once all have. Nothing is cancelled.

        Raises:
            TimeoutError: With ``ALL_COMPLETED``, not all finished within ``timeout`` seconds
                (AntFlow 0.10's rule; the other strategies return what is done by then).
            ConfigurationError: ``return_when`` is not a strategy, or a future is not an
                :class:`AsyncFuture`.
        """
        if timeout is not None:
            check_number("wait()", "timeout", timeout)
        return await wait(futures, timeout, return_when)

    def as_completed(
        self, futures: Iterable[AsyncFuture[Any]], timeout: float | None = None
    ) -> AsyncGenerator[AsyncFuture[Any], None]:
        """Yield the futures as they finish (each once).

        Raises:
            TimeoutError: Not all finished within ``timeout`` seconds.
        """
        return self._pool().as_completed(futures, timeout)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> Awaitable[None]:
        """Refuse new calls (``cancel_futures``: cancel the queued ones too).

        Takes effect at once; ``await executor.shutdown()`` also waits (with ``wait``) for the
        calls in flight. Workflows can still be executed afterwards.
        """
        return self._pool().shutdown(wait, cancel_futures)

    async def __aenter__(self) -> Self:
        pool = self._calls
        if pool is not None and pool.closed and pool.idle:
            self._calls = None  # a new `async with` block gets a fresh pool
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        pool = self._pool()
        if exc_type is not None:
            pool.cancel_all()  # as a TaskGroup: an error (or cancellation) stops the rest
        await pool.shutdown(wait=True, cancel_futures=exc_type is not None)


publish(__name__)  # last: every exported class above exists
