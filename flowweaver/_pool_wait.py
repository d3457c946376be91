"""Waiting on many pool calls at once: ``map``'s two faces and ``wait(return_when=...)``.

``AsyncExecutor.map`` is both AntFlow 0.10's coroutine (``await executor.map(f, xs)`` gives a
list) and the seeds' async iterator (``async for r in executor.map(f, xs)`` streams in input
order). One :class:`MapResults` object serves both, once: it wraps the pool's lazy, bounded
``map`` generator, so awaiting it collects the same stream into a list.
"""

from __future__ import annotations

import asyncio
import enum
from typing import TYPE_CHECKING, Any, Generic, Self, TypeVar

from ._errors import ConfigurationError, ExecutionError
from ._pool import AsyncFuture
from ._public import publish

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Generator, Iterable

__all__ = ["MapResults", "WaitStrategy", "wait"]

R = TypeVar("R")


class WaitStrategy(enum.StrEnum):
    """When :meth:`AsyncExecutor.wait` returns (AntFlow 0.10's names).

    The values are ``asyncio``'s and ``concurrent.futures``' constants, so
    ``return_when=asyncio.FIRST_COMPLETED`` means the same.
    """

    FIRST_COMPLETED = "FIRST_COMPLETED"
    FIRST_EXCEPTION = "FIRST_EXCEPTION"
    ALL_COMPLETED = "ALL_COMPLETED"


class MapResults(Generic[R]):
    """What :meth:`AsyncExecutor.map` returns: await it for a list, or ``async for`` over it.

    Example::

        squares = await executor.map(square, range(10))      # [0, 1, 4, …]
        async for value in executor.map(square, range(10)):  # one by one, input order
            ...

    Either way the calls are submitted lazily, a bounded window ahead, and the results come
    in input order; the first failure is raised in its place and the calls ahead of it are
    cancelled. It is one pass, like a generator: a second ``async for`` continues where the
    first stopped.

    Raises:
        ExecutionError: It is awaited after being awaited or iterated, or iterated after being
            awaited (a ``RuntimeError``).
    """

    __slots__ = ("_mode", "_results")

    def __init__(self, results: AsyncGenerator[R, None]) -> None:
        self._results = results
        self._mode: str | None = None  # "await" or "iterate", fixed by the first use

    def _claim(self, mode: str) -> None:
        if self._mode is not None and (mode == "await" or self._mode == "await"):
            raise ExecutionError(
                "the results of AsyncExecutor.map() can be consumed once (awaited, or "
                "iterated); call map() again for another pass"
            )
        self._mode = mode

    def __await__(self) -> Generator[Any, None, list[R]]:
        self._claim("await")
        return self._collect().__await__()

    async def _collect(self) -> list[R]:
        return [value async for value in self._results]

    def __aiter__(self) -> Self:
        self._claim("iterate")  # like a generator: a later loop continues the same pass
        return self

    async def __anext__(self) -> R:
        if self._mode is None:
            self._claim("iterate")
        return await self._results.__anext__()

    async def aclose(self) -> None:
        """Stop early: cancel the calls submitted ahead."""
        self._mode = self._mode or "iterate"
        await self._results.aclose()


async def wait(
    futures: Iterable[AsyncFuture[R]],
    timeout: float | None,
    return_when: object,
) -> tuple[set[AsyncFuture[R]], set[AsyncFuture[R]]]:
    """``AsyncExecutor.wait``: see there. Never cancels anything."""
    strategy = _strategy(return_when)
    pending = set(futures)
    for future in pending:
        if not isinstance(future, AsyncFuture):
            raise ConfigurationError(f"wait() needs AsyncFutures, got {future!r}")
    done = {f for f in pending if f.done()}
    pending -= done
    if not pending or _satisfied(strategy, done):
        return done, pending
    loop = asyncio.get_running_loop()
    deadline = None if timeout is None else loop.time() + timeout
    wake = asyncio.Event()
    finished: list[AsyncFuture[R]] = []

    def hook(future: AsyncFuture[R]) -> Any:
        def on_done(_: asyncio.Future[Any]) -> None:
            finished.append(future)
            wake.set()

        return on_done

    hooks = [(f._future, hook(f)) for f in pending]
    for inner, on_done in hooks:
        inner.add_done_callback(on_done)
    try:
        while pending:
            wake.clear()
            try:
                async with asyncio.timeout_at(deadline):
                    await wake.wait()
            except TimeoutError:
                if strategy is WaitStrategy.ALL_COMPLETED:
                    raise  # AntFlow 0.10: only ALL_COMPLETED treats a timeout as an error
                break
            batch, finished[:] = list(finished), []
            pending.difference_update(batch)
            done.update(batch)
            if _satisfied(strategy, batch):
                break
    finally:
        for inner, on_done in hooks:
            inner.remove_done_callback(on_done)
    return done, pending


def _strategy(return_when: object) -> WaitStrategy:
    try:
        return WaitStrategy(return_when)  # type: ignore[arg-type]  # refused below if not
    except ValueError:
        raise ConfigurationError(
            f"wait(): return_when must be a WaitStrategy, got {return_when!r}"
        ) from None


def _satisfied(strategy: WaitStrategy, finished: Iterable[AsyncFuture[Any]]) -> bool:
    if strategy is WaitStrategy.FIRST_COMPLETED:
        return any(True for _ in finished)
    if strategy is WaitStrategy.FIRST_EXCEPTION:
        return any(not f.cancelled() and f.exception() is not None for f in finished)
    return False


publish(__name__)  # last: every exported class above exists
