"""Mapped tasks in the engine: one attempt, retry, status and commit per element.

``_engine_factory.make_engine(workflow, options)`` builds a :class:`MapEngine` (or, for a
durable run, a ``_durable_map.DurableMapEngine``) when the workflow has a mapped task; other
runs never reach this code. The per-element half lives in ``_map_elements``.

Design:

* **An element is a unit of work the drivers already know.** When a mapped task becomes
  ready, :meth:`begin` does not return a call: it reads what the task maps over and puts
  *element slots* on the engine's ready queue. A slot is an index past the workflow's tasks
  (``engine.tasks[slot]`` is the mapped task, so timeouts and names work unchanged), and the
  drivers run it like a task: ``begin`` returns the element's call, ``succeed`` / ``fail`` /
  ``cancel`` report its outcome, retries wait on the same timers. The retry rule is the
  engine's (:func:`~flowweaver._engine.retry_delay`); only the bookkeeping is per element.
* **Bounded admission.** A mapped task keeps at most ``map_limit`` elements admitted (ready,
  running or waiting for a retry), by default about twice the driver's capacity. A freed slot
  admits the next element, so a list of a million elements costs a million *calls*, not a
  million ready entries, and a generator upstream is only asked for its next element when a
  slot is free: that is its backpressure.
* **Streaming.** A generator upstream whose only dependant maps over it is not drained: it
  stays ``running`` and its elements are pulled as slots free up (on the driving thread; an
  async generator runs on a helper thread's event loop, a bounded buffer ahead). A mapped task
  whose only upstream is another mapped task starts when that one starts, and takes each of
  its elements as soon as it finishes, in any order (element ``i`` keeps index ``i``): no
  barrier between them. The upstream pauses while the downstream's buffer is full.
* **Failure policy per element.** An element that fails for good is recorded (its index,
  attempts, error). Under fail-fast the run then starts nothing new; either way, once its
  admitted elements have ended, the task fails with :class:`~flowweaver.MappedTaskFailedError`
  carrying every element failure — unless it has ``allow_failed_elements=True``, in which case
  it completes with ``None`` in those places.
* **What observers see.** The task itself goes ``running`` once and ends once; each element's
  transitions reach ``on_status_change`` and monitors under the name ``task[index]``.
  ``run.elements(name)`` is the record.

A mapped-over upstream that is skipped skips the mapped task (its result is ``None``, as any
skipped task's), consistently with "a skipped upstream contributes ``None``".
"""

from __future__ import annotations

import inspect
import logging
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from time import perf_counter
from typing import TYPE_CHECKING

from ._calls import INTERRUPTS
from ._elements import CODE
from ._engine import Call, Engine
from ._errors import (
    MapLengthError,
    MappedTaskFailedError,
    NotIterableError,
)
from ._map_elements import ElementMixin
from ._map_state import (
    NOT_ITERABLE,
    UNBOUNDED_WINDOW,
    UNREAD,
    AsyncPump,
    MapState,
    fetch_in_place,
    is_stream,
    strict_zip,
)
from ._run import Remote, fetched
from ._status import TaskStatus

if TYPE_CHECKING:
    from ._options import RunOptions
    from ._run import WorkflowRun
    from ._workflow import Workflow

__all__ = ["MapEngine", "MapMixin"]

logger = logging.getLogger("flowweaver.engine")

_PENDING = TaskStatus.PENDING
_RUNNING = TaskStatus.RUNNING
_RETRYING = TaskStatus.RETRYING
_COMPLETED = TaskStatus.COMPLETED
_FAILED = TaskStatus.FAILED
_SKIPPED = TaskStatus.SKIPPED
_UPSTREAM_FAILED = TaskStatus.UPSTREAM_FAILED
_CANCELLED = TaskStatus.CANCELLED
_CODES = CODE
_RUNNING_CODE = CODE[_RUNNING]
_COMPLETED_CODE = CODE[_COMPLETED]


