"""Lanes: how a driver hands calls to workers and hears back from them.

A lane takes calls tagged with a token and reports each outcome as ``(token, ok, value)``:
every call sent yields exactly one outcome — a cancelled one included (``ok`` False, value a
``CancelledError``) — unless it was abandoned, in which case a late outcome may still arrive
and is ignored by the driver.

* :class:`FutureLane` adapts anything with ``submit(fn, *args) -> Future``: a foreign
  ``concurrent.futures`` pool, a Dask client executor.
* :class:`WorkerThreads` is flowweaver's own thread pool: daemon threads that report straight
  to the driver, with no ``Future`` per call. That saves about a third of the per-task cost of
  a chain (a chain is latency-bound: one thread hand-off each way per task). A thread stuck in
  an abandoned (timed-out) call is replaced, so the pool keeps its capacity, and because the
  threads are daemons such a call can never keep the interpreter from exiting.
  :class:`ThreadedExecutor`'s workflow runs with observers use it directly (the others run
  on ``_handoff``'s threads, which settle their own outcomes); sync calls made from an event
  loop — :class:`AsyncExecutor`'s workflow runs and its ``submit`` / ``map`` pool, and a
  pipeline's sync tasks by default — use it through ``_offload.Offload``.
"""

from __future__ import annotations

import queue
import threading
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

from ._calls import AwaitRunner, cancelled_error, invoke

if TYPE_CHECKING:
    from collections.abc import Callable
    from concurrent.futures import Future

__all__ = ["FutureLane", "Lane", "Outcome", "WorkerThreads"]

#: ``(token, ok, value)``: the call's result when ``ok``, else the exception it raised.
Outcome = tuple[int, bool, Any]


class Lane(Protocol):
    """Where the pool driver sends calls; see the module docstring."""

    outbox: queue.SimpleQueue[Outcome | None]

    def send(
        self,
        token: int,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any] | None,
        name: str,
        timeout: float | None,
    ) -> None:
        """Start the call, or queue it until :meth:`flush` (may raise if it cannot be sent,
        e.g. it does not pickle)."""
        ...

    def flush(self) -> None:
        """Start the calls :meth:`send` queued. The driver calls it after each burst of sends,
        before it waits for outcomes. A queued call that cannot be sent reports its error as
        its outcome."""
        ...

    def cancel(self, token: int) -> bool:
        """Keep a call that has not started from ever running; False if it already started."""
        ...

    def abandon(self, token: int) -> bool:
        """Give up on a running call (stop it for real if the lane can).

        Returns:
            True if the call no longer holds a worker (the lane stopped it, or replaced the
            worker); False if it still occupies one until it returns.
        """
        ...

    def close(self, wait: bool) -> None:
        """Stop accepting calls. ``wait`` is a hint: a lane that owns its workers waits for
        running (not abandoned) calls; one over someone else's pool or cluster returns."""
        ...


class FutureLane:
    """A lane over ``submit(fn, *args) -> concurrent.futures.Future``."""

    def __init__(
        self,
        submit: Callable[..., Future[Any]],
    ) -> None:
        self.outbox: queue.SimpleQueue[Outcome | None] = queue.SimpleQueue()
        self._submit = submit
        self._futures: dict[int, Future[Any]] = {}

    def send(
        self,
        token: int,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any] | None,
        name: str,
        timeout: float | None,
    ) -> None:
        future = self._submit(invoke, fn, args, kwargs, name, timeout)
        self._futures[token] = future
        future.add_done_callback(partial(self._report, token))

    def flush(self) -> None:
        """Nothing to do: :meth:`send` submits at once."""

    def _report(self, token: int, future: Future[Any]) -> None:
        # Runs on the worker's thread, or inline if the future is already done.
        self._futures.pop(token, None)
        if future.cancelled():
            self.outbox.put((token, False, cancelled_error()))
            return
        error = future.exception()
        self.outbox.put((token, True, future.result()) if error is None else (token, False, error))

    def cancel(self, token: int) -> bool:
        future = self._futures.get(token)
        return future is not None and future.cancel()

    def abandon(self, token: int) -> bool:
        """A submitted call cannot be stopped through its future: it keeps its worker."""
        return False

    def close(self, wait: bool) -> None:
        for future in list(self._futures.values()):
            future.cancel()


