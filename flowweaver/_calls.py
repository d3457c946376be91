"""Running one call where an executor puts it: inline, in a worker thread, in a process.

:func:`invoke` is what pool executors submit. It is a module-level function so it pickles by
reference into worker processes and Dask workers. It finishes an awaitable that a sync callable
returns (the seed's ``fn=lambda uid=uid: fetch_user(uid)``) and enforces the task's timeout on
it — a coroutine can really be cancelled, unlike the thread it runs in.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from time import perf_counter
from typing import TYPE_CHECKING, Any, TypeVar

from ._errors import TaskTimeoutError

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Awaitable, Callable, Iterator

__all__ = [
    "INTERRUPTS",
    "AwaitRunner",
    "awaitable_error",
    "bounded",
    "cancelled_error",
    "invoke",
    "is_cancelled_error",
    "run_awaitable",
    "signals_wake",
]

T = TypeVar("T")

#: What a task (or observer) raising must stop the whole run with, and is never its failure:
#: Ctrl-C and ``sys.exit()``. Every other exception, ``BaseException`` subclasses included, is
#: the failure of the task (item, pool call, observer) that raised it; a worker's *own*
#: cancellation stops that worker. Every place that runs user code follows this rule.
INTERRUPTS = (KeyboardInterrupt, SystemExit)


def awaitable_error(error: BaseException) -> BaseException:
    """``error`` as an asyncio future can hold it.

    Two exceptions cannot travel through a future that a coroutine awaits, and each becomes a
    ``RuntimeError`` whose cause is the original (as PEP 479 does for a coroutine):

    * ``StopIteration``: an asyncio future refuses it (it would end the awaiting coroutine
      silently).
    * ``GeneratorExit``: the event loop *throws* a future's exception into the awaiting
      coroutine, and a thrown ``GeneratorExit`` closes every coroutine of the await chain
      instead of being raised in it: the worker awaiting the call — and the other items or
      tasks it would have run — would end with "coroutine ignored GeneratorExit".
    """
    if isinstance(error, StopIteration | GeneratorExit):
        name = type(error).__name__
        wrapped = RuntimeError(f"task raised {name}: {error}".rstrip(": "))
        wrapped.__cause__ = error
        return wrapped
    return error


async def bounded(
    awaitable: Awaitable[T], name: str, timeout: float | None, budget: float | None = None
) -> T:
    """Await ``awaitable``, cancelling it after ``budget`` seconds (default: ``timeout``).

    Raises:
        TaskTimeoutError: It ran out of time; the error names the task's ``timeout`` (the
            budget may be what was left of it after a sync call returned the awaitable).
    """
    import asyncio

    wait = timeout if budget is None else budget
    if wait is None:
        return await awaitable
    deadline = asyncio.timeout(wait)
    try:
        async with deadline:
            return await awaitable
    except TimeoutError:
        if deadline.expired():  # ours, not a TimeoutError raised by the task itself
            raise TaskTimeoutError(name, wait if timeout is None else timeout) from None
        raise


def run_awaitable(
    awaitable: Awaitable[T], name: str, timeout: float | None, budget: float | None = None
) -> T:
    """Drive ``awaitable`` to completion from sync code, on a fresh event loop.

    If the calling thread already runs a loop (a sync entry point called from async code), the
    awaitable runs on a short-lived helper thread instead: a loop cannot be re-entered.

    Raises:
        TaskTimeoutError: It did not finish within ``timeout`` seconds (it is cancelled).
    """
    import asyncio

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(bounded(awaitable, name, timeout, budget))
    box: list[Any] = []

    def target() -> None:
        try:
            box.append((True, asyncio.run(bounded(awaitable, name, timeout, budget))))
        except BaseException as error:  # moved to the caller's thread below
            box.append((False, error))

    helper = threading.Thread(target=target, name=f"flowweaver-await-{name}", daemon=True)
    helper.start()
    helper.join()
    ok, value = box[0]
    if ok:
        return value  # type: ignore[no-any-return]
    raise value


@contextlib.contextmanager
def signals_wake(loop: asyncio.AbstractEventLoop) -> Iterator[None]:
    """While ``loop`` runs on the main thread, make a signal (Ctrl-C) wake it.

    ``asyncio.Runner`` turns Ctrl-C into a cancellation with a Python-level handler, which runs
    only when the main thread runs Python code. A signal that arrives just as an idle loop goes
    to sleep — nothing scheduled, an observer awaiting forever — would wait for the next event,
    which may never come. With the loop's self-pipe as the wakeup fd (what
    ``loop.add_signal_handler`` sets up) the signal itself wakes the loop. Does nothing off the
    main thread, on a loop without a self-pipe (uvloop), or when a wakeup fd is already set
    (someone else's loop listens).
    """
    pipe = getattr(loop, "_csock", None)  # asyncio's selector loops: the self-pipe's write end
    fileno = getattr(pipe, "fileno", None)
    if threading.current_thread() is not threading.main_thread() or fileno is None:
        yield
        return
    import signal  # the asyncio path only: a threaded run never needs it

    ours = fileno()
    try:
        previous = signal.set_wakeup_fd(ours, warn_on_full_buffer=False)
        if previous != -1:
            signal.set_wakeup_fd(previous)  # someone else's loop listens: not ours to replace
        yield
    finally:  # whatever a Ctrl-C interrupted above: never leave the fd of a closing loop set
        current = signal.set_wakeup_fd(-1)
        if current != ours:
            signal.set_wakeup_fd(current)


class AwaitRunner:
    """One event loop for the awaitables of one thread (the sequential driver, a worker
    thread, the pool driver's callbacks), reused; created on first use."""

    __slots__ = ("_runner",)

    def __init__(self) -> None:
        self._runner: asyncio.Runner | None = None

    def run(
        self,
        awaitable: Awaitable[T],
        name: str,
        timeout: float | None,
        budget: float | None = None,
    ) -> T:
        import asyncio

        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            return run_awaitable(awaitable, name, timeout, budget)
        if self._runner is None:
            self._runner = asyncio.Runner()
        runner = self._runner
        with signals_wake(runner.get_loop()):
            return runner.run(bounded(awaitable, name, timeout, budget))

    def close(self) -> None:
        if self._runner is not None:
            self._runner.close()
            self._runner = None


def invoke(
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any] | None,
    name: str,
    timeout: float | None,
    runner: AwaitRunner | None = None,
) -> Any:
    """Call ``fn``; finish an awaitable result on an event loop, within ``timeout``.

    A sync call cannot be interrupted, but it is timed: one that returns after ``timeout``
    raises :class:`TaskTimeoutError` here, so an overrun never counts as a success even when
    the driver noticed the deadline late.

    Args:
        runner: The calling thread's event loop for awaitables (a fresh one per call if None).
    """
    if timeout is None:
        value = fn(*args, **kwargs) if kwargs else fn(*args)
        if hasattr(value, "__await__"):
            value = (runner or _ONCE).run(value, name, None)
        return value
    start = perf_counter()
    value = fn(*args, **kwargs) if kwargs else fn(*args)
    left = timeout - (perf_counter() - start)
    if hasattr(value, "__await__"):
        return (runner or _ONCE).run(value, name, timeout, max(left, 0.0))
    if left < 0:
        raise TaskTimeoutError(name, timeout)
    return value


class _OneShot:
    """An AwaitRunner stand-in that uses a fresh event loop for each awaitable."""

    __slots__ = ()

    def run(
        self,
        awaitable: Awaitable[T],
        name: str,
        timeout: float | None,
        budget: float | None = None,
    ) -> T:
        return run_awaitable(awaitable, name, timeout, budget)


_ONCE = _OneShot()


# ``concurrent.futures`` (and the ``logging`` it imports) loads only when a program uses a
# pool: flowweaver's own worker threads report a call cancelled before it ran with the same
# exception a pool would, made on first need.
def cancelled_error() -> BaseException:
    """A new ``concurrent.futures.CancelledError``: the outcome of a call that never ran."""
    from concurrent.futures import CancelledError

    return CancelledError()


def is_cancelled_error(value: object) -> bool:
    """Whether ``value`` is a ``concurrent.futures.CancelledError``.

    Imports nothing: until something imported ``concurrent.futures``, nothing made one.
    """
    futures = sys.modules.get("concurrent.futures")
    return futures is not None and isinstance(value, futures.CancelledError)
