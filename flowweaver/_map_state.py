"""A mapped task's run-time state, and where its elements come from.

Engine-internal (``_mapping`` is the only writer): :class:`MapState` is one mapped task's
elements in one run; :class:`AsyncPump` reads an async generator on a helper thread, a bounded
buffer ahead; :func:`strict_zip` zips upstreams and says which one ran short.
"""

from __future__ import annotations

import inspect
import queue
import threading
from typing import TYPE_CHECKING, Any

from ._elements import ElementRecord
from ._errors import MapLengthError
from ._run import Remote

if TYPE_CHECKING:
    from collections import deque
    from collections.abc import Iterator

    from ._task import Task

__all__ = [
    "NOT_ITERABLE",
    "NO_ELEMENT",
    "UNBOUNDED_WINDOW",
    "UNREAD",
    "AsyncPump",
    "MapState",
    "fetch_in_place",
    "is_stream",
    "strict_zip",
]

#: Admitted elements per mapped task when the driver has no capacity limit.
UNBOUNDED_WINDOW = 1024
#: What a streaming upstream passes on for an element that did not complete.
NO_ELEMENT: Any = object()
#: The value of an element slot reserved but not read yet.
UNREAD: Any = object()
NOT_ITERABLE = (str, bytes, bytearray, memoryview)


class MapState:
    """One mapped task's elements in one run (engine-internal; only the engine touches it)."""

    __slots__ = (
        "args",
        "buffer",
        "consumers",
        "exhausted",
        "fast",
        "feeder",
        "finished",
        "halted",
        "i",
        "input_error",
        "iterator",
        "keywords",
        "limit",
        "live",
        "mapped_args",
        "mapped_keywords",
        "names",
        "next_index",
        "producers",
        "record",
        "reserved",
        "results",
        "simple",
        "task",
        "upstream_failed",
        "upstream_open",
    )

    def __init__(self, i: int, task: Task[..., Any], limit: int) -> None:
        self.i = i
        self.task = task
        self.limit = limit
        self.record = ElementRecord(task.name)
        self.results: list[object] | None = [] if task.keep_results else None
        self.live = 0  # admitted and not ended: ready, running or waiting for a retry
        self.next_index = 0  # elements read from the iterator
        self.reserved = 0  # slots reserved for elements of the iterator
        self.iterator: Iterator[object] | None = None
        #: Elements streamed in by an upstream mapped task: (index, value), None: not one.
        self.buffer: deque[tuple[int, object]] | None = None
        self.upstream_open = False  # the streaming upstream may still send elements
        self.consumers: list[MapState] = []  # mapped tasks streaming from this one
        self.feeder: MapState | None = None  # the mapped task this one streams from
        self.producers: list[tuple[int, object]] = []  # (task, generator) streamed from
        self.names: tuple[str, ...] = ()
        self.exhausted = False  # every element has been admitted
        self.halted = False  # admit nothing more (a failure, a stop)
        self.finished = False  # the task has been settled
        self.upstream_failed = False
        self.input_error: BaseException | None = None
        # How an element's value becomes the call's arguments (see MapMixin._plan_arguments).
        self.simple = False
        #: Plain elements (one argument, no observers, no state, no when=): the engine's
        #: hot path begins and ends them inline.
        self.fast = False
        self.args: list[object] = []
        self.keywords: dict[str, object] = {}
        self.mapped_args: list[tuple[int, int]] = []  # (argument position, element part)
        self.mapped_keywords: list[tuple[str, int]] = []

    def arguments(self, value: object) -> tuple[tuple[Any, ...], dict[str, Any] | None]:
        if self.simple:
            return (value,), None
        parts: tuple[object, ...] = value if len(self.names) > 1 else (value,)  # type: ignore[assignment]
        args = list(self.args)
        for position, part in self.mapped_args:
            args[position] = parts[part]
        kwargs: dict[str, Any] | None = None
        if self.keywords or self.mapped_keywords:
            kwargs = dict(self.keywords)
            for name, part in self.mapped_keywords:
                kwargs[name] = parts[part]
        return tuple(args), kwargs


class AsyncPump:
    """An async generator, pulled on a helper thread's event loop, at most ``size`` ahead.

    The helper thread runs nothing but this generator, so it may block between elements
    while the buffer is full.
    """

    __slots__ = ("_agen", "_closed", "_ended", "_items", "_room")

    def __init__(self, agen: Any, size: int, name: str) -> None:
        self._agen = agen
        self._items: queue.SimpleQueue[tuple[int, object]] = queue.SimpleQueue()
        self._room = threading.Semaphore(size)
        self._closed = False
        self._ended = False
        threading.Thread(target=self._run, name=f"flowweaver-stream-{name}", daemon=True).start()

    def _run(self) -> None:
        import asyncio

        asyncio.run(self._pump())

    async def _pump(self) -> None:
        agen = self._agen
        try:
            while True:
                self._room.acquire()  # blocks this helper thread only: backpressure
                if self._closed:
                    return
                try:
                    value = await agen.__anext__()
                except StopAsyncIteration:
                    self._items.put((0, None))
                    return
                except BaseException as error:  # the generator's failure, moved to the run
                    self._items.put((2, error))
                    return
                self._items.put((1, value))
        finally:
            await agen.aclose()

    def __iter__(self) -> Iterator[object]:
        return self

    def __next__(self) -> object:
        if self._ended:
            raise StopIteration
        kind, value = self._items.get()
        if kind != 1:
            self._ended = True
        if kind == 0:
            raise StopIteration
        if kind == 2:
            assert isinstance(value, BaseException)
            raise value
        self._room.release()
        return value

    def close(self) -> None:
        self._closed = True
        self._room.release()


def is_stream(value: object) -> bool:
    return inspect.isgenerator(value) or inspect.isasyncgen(value)


def strict_zip(m: MapState, iterators: list[Iterator[object]]) -> Iterator[tuple[object, ...]]:
    """``zip(..., strict=True)`` that says which upstream ran short (a MapLengthError)."""
    while True:
        values: list[object] = []
        ended: list[int] = []
        for j, iterator in enumerate(iterators):
            try:
                values.append(next(iterator))
            except StopIteration:
                ended.append(j)
        if not ended:
            yield tuple(values)
            continue
        if len(ended) == len(iterators):
            return
        seen = m.next_index
        lengths = {name: seen + (j not in ended) for j, name in enumerate(m.names)}
        raise MapLengthError(m.task.name, lengths)


def fetch_in_place(results: list[object]) -> None:
    """Replace the remote results in ``results`` by their values, a batch per kind."""
    batches: dict[type[Remote], tuple[list[int], list[Remote]]] = {}
    for index, value in enumerate(results):
        if isinstance(value, Remote):
            where, remotes = batches.setdefault(type(value), ([], []))
            where.append(index)
            remotes.append(value)
    for kind, (where, remotes) in batches.items():
        for index, value in zip(where, kind.fetch_many(remotes), strict=True):
            results[index] = value