class WorkerThreads:
    """Up to ``size`` daemon threads running calls from one queue (see module docstring).

    Args:
        size: Threads running calls at once (abandoned ones are replaced, not counted).
        name: Thread name prefix.
        report: Where outcomes go; default: put them on :attr:`outbox`.
        finish_awaitables: Run an awaitable returned by a sync call to completion on the
            thread (with the call's timeout). ``Offload`` turns this off: it awaits
            such results on its own event loop.
    """

    def __init__(
        self,
        size: int,
        name: str = "flowweaver",
        report: Callable[[Outcome], object] | None = None,
        *,
        finish_awaitables: bool = True,
    ) -> None:
        self.outbox: queue.SimpleQueue[Outcome | None] = queue.SimpleQueue()
        self._report = report if report is not None else self.outbox.put
        self._inbox: queue.SimpleQueue[tuple[Any, ...] | None] = queue.SimpleQueue()
        self._size = size
        self._name = name
        self._finish_awaitables = finish_awaitables
        self._threads: list[threading.Thread] = []
        self._spawned = 0
        # One lock makes "has it started?" and "cancel it", and "which thread runs it?" and
        # "abandon it", single steps.
        self._lock = threading.Lock()
        self._queued: set[int] = set()
        self._running: dict[int, threading.Thread] = {}
        self._cancelled: set[int] = set()
        self._abandoned: set[threading.Thread] = set()
        self._closed = False

    def send(
        self,
        token: int,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any] | None,
        name: str,
        timeout: float | None,
    ) -> None:
        with self._lock:
            self._queued.add(token)
        self._inbox.put((token, fn, args, kwargs, name, timeout))
        if len(self._threads) - len(self._abandoned) < self._size:
            self._start_thread()

    def flush(self) -> None:
        """Nothing to do: :meth:`send` queues the call for the threads at once."""

    def _start_thread(self) -> None:
        thread = threading.Thread(
            target=self._work, name=f"{self._name}-{self._spawned}", daemon=True
        )
        self._spawned += 1
        self._threads.append(thread)
        thread.start()

    def _work(self) -> None:
        me = threading.current_thread()
        inbox, report, lock = self._inbox, self._report, self._lock
        queued, running, cancelled = self._queued, self._running, self._cancelled
        runner = AwaitRunner() if self._finish_awaitables else None
        try:
            while True:
                item = inbox.get()
                if item is None or self._closed:
                    return
                token, fn, args, kwargs, name, timeout = item
                with lock:
                    queued.discard(token)
                    skip = token in cancelled
                    if skip:
                        cancelled.discard(token)
                    else:
                        running[token] = me
                if skip:
                    report((token, False, cancelled_error()))
                    continue
                try:
                    if runner is not None:
                        value = invoke(fn, args, kwargs, name, timeout, runner)
                    else:
                        value = fn(*args, **kwargs) if kwargs else fn(*args)
                    outcome: Outcome = (token, True, value)
                except BaseException as error:  # handed to the driver, like a Future would
                    outcome = (token, False, error)
                with lock:
                    running.pop(token, None)
                    abandoned = me in self._abandoned
                report(outcome)
                # Hold nothing of this call while idle: a run may release its inputs and
                # result (keep_results=) and expects them gone.
                item = args = kwargs = outcome = value = None  # type: ignore[assignment]
                if abandoned:  # a replacement took this thread's place
                    return
        finally:
            if runner is not None:
                runner.close()

    def cancel(self, token: int) -> bool:
        with self._lock:
            if token not in self._queued:
                return False  # running, or already returned
            self._queued.discard(token)
            self._cancelled.add(token)
            return True

    def abandon(self, token: int) -> bool:
        """A thread cannot be stopped: let it run on, and start a replacement in its place."""
        with self._lock:
            thread = self._running.get(token)
            if thread is None:
                return True  # it has just returned; its outcome will be ignored
            self._abandoned.add(thread)
        if not self._closed:
            self._start_thread()
        return True

    def close(self, wait: bool) -> None:
        self._closed = True
        live = [t for t in self._threads if t not in self._abandoned]
        for _ in live:
            self._inbox.put(None)
        if wait:
            for thread in live:
                thread.join()
