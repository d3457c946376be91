"""Executors decide *where* a call runs; the engine decides everything else.

``Executor`` is the whole protocol a backend needs: ``submit(fn, *args, **kwargs) -> Future``,
the shape of ``concurrent.futures.Executor.submit``. Every flowweaver executor but
:class:`AsyncExecutor` (whose ``submit`` returns an awaitable ``AsyncFuture`` on the running
loop) implements it, so the pipeline and users can send single calls to any of them, and any
``concurrent.futures.Executor`` (loky, mpi4py, a Dask client's ``get_executor(pure=False)``) can
run a workflow through :class:`PoolExecutor`. :class:`BaseExecutor` turns a ``submit`` into a
workflow runner by handing it to the engine's pool driver.
"""

from __future__ import annotations

import os
import threading
from typing import (
    TYPE_CHECKING,
    Any,
    ParamSpec,
    Protocol,
    Self,
    TypeAlias,
    TypeVar,
    Unpack,
    runtime_checkable,
)

from ._checks import check_count
from ._drivers import drive_inline, drive_pool
from ._engine_factory import make_engine
from ._errors import ConfigurationError
from ._handoff import drive_handoff, handoff_suits
from ._lanes import FutureLane, WorkerThreads

if TYPE_CHECKING:
    import concurrent.futures as cf
    from collections.abc import Callable
    from types import TracebackType

    from ._engine import Engine
    from ._options import RunOptions
    from ._run import WorkflowRun
    from ._workflow import Workflow

__all__ = [
    "BaseExecutor",
    "Executor",
    "ExecutorLike",
    "PoolExecutor",
    "SequentialExecutor",
    "ThreadedExecutor",
    "WorkflowRunner",
    "dask_kind",
]

P = ParamSpec("P")
R = TypeVar("R")


@runtime_checkable
class Executor(Protocol):
    """Where calls run: anything with ``concurrent.futures``-style ``submit``."""

    def submit(self, fn: Callable[..., R], /, *args: Any, **kwargs: Any) -> cf.Future[R]: ...


@runtime_checkable
class WorkflowRunner(Protocol):
    """Anything that can run a whole workflow (every flowweaver executor)."""

    def execute(self, workflow: Workflow, **options: Unpack[RunOptions]) -> WorkflowRun: ...

    async def execute_async(
        self, workflow: Workflow, **options: Unpack[RunOptions]
    ) -> WorkflowRun: ...


# A string: concurrent.futures loads only when a program uses a pool (see _calls).
ExecutorLike: TypeAlias = "WorkflowRunner | Executor | cf.Executor"


