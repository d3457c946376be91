"""The process executor: CPU-bound tasks in worker processes, and timeouts that really stop them.

Design:

* **Workers we manage ourselves.** ``max_workers`` processes, started on demand. Each has its
  own duplex pipe and a reader thread in the parent; the parent keeps the queue of calls and
  hands one to a worker only when that worker is idle, so it always knows which process runs
  which call. (``concurrent.futures.ProcessPoolExecutor`` cannot stop one call, and breaks
  entirely when one of its workers is killed.)
* **Timeouts.** The pool driver (``_drivers.drive_pool``) keeps the deadline; at the deadline
  it calls :meth:`_RunLane.abandon`, which kills the process running that call (SIGKILL: the
  call cannot run one more line) and starts a replacement at once, so later tasks still run.
  The lane then reports the call as gone, which frees the driver's slot. The timeout counts
  from when the driver sends the call, so it includes unpickling it (and, on a fresh worker,
  importing the function's module).
* **Start method.** ``forkserver`` where the platform has it (Linux, macOS), else ``spawn``.
  Never ``fork``: the parent has threads (readers, the caller's), and forking a threaded
  process can deadlock the child (Python 3.12+ warns about it). ``forkserver`` forks workers
  from a small single-threaded server, so a replacement starts in milliseconds; ``spawn``
  starts a fresh interpreter each time. Either way the worker imports the task's module (as
  ``__mp_main__`` for a script's main module): scripts need the usual
  ``if __name__ == "__main__":`` guard. A worker that, while importing that module, is asked
  to start workers itself (an unguarded script) exits with ``MAIN_REIMPORT_EXIT`` at once,
  and the pool fails every call with one :class:`WorkerStartError` instead of starting
  more workers. Workers get the parent's ``sys.path``. They are daemon
  processes (a task cannot start processes of its own) and ignore SIGINT: Ctrl-C stops the run
  in the parent, which kills the calls that run still has in flight.
* **Pickling.** ``@task`` replaces a module-level function with its Task in the module, so
  plain pickle refuses the function ("not the same object as module.name"). Our pickler's
  ``reducer_override`` sends such a function as a reference ``(module, qualname)`` that the
  worker resolves to that Task's ``fn``; user functions are never modified. A call that cannot
  be pickled (a lambda, a closure, an open socket as argument) fails its task with
  :class:`TransferError`, which says so and suggests the thread executor.
"""

from __future__ import annotations

import concurrent.futures as cf
import os
import queue
import threading
from functools import partial
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from ._checks import check_count
from ._drivers import drive_pool
from ._errors import ConfigurationError, TransferError
from ._executors import BaseExecutor
from ._process_pool import Job, WorkerPool, cancel, payload
from ._public import publish

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._engine import Engine
    from ._lanes import Outcome

__all__ = ["ProcessExecutor"]

P = ParamSpec("P")
R = TypeVar("R")

_START_METHODS = ("forkserver", "spawn")


class _RunLane:
    """One workflow run's view of the pool: the ``Lane`` protocol of ``drive_pool``."""

    def __init__(self, pool: WorkerPool) -> None:
        self.outbox: queue.SimpleQueue[Outcome | None] = queue.SimpleQueue()
        self._pool = pool
        self._calls: dict[int, Job] = {}

    def send(
        self,
        token: int,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any] | None,
        name: str,
        timeout: float | None,
    ) -> None:
        call = Job(name, payload(name, timeout, fn, args, kwargs), partial(self._report, token))
        self._calls[token] = call
        self._pool.dispatch(call)

    def flush(self) -> None:
        """Nothing to do: :meth:`send` dispatches at once."""

    def _report(self, token: int, ok: bool, value: object) -> None:
        # On a reader thread. The dict operations are atomic; the driver only reads the outbox.
        self._calls.pop(token, None)
        self.outbox.put((token, ok, value))

    def cancel(self, token: int) -> bool:
        call = self._calls.get(token)
        if call is None or not self._pool.cancel(call):
            return False
        self._calls.pop(token, None)
        self.outbox.put((token, False, cf.CancelledError()))
        return True

    def abandon(self, token: int) -> bool:
        """Kill the process running the call (a fresh worker replaces it): its slot is free."""
        call = self._calls.get(token)
        if call is None:
            return True  # it has just returned; its outcome will be ignored
        if self._pool.kill(call):
            self._calls.pop(token, None)
            return True
        return False

    def close(self, wait: bool) -> None:
        """End the run: drop its queued calls; unless ``wait``, kill its running ones."""
        for token, call in list(self._calls.items()):
            if self._pool.cancel(call) or (not wait and self._pool.kill(call)):
                self._calls.pop(token, None)


