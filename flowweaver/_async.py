"""The asyncio executor: workflows on an event loop (optionally uvloop), and a
``concurrent.futures``-style pool of calls (``submit`` / ``map`` / ``as_completed``)."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, ParamSpec, Self, TypeVar, Unpack, overload

from ._drivers import drive_async
from ._engine import Engine
from ._errors import EventLoopError
from ._executors import default_workers
from ._pool import AsyncFuture, AsyncPool, window_for
from ._retry import check_count

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable
    from types import TracebackType

    from ._options import RunOptions
    from ._run import WorkflowRun
    from ._workflow import Workflow

P = ParamSpec("P")
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

    Example:
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

    Raises:
        ConfigurationError: ``max_workers`` is not an int >= 1.
    """

    def __init__(self, use_uvloop: bool = False, max_workers: int | None = None) -> None:
        if max_workers is not None:
            check_count("AsyncExecutor", "max_workers", max_workers, minimum=1)
        self.use_uvloop = bool(use_uvloop)
        self.max_workers = max_workers
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
        with asyncio.Runner(loop_factory=_loop_factory(self.use_uvloop)) as runner:
            return runner.run(self.execute_async(workflow, **options))

    async def execute_async(self, workflow: Workflow, **options: Unpack[RunOptions]) -> WorkflowRun:
        """Run ``workflow`` on the running loop.

        Cancelling the awaiting task cancels the tasks in flight, marks everything unfinished
        ``cancelled`` and re-raises ``CancelledError``.

        Raises:
            WorkflowFailedError: A task failed (a ``RuntimeError``).
        """
        engine = Engine(workflow, options)
        engine.executor = type(self).__name__
        threads = self.max_workers or default_workers()
        await drive_async(engine, threads, self.max_workers)
        return engine.raise_for_failures()

    # -- the pool of single calls (AntFlow's concurrent.futures-style API) -------------------

    def _pool(self) -> AsyncPool:
        pool = self._calls
        if pool is None:
            size = self.max_workers or default_workers()
            pool = self._calls = AsyncPool(size)
        return pool

    @overload
    def submit(
        self, fn: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs
    ) -> AsyncFuture[R]: ...

    @overload
    def submit(
        self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs
    ) -> AsyncFuture[R]: ...

    def submit(
        self, fn: Callable[P, Any], /, *args: P.args, **kwargs: P.kwargs
    ) -> AsyncFuture[Any]:
        """Schedule ``fn(*args, **kwargs)`` on the running loop (a sync ``fn`` on a thread).

        Returns:
            An :class:`AsyncFuture`: ``await future.result()`` (or ``await future``).

        Raises:
            ExecutorShutdownError: The pool was shut down.
            EventLoopError: No event loop is running (call it from a coroutine).
        """
        return self._pool().submit(fn, args, kwargs)

    @overload
    def map(
        self,
        fn: Callable[..., Awaitable[R]],
        *iterables: Iterable[Any],
        timeout: float | None = None,
        max_concurrency: int | None = None,
    ) -> AsyncGenerator[R, None]: ...

    @overload
    def map(
        self,
        fn: Callable[..., R],
        *iterables: Iterable[Any],
        timeout: float | None = None,
        max_concurrency: int | None = None,
    ) -> AsyncGenerator[R, None]: ...

    def map(
        self,
        fn: Callable[..., Any],
        *iterables: Iterable[Any],
        timeout: float | None = None,
        max_concurrency: int | None = None,
    ) -> AsyncGenerator[Any, None]:
        """Yield ``fn`` applied to each item (zipped across ``iterables``), in input order.

        Calls run concurrently, but at most ``max_concurrency`` (default ``2 * max_workers``)
        are submitted ahead of the result being waited for: an endless iterable is fine. If a
        call raises, ``map`` raises it in its place and cancels the calls ahead of it.

        Raises:
            TimeoutError: Not every result came within ``timeout`` seconds of the call.
        """
        pool = self._pool()
        window = window_for(pool.limit, max_concurrency)
        return pool.map(fn, iterables, timeout, window)

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
