"""Lanes: how the pool driver hands calls to workers and hears back from them.

A lane takes calls tagged with a token and reports each outcome as ``(token, ok, value)`` on
its ``outbox``, which only the driver reads. Every call sent yields exactly one outcome, a
cancelled one included (``ok`` False, value ``CancelledError``), unless it was abandoned.

* :class:`FutureLane` adapts anything with ``submit(fn, *args) -> Future``: a foreign
  ``concurrent.futures`` pool, a process pool, a Dask client executor.
* :class:`WorkerThreads` is flowweaver's own thread pool for :class:`ThreadedExecutor`: daemon
  threads that post outcomes straight to the outbox, with no ``Future`` per call. That saves
  about a third of the per-task cost of a chain (a chain is latency-bound: one thread hand-off
  each way per task), and, because the threads are daemons, a call that hangs after its
  timeout can never keep the interpreter from exiting.
"""

from __future__ import annotations

import queue
import threading
from concurrent.futures import CancelledError
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

from ._calls import invoke

if TYPE_CHECKING:
    from collections.abc import Callable
    from concurrent.futures import Future

__all__ = ["FutureLane", "Lane", "Outcome", "WorkerThreads"]

#: ``(token, ok, value)``: the call's result when ``ok``, else the exception it raised.
Outcome = tuple[int, bool, Any]


class Lane(Protocol):
    """Where the pool driver sends calls; see the module docstring."""

    outbox: queue.SimpleQueue[Outcome]

    def send(
        self,
        token: int,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any] | None,
        name: str,
        timeout: float | None,
    ) -> None:
        """Start the call (may raise if it cannot be sent, e.g. it does not pickle)."""
        ...

    def cancel(self, token: int) -> bool:
        """Keep a call that has not started from ever running; False if it already started."""
        ...

    def abandon(self, token: int) -> None:
        """Give up on a running call (stop it for real if the lane can)."""
        ...

    def close(self, wait: bool) -> None:
        """Stop accepting calls; with ``wait``, wait for running calls to return."""
        ...


class FutureLane:
    """A lane over ``submit(fn, *args) -> concurrent.futures.Future``."""

    def __init__(
        self,
        submit: Callable[..., Future[Any]],
        terminate: Callable[[Future[Any]], None] | None = None,
    ) -> None:
        self.outbox: queue.SimpleQueue[Outcome] = queue.SimpleQueue()
        self._submit = submit
        self._terminate = terminate
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

    def _report(self, token: int, future: Future[Any]) -> None:
        # Runs on the worker's thread, or inline if the future is already done.
        self._futures.pop(token, None)
        if future.cancelled():
            self.outbox.put((token, False, CancelledError()))
            return
        error = future.exception()
        self.outbox.put((token, True, future.result()) if error is None else (token, False, error))

    def cancel(self, token: int) -> bool:
        future = self._futures.get(token)
        return future is not None and future.cancel()

    def abandon(self, token: int) -> None:
        future = self._futures.get(token)
        if future is not None and self._terminate is not None:
            self._terminate(future)

    def close(self, wait: bool) -> None:
        for future in list(self._futures.values()):
            future.cancel()


class WorkerThreads:
    """Up to ``size`` daemon threads running calls from one queue (see module docstring).

    Threads start on demand, one per call sent until there are ``size`` of them.
    """

    def __init__(self, size: int, name: str = "flowweaver") -> None:
        self.outbox: queue.SimpleQueue[Outcome] = queue.SimpleQueue()
        self._inbox: queue.SimpleQueue[tuple[Any, ...] | None] = queue.SimpleQueue()
        self._size = size
        self._name = name
        self._threads: list[threading.Thread] = []
        # A call is cancelled if the driver gets to it before a worker does; the lock makes
        # "has it started?" and "cancel it" one step.
        self._lock = threading.Lock()
        self._running: set[int] = set()
        self._cancelled: set[int] = set()
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
        self._inbox.put((token, fn, args, kwargs, name, timeout))
        if len(self._threads) < self._size:
            thread = threading.Thread(
                target=self._work, name=f"{self._name}-{len(self._threads)}", daemon=True
            )
            self._threads.append(thread)
            thread.start()

    def _work(self) -> None:
        inbox, outbox, lock = self._inbox, self.outbox.put, self._lock
        running, cancelled = self._running, self._cancelled
        while True:
            item = inbox.get()
            if item is None or self._closed:
                return
            token = item[0]
            with lock:
                if token in cancelled:
                    cancelled.discard(token)
                    skip = True
                else:
                    running.add(token)
                    skip = False
            if skip:
                outbox((token, False, CancelledError()))
                continue
            try:
                outcome: Outcome = (token, True, invoke(*item[1:]))
            except BaseException as error:  # handed to the driver, like a Future would
                outcome = (token, False, error)
            with lock:
                running.discard(token)
            outbox(outcome)

    def cancel(self, token: int) -> bool:
        with self._lock:
            if token in self._running:
                return False
            self._cancelled.add(token)
            return True

    def abandon(self, token: int) -> None:
        """A thread cannot be stopped: its call runs on and its outcome will be ignored."""

    def close(self, wait: bool) -> None:
        self._closed = True
        for _ in self._threads:
            self._inbox.put(None)
        if wait:
            for thread in self._threads:
                thread.join()
