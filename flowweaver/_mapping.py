"""Mapped tasks in the engine: one attempt, retry, status and commit per element.

``Engine(workflow, options)`` builds a :class:`MapEngine` (or, for a durable run, a
``_durable_map.DurableMapEngine``) when the workflow has a mapped task; other runs never reach this
code.

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
from typing import TYPE_CHECKING, Any

from ._binding import params_of
from ._calls import INTERRUPTS
from ._elements import CODE, element_name
from ._engine import Call, Engine, retry_delay
from ._errors import (
    ConfigurationError,
    ElementFailedError,
    MapLengthError,
    MappedTaskFailedError,
    NotIterableError,
)
from ._map_state import (
    NO_ELEMENT,
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
from ._status import FailurePolicy, TaskStatus

if TYPE_CHECKING:
    from ._options import RunOptions
    from ._run import WorkflowRun
    from ._task import Task
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


class MapMixin(Engine):
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

    def begin(self, i: int) -> Call | None:
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
        return super().begin(i)

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

    # -- admission ---------------------------------------------------------------------------

    def _admit(self, m: MapState) -> None:
        """Admit elements while the task has room and its consumers' buffers too; settle the
        task once nothing is admitted and nothing more will be."""
        if not m.finished:
            consumers = m.consumers
            while not (m.exhausted or m.halted or self.stopping) and m.live < m.limit:
                if consumers and any(
                    c.buffer is not None and len(c.buffer) >= c.limit for c in consumers
                ):
                    break  # backpressure: a downstream mapped task is behind
                if not self._admit_one(m):
                    break
            if m.live == 0 and (m.exhausted or m.halted or self.stopping):
                self._settle_map(m)
        feeder = m.feeder
        if feeder is not None and not feeder.finished:
            self._admit(feeder)  # its buffer may have room again

    def _admit_one(self, m: MapState) -> bool:
        """Admit the next element (False when there is none now).

        An element streamed in from a mapped task is taken from its buffer now. An element of
        an iterator (a list, a generator) is only *reserved*: it is read when a driver begins
        the slot, just before its call is sent, so a generator produces element ``i + 1``
        while element ``i`` runs, never many ahead of what has been started.
        """
        buffer = m.buffer
        if buffer is not None:
            if not buffer:
                if not m.upstream_open:
                    m.exhausted = True
                return False
            index, value = buffer.popleft()
            if value is NO_ELEMENT:  # the upstream element did not complete
                m.record._set(index, _UPSTREAM_FAILED)
                self._grow_results(m, index)
                if m.task.on_status_change is not None or self.monitors:
                    self._notify_element(m, index, _UPSTREAM_FAILED)
                return True
            m.record._set(index, _PENDING)
            self._grow_results(m, index)
        else:
            total = m.record.total
            if total is not None and m.reserved >= total:
                return False
            m.reserved += 1
            index, value = -1, UNREAD
        free = self._free
        if free:
            slot = free.pop()
            k = slot - self.n
            self.tasks[slot] = m.task
            self._slot_map[k] = m
            self._slot_index[k] = index
            self._slot_attempts[k] = 0
            self._slot_value[k] = value
        else:
            slot = len(self.tasks)
            self.tasks.append(m.task)
            self._slot_map.append(m)
            self._slot_index.append(index)
            self._slot_attempts.append(0)
            self._slot_value.append(value)
        m.live += 1
        self.ready.append(slot)
        return True

    def _read(self, m: MapState, k: int) -> bool:
        """Read the element of reserved slot ``k`` from the task's iterator (False: none)."""
        if m.exhausted or m.halted or self.stopping:
            return False
        iterator = m.iterator
        assert iterator is not None
        try:
            value = next(iterator)
        except INTERRUPTS:
            raise
        except BaseException as error:
            self._read_failed(m, error)
            return False
        index = m.next_index  # an iterator's elements are seen in order: index == len(record)
        m.next_index = index + 1
        record = m.record
        if index + 1 == record.total:
            m.exhausted = True
        record._add()
        results = m.results
        if results is not None:
            results.append(None)
        self._slot_index[k] = index
        self._slot_value[k] = value
        return True

    def _read_failed(self, m: MapState, error: BaseException) -> None:
        """Reading the next element raised ``error``: the end, or a failure of the source."""
        if isinstance(error, StopIteration):
            m.exhausted = True
            m.record.total = m.next_index
        else:
            self._source_failed(m, error)

    def _unreserve(self, slot: int) -> None:
        """A reserved slot found no element: free it (the task may be over)."""
        k = slot - self.n
        m = self._slot_map[k]
        assert m is not None
        self._slot_map[k] = None
        self._free.append(slot)
        m.live -= 1
        m.reserved -= 1
        self._admit(m)

    @staticmethod
    def _grow_results(m: MapState, index: int) -> None:
        results = m.results
        if results is not None:
            while len(results) <= index:
                results.append(None)

    def _source_failed(self, m: MapState, error: BaseException) -> None:
        """Reading the next element raised: a streamed generator failed (its task fails and
        this one ends ``upstream_failed``), or the mapped-over value could not be iterated."""
        m.halted = True
        if isinstance(error, MapLengthError):
            m.input_error = error
            return
        for up, _ in m.producers:
            if not self.statuses[up].is_terminal:
                self.errors[up] = error
                self._fail_for_good(up, error)
                m.upstream_failed = True
                break
        else:
            m.input_error = error
        m.producers.clear()

    # -- one element -------------------------------------------------------------------------

    def _begin_element(self, slot: int) -> Call | None:
        k = slot - self.n
        m = self._slot_map[k]
        assert m is not None
        if self._slot_value[k] is UNREAD and not self._read(m, k):
            self._unreserve(slot)
            return None
        task = m.task
        attempt = self._slot_attempts[k] + 1
        self._slot_attempts[k] = attempt
        index = self._slot_index[k]
        value = self._slot_value[k]
        if m.simple:
            args: tuple[Any, ...] = (value,)
            kwargs: dict[str, Any] | None = None
        else:
            args, kwargs = m.arguments(value)
        if attempt == 1 and self._durable_elements and self._reuse_element(m, slot, args, kwargs):
            return None
        if attempt == 1 and task.when is not None:
            try:
                verdict = self._element_verdict(task, args, kwargs)
            except INTERRUPTS:
                raise
            except BaseException as error:  # a raising predicate fails the element, no retry
                self._slot_attempts[k] = 1
                self._element_failed_for_good(slot, error)
                return None
            if not verdict:
                self._element_ended(slot, _SKIPPED)
                return None
        record = m.record
        record.attempts += 1
        record._move(index, _RUNNING_CODE)
        if task.on_status_change is not None or self.monitors:
            self._notify_element(m, index, _RUNNING)
        if self.telemetry is not None:  # a span per element attempt, named like the element
            name = element_name(task.name, index)
            return self.telemetry.begin(slot, name, attempt, task.fn, perf_counter()), args, kwargs
        return task.fn, args, kwargs

    @staticmethod
    def _element_verdict(
        task: Task[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any] | None
    ) -> object:
        predicate = task.when
        assert predicate is not None
        if params_of(predicate).takes_nothing:
            verdict = predicate()
        else:
            named = kwargs or {}
            values = fetched((*named.values(), *args))
            verdict = predicate(*values[len(named) :], **dict(zip(named, values, strict=False)))
        if hasattr(verdict, "__await__"):
            close = getattr(verdict, "close", None)
            if close is not None:
                close()
            raise ConfigurationError(
                f"task {task.name!r}: when= must be a sync predicate; it returned {verdict!r}"
            )
        return verdict

    #: Whether elements are committed and reused (``_durable_map``): two hooks, skipped here.
    _durable_elements = False

    def _reuse_element(
        self, m: MapState, slot: int, args: tuple[Any, ...], kwargs: dict[str, Any] | None
    ) -> bool:
        """Settle element ``slot`` from durable state without running it (see
        ``_durable_map``); True if it was settled."""
        return False

    def _commit_element(self, m: MapState, slot: int, value: object) -> BaseException | None:
        """Make element ``slot``'s result durable (see ``_durable_map``); the error if that
        failed."""
        return None

    def _element_succeeded(self, slot: int, value: object) -> None:
        k = slot - self.n
        m = self._slot_map[k]
        if m is None or m.finished:
            return  # a late outcome of a run that already settled the task
        if self.telemetry is not None:
            name = element_name(m.task.name, self._slot_index[k])
            self.telemetry.end(slot, name, perf_counter(), None, retried=False)
        if self._durable_elements:
            error = self._commit_element(m, slot, value)
            if error is not None:  # it cannot be stored: the element fails, never retried
                self._element_failed_for_good(slot, error)
                return
        self._element_completed(m, slot, value)

    def _element_completed(self, m: MapState, slot: int, value: object) -> None:
        k = slot - self.n
        index = self._slot_index[k]
        results = m.results
        if results is not None:
            results[index] = value
        for consumer in m.consumers:
            assert consumer.buffer is not None
            consumer.buffer.append((index, value))
        self._element_ended(slot, _COMPLETED)

    def _element_failed(self, slot: int, error: BaseException) -> float | None:
        k = slot - self.n
        m = self._slot_map[k]
        if m is None or m.finished:
            return None
        delay = retry_delay(m.task, self._slot_attempts[k], error)
        if self.telemetry is not None:
            name = element_name(m.task.name, self._slot_index[k])
            retried = delay is not None and not self.stopping
            self.telemetry.end(slot, name, perf_counter(), error, retried)
        if delay is None:
            self._element_failed_for_good(slot, error)
            return None
        if self.stopping:  # it would be retried, but the run starts nothing new
            self._element_ended(slot, _CANCELLED)
            return None
        index = self._slot_index[k]
        m.record._set(index, _RETRYING)
        task = m.task
        name = element_name(task.name, index)
        attempt = self._slot_attempts[k]
        logger.info(
            "task %r: attempt %d failed (%s: %s); retry %d of %d in %.3g s",
            name, attempt, type(error).__name__, error, attempt, task.retries, delay,
            extra={**self.log_fields, "task": name, "attempt": attempt},
        )  # fmt: skip
        if task.on_status_change is not None or self.monitors:
            self._notify_element(m, index, _RETRYING)
        if task.on_retry is not None and (m.i, "on_retry") not in self._muted:
            self._call_task_callback(m.i, "on_retry", task.on_retry, name, attempt)
        return delay

    def _element_failed_for_good(self, slot: int, error: BaseException) -> None:
        k = slot - self.n
        m = self._slot_map[k]
        assert m is not None
        index = self._slot_index[k]
        failure = ElementFailedError(m.task.name, index, max(self._slot_attempts[k], 1), error)
        m.record.failures.append(failure)
        logger.info(
            "%s", failure,
            extra={**self.log_fields, "task": element_name(m.task.name, index),
                   "attempt": failure.attempts},
        )  # fmt: skip
        for consumer in m.consumers:
            assert consumer.buffer is not None
            consumer.buffer.append((index, NO_ELEMENT))
        if self.policy is FailurePolicy.FAIL_FAST and not m.task.allow_failed_elements:
            self.stopping = True
        self._element_ended(slot, _FAILED)

    def _element_ended(self, slot: int, status: TaskStatus) -> None:
        """Element ``slot`` ended in ``status``: free its slot, admit the next."""
        k = slot - self.n
        m = self._slot_map[k]
        if m is None or m.finished:
            return
        index = self._slot_index[k]
        m.record._move(index, _CODES[status])
        if m.task.on_status_change is not None or self.monitors:
            self._notify_element(m, index, status)
        if not (m.exhausted or m.halted or m.consumers or self.stopping or m.buffer is not None):
            total = m.record.total
            if total is None or m.reserved < total:
                # The next element of the iterator takes this slot over: it goes to the back
                # of the ready queue, reserved, exactly as a fresh slot would.
                m.reserved += 1
                self._slot_index[k] = -1
                self._slot_attempts[k] = 0
                self._slot_value[k] = UNREAD
                self.ready.append(slot)
                return
        self._slot_map[k] = None
        self._slot_value[k] = None
        self._free.append(slot)
        m.live -= 1
        self._admit(m)
        for consumer in m.consumers:
            self._admit(consumer)

    def _notify_element(self, m: MapState, index: int, status: TaskStatus) -> None:
        name = element_name(m.task.name, index)
        callback = m.task.on_status_change
        if callback is not None and (m.i, "on_status_change") not in self._muted:
            self._call_task_callback(m.i, "on_status_change", callback, name, status)
        for monitor in tuple(self.monitors):
            self._call_monitor(monitor, "on_status_change", self.run, name, status)

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
