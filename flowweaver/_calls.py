"""Running one call where an executor puts it: inline, in a worker thread, in a process.

:func:`invoke` is what pool executors submit. It is a module-level function so it pickles by
reference into worker processes and Dask workers. It finishes an awaitable that a sync callable
returns (the seed's ``fn=lambda uid=uid: fetch_user(uid)``) and enforces the task's timeout on
it — a coroutine can really be cancelled, unlike the thread it runs in.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from typing import TYPE_CHECKING, Any, TypeVar

from ._errors import TaskTimeoutError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

__all__ = ["AwaitRunner", "bounded", "invoke", "is_coroutine_callable", "run_awaitable"]

T = TypeVar("T")


def is_coroutine_callable(fn: object) -> bool:
    """Whether calling ``fn`` makes a coroutine (``async def``, a bound async method, an object
    with an async ``__call__``, or a ``functools.partial`` of one of those)."""
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 - an object with an async __call__
    )


async def bounded(awaitable: Awaitable[T], name: str, timeout: float | None) -> T:
    if timeout is None:
        return await awaitable
    deadline = asyncio.timeout(timeout)
    try:
        async with deadline:
            return await awaitable
    except TimeoutError:
        if deadline.expired():  # ours, not a TimeoutError raised by the task itself
            raise TaskTimeoutError(name, timeout) from None
        raise


def run_awaitable(awaitable: Awaitable[T], name: str, timeout: float | None) -> T:
    """Drive ``awaitable`` to completion from sync code, on a fresh event loop.

    If the calling thread already runs a loop (a sync entry point called from async code), the
    awaitable runs on a short-lived helper thread instead: a loop cannot be re-entered.

    Raises:
        TaskTimeoutError: It did not finish within ``timeout`` seconds (it is cancelled).
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(bounded(awaitable, name, timeout))
    box: list[Any] = []

    def target() -> None:
        try:
            box.append((True, asyncio.run(bounded(awaitable, name, timeout))))
        except BaseException as error:  # moved to the caller's thread below
            box.append((False, error))

    helper = threading.Thread(target=target, name=f"flowweaver-await-{name}", daemon=True)
    helper.start()
    helper.join()
    ok, value = box[0]
    if ok:
        return value  # type: ignore[no-any-return]
    raise value


class AwaitRunner:
    """One event loop, reused for every awaitable of a sequential run; created on first use."""

    __slots__ = ("_runner",)

    def __init__(self) -> None:
        self._runner: asyncio.Runner | None = None

    def run(self, awaitable: Awaitable[T], name: str, timeout: float | None) -> T:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            return run_awaitable(awaitable, name, timeout)
        if self._runner is None:
            self._runner = asyncio.Runner()
        return self._runner.run(bounded(awaitable, name, timeout))

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
) -> Any:
    """Call ``fn``; finish an awaitable result on a private loop, within ``timeout``."""
    value = fn(*args, **kwargs) if kwargs else fn(*args)
    if hasattr(value, "__await__"):
        value = run_awaitable(value, name, timeout)
    return value