class BaseExecutor:
    """Base of flowweaver's executors: subclasses say where a call runs (``submit``); running a
    workflow — the engine, the pool driver, the failure policy — comes with it.

    To plug in a backend of your own, subclass this and implement :meth:`submit`; or pass any
    ``concurrent.futures.Executor`` to :class:`PoolExecutor`. Executors are context managers;
    :meth:`shutdown` releases what :meth:`submit` started (pools made for a workflow run are
    released when the run ends).
    """

    #: Most calls a workflow run keeps in flight (None: no limit).
    max_workers: int | None = None
    #: Whether calls run in this process, so the caller's context (an OpenTelemetry span)
    #: can be made current inside them; False where they cross to other processes.
    local_calls: bool = False

    def submit(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> cf.Future[R]:
        """Schedule ``fn(*args, **kwargs)``; return its future."""
        raise NotImplementedError

    def execute(self, workflow: Workflow, **options: Unpack[RunOptions]) -> WorkflowRun:
        """Run ``workflow`` to the end.

        Returns:
            The run record (also ``workflow.last_run``).

        Raises:
            WorkflowFailedError: A task failed (a ``RuntimeError``); the run record is complete.
            ConfigurationError: An option is invalid.
        """
        engine = make_engine(workflow, options)
        engine.executor, engine.local_calls = type(self).__name__, self.local_calls
        self._drive(engine)
        return engine.raise_for_failures()

    async def execute_async(self, workflow: Workflow, **options: Unpack[RunOptions]) -> WorkflowRun:
        """Run ``workflow`` from a coroutine without blocking the event loop.

        The run is driven from a worker thread. If the awaiting task is cancelled, the run stops
        starting tasks, waits for the calls in flight, and the cancellation propagates.
        """
        import asyncio

        engine = make_engine(workflow, options)
        engine.executor, engine.local_calls = type(self).__name__, self.local_calls
        driving = asyncio.ensure_future(asyncio.to_thread(self._drive, engine))
        try:
            await asyncio.shield(driving)
        except asyncio.CancelledError:
            engine.request_stop()
            while not driving.done():  # the run is settled before the cancellation goes on,
                try:  # even if the awaiting task is cancelled again meanwhile
                    await asyncio.shield(driving)
                except asyncio.CancelledError:
                    continue
            raise
        return engine.raise_for_failures()

    def _drive(self, engine: Engine) -> None:
        """Drive ``engine`` to its end on this thread (execute() minus the final raise)."""
        lane = FutureLane(self.submit)
        try:
            drive_pool(engine, lane, self.max_workers)
        finally:
            lane.close(wait=False)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Release resources started by :meth:`submit`. Idempotent."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.shutdown()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(max_workers={self.max_workers!r})"


class SequentialExecutor(BaseExecutor):
    """Runs every task inline on the calling thread, one at a time, in a deterministic order.

    The debugging executor: same order every run (ready-queue FIFO, ties by insertion order),
    tracebacks in your own thread, breakpoints work. Async tasks are run to completion on a
    private event loop. A sync call cannot be interrupted on its own thread: a sync task that
    overruns its timeout is marked failed (``TaskTimeoutError``) when it returns, and its result
    is discarded. Use :class:`ThreadedExecutor` if a call may hang.

    Examples:
        >>> from flowweaver import Task, Workflow, SequentialExecutor
        >>> wf = Workflow("w")
        >>> wf.add_task(Task(name="a", fn=lambda: 41))
        >>> SequentialExecutor().execute(wf).result("a")
        41
    """

    max_workers = 1
    local_calls = True

    def submit(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> cf.Future[R]:
        """Run ``fn`` now, on this thread; return a finished future."""
        from concurrent.futures import Future  # on first use: see ExecutorLike

        future: Future[R] = Future()
        try:
            result = fn(*args, **kwargs)
        except BaseException as error:  # handed to the future, like a pool worker would
            future.set_exception(error)
        else:
            future.set_result(result)
        return future

    def _drive(self, engine: Engine) -> None:
        drive_inline(engine)

    def __repr__(self) -> str:
        return "SequentialExecutor()"


def default_workers() -> int:
    """Threads when none are asked for: ``min(32, cpu_count + 4)``, as ``concurrent.futures``."""
    return min(32, (os.cpu_count() or 1) + 4)


class ThreadedExecutor(BaseExecutor):
    """Runs tasks on a thread pool; each task starts as soon as its dependencies are done.

    For I/O-bound sync functions (or C code that releases the GIL). Async tasks run to
    completion on a private event loop inside the worker thread. A thread cannot be killed: a
    task past its timeout is marked failed (``TaskTimeoutError``, retried if allowed) and its
    late result is discarded, but its thread runs on until the call returns.

    Each :meth:`execute` uses its own ``max_workers`` daemon threads, released when the run
    ends (a call abandoned after its timeout cannot keep the process from exiting). In a run
    without observers a thread that finishes a call settles it and runs the task it made
    ready itself, so a chain costs no thread hand-off; runs with observers settle every task
    on the calling thread, where their callbacks run (see the Executors guide, "Threads").
    :meth:`submit` (for the pipeline and direct use) uses a ``ThreadPoolExecutor`` kept until
    :meth:`shutdown`.

    Args:
        max_workers: Threads (default ``min(32, cpu_count + 4)``, as ``concurrent.futures``).

    Raises:
        ConfigurationError: ``max_workers`` is not an int >= 1.
    """

    local_calls = True

    def __init__(self, max_workers: int | None = None) -> None:
        if max_workers is not None:
            check_count("ThreadedExecutor", "max_workers", max_workers, minimum=1)
        self.max_workers: int = max_workers if max_workers is not None else default_workers()
        self._pool: cf.ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def submit(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> cf.Future[R]:
        with self._lock:
            if self._pool is None:
                from concurrent.futures import ThreadPoolExecutor  # on first use

                self._pool = ThreadPoolExecutor(self.max_workers, "flowweaver-thread")
            pool = self._pool
        return pool.submit(fn, *args, **kwargs)

    def _drive(self, engine: Engine) -> None:
        if handoff_suits(engine):  # workers settle their own outcomes: no round trip a task
            drive_handoff(engine, self.max_workers, "flowweaver-run")
            return
        lane = WorkerThreads(self.max_workers, "flowweaver-run")
        ended = False
        try:
            drive_pool(engine, lane, self.max_workers, queue_depth=max(64, 2 * self.max_workers))
            ended = True
        finally:
            # After an interrupt a call may still run, maybe forever: do not wait for it (the
            # threads are daemons). Abandoned calls are never waited for; queued ones never start.
            lane.close(wait=ended)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=wait, cancel_futures=cancel_futures)


def dask_kind(obj: object) -> str | None:
    """The class name of a Dask ``distributed`` object, told without importing distributed."""
    cls = type(obj)
    return cls.__name__ if cls.__module__.partition(".")[0] == "distributed" else None


class PoolExecutor(BaseExecutor):
    """Runs tasks on any ``concurrent.futures.Executor`` you bring: a thread or process pool,
    ``loky``, ``mpi4py.futures.MPIPoolExecutor``, a Dask client's ``get_executor(pure=False)``.

    Each attempt is one ``submit`` and its result comes back through the future, so everything
    a task's function needs must reach the pool's workers: for process pools (loky, MPI, Dask)
    the function and its arguments must pickle (the standard ``ProcessPoolExecutor`` cannot
    pickle lambdas or closures; loky and Dask use cloudpickle, which can). Retries, timeouts,
    callbacks and the failure policy are the engine's, as on every executor; a timed-out call
    is cancelled if it has not started, else abandoned (its late result discarded).

    Examples:
        >>> from concurrent.futures import ThreadPoolExecutor
        >>> with ThreadPoolExecutor(4) as pool:
        ...     run = workflow.execute(PoolExecutor(pool))  # doctest: +SKIP

    Args:
        executor: The pool. flowweaver does not shut it down: it is yours.
        max_workers: Most calls in flight at once. Set it to the pool's size so that a task's
            timeout starts when the call starts, not when it is queued. Default: the pool's
            ``_max_workers`` if it has one, else no limit.

    Raises:
        ConfigurationError: ``executor`` has no ``submit``; it is a Dask ``Client`` (use
            :class:`DaskExecutor`) or a Dask client executor made without ``pure=False`` (Dask
            would take a retry for the call it already ran, and never run it again); or
            ``max_workers`` < 1.
    """

    def __init__(self, executor: Executor, max_workers: int | None = None) -> None:
        given: object = executor  # typed callers cannot pass one; untyped ones can
        if getattr(given, "submit_is_awaitable", False):  # AsyncExecutor: not a Future
            raise ConfigurationError(
                f"PoolExecutor cannot wrap {executor!r}: its submit() returns an awaitable "
                "future; run workflows on it directly (it is an executor)"
            )
        if not callable(getattr(executor, "submit", None)):
            raise ConfigurationError(
                f"PoolExecutor needs an object with submit(), got {executor!r}"
            )
        kind = dask_kind(executor)
        if kind == "Client":
            raise ConfigurationError(
                f"PoolExecutor cannot run on a Dask client; use DaskExecutor(client), "
                f"got {executor!r}"
            )
        if kind == "ClientExecutor" and getattr(executor, "_kwargs", {}).get("pure") is not False:
            raise ConfigurationError(
                "a Dask client executor must be made with client.get_executor(pure=False), or "
                f"Dask takes a retry for the call it already ran; got {executor!r}"
            )
        if max_workers is None:
            guess = getattr(executor, "_max_workers", None)
            max_workers = guess if isinstance(guess, int) and guess >= 1 else None
        else:
            check_count("PoolExecutor", "max_workers", max_workers, minimum=1)
        self.executor = executor
        self.max_workers = max_workers

    def submit(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> cf.Future[R]:
        return self.executor.submit(fn, *args, **kwargs)

    def __repr__(self) -> str:
        return f"PoolExecutor({self.executor!r}, max_workers={self.max_workers!r})"