class MapMixin(ElementMixin):
    """The element bookkeeping, shared by :class:`MapEngine` and :class:`DurableMapEngine`.

    Not slotted: two bases that both add slots (this and DurableEngine) cannot be combined.
    """

    _maps: dict[int, MapState]
    _plans: dict[int, tuple[int, ...]]
    _feeds: dict[int, list[int]]
    _streamable: set[int]
    _mapped_over: set[int]
    _streams: dict[int, object]
    _slot_map: list[MapState | None]
    _slot_index: list[int]
    _slot_attempts: list[int]
    _slot_value: list[object]
    _free: list[int]

    def _init_maps(self, workflow: Workflow) -> None:
        n = self.n
        self.tasks = self.tasks[:n]  # element slots are appended past the workflow's tasks
        self._plans = {i: plan for i, plan in workflow._mapped.items() if i < n}
        self._maps = {}
        self._feeds = {}  # upstream mapped task -> mapped task streaming from it
        self._streamable = set()  # tasks whose generator result may stream into their mapper
        self._streams = {}  # generator task -> its generator, until its mapper starts
        self._mapped_over = set()  # tasks whose result some mapped task maps over
        for i, plan in self._plans.items():
            deps = self.deps[i]
            self._mapped_over.update(deps[k] for k in plan)
            if len(deps) != 1:
                continue
            up = deps[plan[0]]
            if up in self._plans:  # element-wise from a mapped task; others wait for it whole
                self._feeds.setdefault(up, []).append(i)
            elif [c for c in self.children[up] if c < n] == [i]:
                self._streamable.add(up)  # a generator nobody else needs whole may stream
        self._slot_map = []
        self._slot_index = []
        self._slot_attempts = []
        self._slot_value = []
        self._free = []

    # -- the driver protocol -----------------------------------------------------------------

    def begin(self, i: int, start: bool = True) -> Call | None:
        # An element counts as running from here whatever ``start`` says (its record has
        # no "queued" state yet); a plain task follows Engine.begin.
        n = self.n
        if i >= n:
            k = i - n
            m = self._slot_map[k]
            if m is not None and m.fast and self._slot_value[k] is UNREAD:
                # The hot path of a plain element (no observers, no state, no when=): read it
                # and start its first attempt in one go. Same steps as _begin_element.
                if m.exhausted or m.halted or self.stopping:
                    self._unreserve(i)
                    return None
                try:
                    value = next(m.iterator)  # type: ignore[arg-type]
                except INTERRUPTS:
                    raise
                except BaseException as error:
                    self._read_failed(m, error)
                    self._unreserve(i)
                    return None
                index = m.next_index
                m.next_index = index + 1
                record = m.record
                if index + 1 == record.total:
                    m.exhausted = True
                record._statuses.append(_RUNNING_CODE)
                record._counts[_RUNNING_CODE] += 1
                record.attempts += 1
                results = m.results
                if results is not None:
                    results.append(None)
                self._slot_index[k] = index
                self._slot_value[k] = value
                self._slot_attempts[k] = 1
                return m.task.fn, (value,), None
            return self._begin_element(i)
        if i in self._plans:
            self._begin_mapped(i)
            return None
        return super().begin(i, start)

    def mark_running(self, i: int) -> None:
        if i < self.n:  # an element was counted running by begin()
            super().mark_running(i)

    def succeed(self, i: int, value: object) -> None:
        n = self.n
        if i >= n:
            k = i - n
            m = self._slot_map[k]
            if m is not None and m.fast and not (m.exhausted or m.halted or self.stopping):
                total = m.record.total
                if total is None or m.reserved < total:
                    # The hot path: record the result, and the next element of the iterator
                    # takes this slot over (as _element_succeeded and _element_ended would).
                    index = self._slot_index[k]
                    results = m.results
                    if results is not None:
                        results[index] = value
                    record = m.record
                    record._move(index, _COMPLETED_CODE)
                    m.reserved += 1
                    self._slot_index[k] = -1
                    self._slot_attempts[k] = 0
                    self._slot_value[k] = UNREAD
                    self.ready.append(i)
                    return
            self._element_succeeded(i, value)
            return
        if i in self._mapped_over and isinstance(value, Remote):
            # Its elements are needed here anyway; a generator kept on a cluster must come
            # here to be read (and drained, if others need it whole).
            try:
                (value,) = fetched((value,))
            except INTERRUPTS:
                raise
            except BaseException as error:
                self.errors[i] = error
                self._fail_for_good(i, error)
                return
        if i in self._mapped_over and is_stream(value):
            drained = self._stream_or_drain(i, value)
            if drained is None:
                return  # it streams into its mapper (or failed while being drained)
            value = drained
        super().succeed(i, value)

    def fail(self, i: int, error: BaseException) -> float | None:
        if i >= self.n:
            return self._element_failed(i, error)
        return super().fail(i, error)

    def cancel(self, i: int) -> None:
        if i >= self.n:
            self._element_ended(i, _CANCELLED)
        else:
            super().cancel(i)

    def finish(self) -> WorkflowRun:
        for m in list(self._maps.values()):
            if not m.finished:
                self._stop_map(m)
        for up, stream in list(self._streams.items()):  # a generator nobody pulled
            self._close_stream(up, stream, exhausted=False)
        return super().finish()

    # -- a mapped task starts ----------------------------------------------------------------

    def _begin_mapped(self, i: int) -> None:
        if self.statuses[i].is_terminal:
            return  # marked upstream_failed while it waited in the ready queue
        task = self.tasks[i]
        deps, plan = self.deps[i], self._plans[i]
        statuses = self.statuses
        if any(statuses[deps[k]] is _SKIPPED for k in plan) or (
            task.skip_if_upstream_skipped and all(statuses[d] is _SKIPPED for d in deps)
        ):
            self._skip(i)
            return
        capacity = self.capacity
        window = UNBOUNDED_WINDOW if capacity is None else 2 * capacity + 64
        m = MapState(i, task, task.map_limit or window)
        m.names = tuple(self.tasks[deps[k]].name for k in plan)
        self._maps[i] = m
        self.run._elements[i] = m.record
        self.attempts[i] = 1
        self.started[i] = perf_counter()
        self.statuses[i] = _RUNNING
        if task.on_status_change is not None or self.monitors:
            self._notify(i, _RUNNING)
        try:
            self._plan_arguments(m)
            self._open_source(m)
            m.fast = (
                m.simple
                and m.buffer is None
                and task.when is None
                and not task.limits
                and task.retry_if_result is None
                and task.on_status_change is None
                and not self.monitors
                and self.telemetry is None
                and not self._durable_elements
            )
        except INTERRUPTS:
            raise
        except BaseException as error:  # not iterable, lengths differ: fails, never retried
            m.finished = True
            self._close_producers(m, exhausted=False)
            self.errors[i] = error
            self._fail_for_good(i, error)
            self._end_consumers(m)
            return
        for consumer in self._feeds.get(i, ()):  # they stream from it: they may start now
            self.pending[consumer] -= 1
            if not self.pending[consumer]:
                self.ready.append(consumer)
        self._admit(m)

    def _plan_arguments(self, m: MapState) -> None:
        """Precompute how an element becomes the call's arguments (the binding rule, with the
        mapped-over upstreams' results replaced by the element)."""
        i = m.i
        deps, spec, plan = self.deps[i], self.specs[i], self._plans[i]
        part_of = {k: j for j, k in enumerate(plan)}
        results = self.results
        if len(plan) == 1 and spec.positional == plan and not spec.keywords:
            m.simple = True
            return
        for position, k in enumerate(spec.positional):
            if k in part_of:
                m.mapped_args.append((position, part_of[k]))
                m.args.append(None)
            else:
                m.args.append(results[deps[k]])
        for name, k in spec.keywords:
            if k in part_of:
                m.mapped_keywords.append((name, part_of[k]))
            else:
                m.keywords[name] = results[deps[k]]

    def _open_source(self, m: MapState) -> None:
        i = m.i
        deps, plan = self.deps[i], self._plans[i]
        up = deps[plan[0]]
        if len(plan) == 1 and up in self._maps and not self._maps[up].finished:
            m.buffer = deque()  # element-wise from a mapped task that is still running
            m.upstream_open = True
            m.feeder = self._maps[up]
            m.feeder.consumers.append(m)
            m.feeder.fast = False  # its elements must now be passed on
            return
        iterators: list[Iterator[object]] = []
        sizes: dict[str, int] = {}
        for name, k in zip(m.names, plan, strict=True):
            d = deps[k]
            stream = self._streams.pop(d, None)
            if stream is not None:
                if inspect.isasyncgen(stream):
                    stream = AsyncPump(stream, m.limit, name)
                m.producers.append((d, stream))
                iterators.append(stream)  # type: ignore[arg-type]
                continue
            (value,) = fetched((self.results[d],))
            if inspect.isasyncgen(value):  # it came back from a cluster, completed
                iterators.append(AsyncPump(value, m.limit, name))
                continue
            if isinstance(value, (*NOT_ITERABLE, Mapping)):
                kind = "a mapping" if isinstance(value, Mapping) else f"a {type(value).__name__}"
                hint = (
                    "map over its .items() or .keys()"
                    if isinstance(value, Mapping)
                    else "return a list of them to map over its parts"
                )
                raise NotIterableError(
                    m.task.name, name, value, f"its result is {kind}, not a collection of "
                    f"elements ({hint}): {value!r}",
                )  # fmt: skip
            if not isinstance(value, Iterable):
                raise NotIterableError(
                    m.task.name, name, value, f"its result is not iterable: {value!r}"
                )
            if hasattr(value, "__len__"):
                sizes[name] = len(value)  # type: ignore[arg-type]
            iterators.append(iter(value))
        if len(sizes) == len(plan) and len(set(sizes.values())) > 1:
            raise MapLengthError(m.task.name, sizes)
        if len(sizes) == len(plan):
            m.record.total = next(iter(sizes.values()))
            m.exhausted = not m.record.total  # nothing to map: it completes with []
        if len(iterators) == 1:
            m.iterator = iterators[0]
        else:
            m.iterator = strict_zip(m, iterators)

    # -- a mapped task ends ------------------------------------------------------------------

    def _settle_map(self, m: MapState) -> None:
        m.finished = True
        i, task, record = m.i, m.task, m.record
        self._close_producers(m, exhausted=m.exhausted)
        if m.exhausted and record.total is None:
            record.total = len(record)
        if m.upstream_failed:
            self._settle(i, _UPSTREAM_FAILED)
            self._cascade(i)
        elif m.input_error is not None:
            self.errors[i] = m.input_error
            self._fail_for_good(i, m.input_error)
        elif record.failures and not task.allow_failed_elements:
            failure = MappedTaskFailedError(task.name, record.failures, record.total)
            self.errors[i] = failure
            self._fail_for_good(i, failure, failure)
        elif not m.exhausted:
            self._settle(i, _CANCELLED)
        else:
            # A consumer streaming from it was released when it started: the release this
            # completion makes takes its count below zero, which never makes it ready again.
            self._complete_map(m)
        self._end_consumers(m)

    def _end_consumers(self, m: MapState) -> None:
        failed = self.statuses[m.i] is not _COMPLETED
        for consumer in m.consumers:
            consumer.upstream_open = False
            if failed:
                consumer.upstream_failed = consumer.halted = True
            self._admit(consumer)

    def _complete_map(self, m: MapState) -> None:
        results = m.results
        value: object = m.record.count(_COMPLETED) if results is None else results
        if results is not None and any(isinstance(r, Remote) for r in results):
            fetch_in_place(results)
        if m.task.keep_results and self._commits_whole(m):
            super().succeed(m.i, value)  # a durable run commits the list
        else:
            Engine.succeed(self, m.i, value)  # the elements carry the state

    def _commits_whole(self, m: MapState) -> bool:
        """Whether a durable run commits ``m``'s whole list (see ``_durable_map``)."""
        return True

    def _stop_map(self, m: MapState) -> None:
        """The run is ending with ``m`` unsettled: its admitted elements never ran."""
        for k, owner in enumerate(self._slot_map):
            if owner is m:
                if self._slot_index[k] >= 0:
                    m.record._set(self._slot_index[k], _CANCELLED)
                self._slot_map[k] = None
                self._free.append(self.n + k)
        m.live = 0
        m.halted = True
        self._settle_map(m)

    def _cascade(self, i: int) -> None:
        """Mark everything pending downstream of ``i`` ``upstream_failed``."""
        statuses, children, n = self.statuses, self.children, self.n
        stack = [c for c in children[i] if c < n]
        while stack:
            j = stack.pop()
            if statuses[j] is _PENDING:
                self._settle(j, _UPSTREAM_FAILED)
                stack.extend(c for c in children[j] if c < n)

    # -- streams -----------------------------------------------------------------------------

    def _stream_or_drain(self, i: int, value: object) -> list[object] | None:
        """Task ``i`` returned a generator that a mapped task maps over: keep it to stream
        from (None), or drain it into the list everyone else gets."""
        if i in self._streamable:
            self._streams[i] = value
            self._release(i)  # its mapper may start; the task stays running while it streams
            return None
        try:
            if inspect.isasyncgen(value):
                return list(AsyncPump(value, UNBOUNDED_WINDOW, self.tasks[i].name))
            return list(value)  # type: ignore[call-overload,no-any-return]
        except INTERRUPTS:
            raise
        except BaseException as error:  # the generator's failure is the task's, no retry
            self.errors[i] = error
            self._fail_for_good(i, error)
            return None

    def _close_producers(self, m: MapState, *, exhausted: bool) -> None:
        for up, stream in m.producers:
            self._close_stream(up, stream, exhausted=exhausted, count=m.next_index)
        m.producers.clear()

    def _close_stream(self, up: int, stream: object, *, exhausted: bool, count: int = 0) -> None:
        """End a streamed generator's task: ``completed`` with the number of elements it
        yielded (its elements are not kept), or ``cancelled`` if the run stopped first."""
        self._streams.pop(up, None)
        if self.statuses[up].is_terminal:
            return
        if not exhausted and (inspect.isgenerator(stream) or isinstance(stream, AsyncPump)):
            stream.close()  # an async generator never pulled is simply dropped
        self.results[up] = count
        self.finished[up] = perf_counter()
        status = _COMPLETED if exhausted or not self.stopping else _CANCELLED
        self.statuses[up] = status
        if self.tasks[up].on_status_change is not None or self.monitors:
            self._notify(up, status)


class MapEngine(MapMixin):
    """An :class:`Engine` for workflows with mapped tasks; see the module docstring."""

    def __init__(self, workflow: Workflow, options: RunOptions) -> None:
        super().__init__(workflow, options)
        self._init_maps(workflow)