def _default_start_method() -> str:
    import multiprocessing  # only a process executor needs it: not imported with flowweaver

    return "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"


def _settle_future(future: cf.Future[Any], ok: bool, value: object) -> None:
    if future.done():
        return
    if ok:
        future.set_result(value)
    elif not (isinstance(value, cf.CancelledError) and future.cancel()):
        future.set_exception(value if isinstance(value, BaseException) else RuntimeError(value))


class ProcessExecutor(BaseExecutor):
    """Runs each task in a worker process: CPU-bound Python in parallel, timeouts that kill.

    Examples:
        >>> if __name__ == "__main__":  # doctest: +SKIP
        ...     with ProcessExecutor(max_workers=4) as processes:
        ...         results = DAG("crunch").run(executor=processes)

    **A script needs the** ``if __name__ == "__main__":`` **guard.** Every worker imports the
    script that started it (as ``__mp_main__``) to find its task functions; code that runs a
    workflow at the script's top level would run again in each worker. Put it under the
    guard. Without it the run fails at once with :class:`WorkerStartError`, which says so.

    Task functions, their arguments and results must pickle: define functions at module level
    (``@task``-decorated ones included). A lambda or closure fails its task with
    :class:`TransferError`; run such tasks on :class:`ThreadedExecutor`. A task past its
    timeout is killed with its process (its side effects stop there), a fresh worker replaces
    it, and the run goes on; a worker that dies on its own fails its task with
    :class:`WorkerDiedError` (retried if the task allows). See the module docstring for the
    start method and the ``__main__`` guard.

    Worker processes start on first use and are reused by every run and every :meth:`submit`
    until :meth:`shutdown` (or the end of a ``with`` block); several runs at once share them.

    Args:
        max_workers: Worker processes (default: the CPUs this process may use).
        start_method: ``"forkserver"`` (default where available) or ``"spawn"``.

    Raises:
        ConfigurationError: ``max_workers`` < 1, or an unsupported start method.
    """

    def __init__(self, max_workers: int | None = None, *, start_method: str | None = None) -> None:
        if max_workers is not None:
            check_count("ProcessExecutor", "max_workers", max_workers, minimum=1)
        method = start_method if start_method is not None else _default_start_method()
        import multiprocessing

        if method not in _START_METHODS or method not in multiprocessing.get_all_start_methods():
            available = [m for m in _START_METHODS if m in multiprocessing.get_all_start_methods()]
            raise ConfigurationError(
                f"ProcessExecutor: start_method must be one of {available!r}, got {method!r}"
            )
        if max_workers is None:
            max_workers = getattr(os, "process_cpu_count", os.cpu_count)() or 1
        self.max_workers: int = max_workers
        self.start_method = method
        self._context = multiprocessing.get_context(method)
        self._pool: WorkerPool | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return (
            f"ProcessExecutor(max_workers={self.max_workers!r}, start_method={self.start_method!r})"
        )

    def _workers(self) -> WorkerPool:
        with self._lock:
            if self._pool is None:
                self._pool = WorkerPool(self.max_workers, self._context)
            return self._pool

    def submit(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> cf.Future[R]:
        """Run ``fn(*args, **kwargs)`` in a worker process; return its future.

        A call that cannot be pickled gives a future failed with :class:`TransferError`.
        Cancelling the future before a worker takes the call keeps it from running.
        """
        future: cf.Future[R] = cf.Future()
        name = getattr(fn, "__qualname__", None) or repr(fn)
        try:
            data = payload(name, None, fn, args, kwargs)
        except TransferError as error:
            future.set_exception(error)
            return future
        call = Job(name, data, partial(_settle_future, future),
                     future.set_running_or_notify_cancel)  # fmt: skip
        self._workers().dispatch(call)
        return future

    def _drive(self, engine: Engine) -> None:
        lane = _RunLane(self._workers())
        settled = False
        try:
            drive_pool(engine, lane, self.max_workers, queue_depth=self.max_workers)
            settled = True
        finally:
            # Interrupted (Ctrl-C, cancellation): kill what this run still has running.
            lane.close(wait=settled)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop the workers once the calls already submitted have run (unless
        ``cancel_futures``); with ``wait``, wait for that. The next use starts new workers."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            cancel(pool.close(wait, cancel_pending=cancel_futures))


publish(__name__)  # last: every exported class above exists
