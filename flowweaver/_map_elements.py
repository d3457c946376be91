"""The elements of mapped tasks: admission, and one attempt, retry and status per element.

Half of the engine's map support (see ``_mapping`` for the design): this mixin admits elements
into element slots, reads an iterator's elements as their slots begin, and runs each element
through the engine's rules — the retry rule of tasks (:func:`~flowweaver._engine.retry_delay`),
the failure policy, ``when=``, observers — writing its outcome to the task's
:class:`~flowweaver.ElementRecord`. ``_mapping.MapMixin`` builds on it: it starts and ends
mapped tasks, and inlines the hot path of plain elements.
"""

from __future__ import annotations

import logging
from time import perf_counter
from typing import TYPE_CHECKING, Any

from ._binding import params_of
from ._calls import INTERRUPTS
from ._elements import CODE, element_name
from ._engine import Call, Engine, retry_delay
from ._errors import ConfigurationError, ElementFailedError, MapLengthError
from ._map_state import NO_ELEMENT, UNREAD, MapState
from ._run import fetched
from ._status import FailurePolicy, TaskStatus

if TYPE_CHECKING:
    from ._task import Task

__all__ = ["ElementMixin"]

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


class ElementMixin(Engine):
    """Element slots and their outcomes (see the module docstring). Not slotted, like
    ``MapMixin``: a slotted mixin could not be combined with ``DurableEngine``."""

    _slot_map: list[MapState | None]
    _slot_index: list[int]
    _slot_attempts: list[int]
    _slot_value: list[object]
    _free: list[int]

    def _settle_map(self, m: MapState) -> None:
        """Settle the mapped task of ``m`` (``_mapping``)."""
        raise NotImplementedError

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
        index = self._slot_index[k]
        value = self._slot_value[k]
        if m.simple:
            args: tuple[Any, ...] = (value,)
            kwargs: dict[str, Any] | None = None
        else:
            args, kwargs = m.arguments(value)
        gates = self.gates
        # An element parked by its limiters had its reuse and when= asked already.
        first = attempt == 1 and (gates is None or not gates.waited(slot))
        if first and self._durable_elements and self._reuse_element(m, slot, args, kwargs):
            return None
        if first and task.when is not None:
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
        if task.limits and not gates.take(slot, task.limits):  # type: ignore[union-attr]
            return None  # parked, still pending: begun again once a permit may be free
        self._slot_attempts[k] = attempt
        record = m.record
        record.attempts += 1
        record._move(index, _RUNNING_CODE)
        if task.on_status_change is not None or self.monitors:
            self._notify_element(m, index, _RUNNING)
        fn = task._call_fn()
        if self.telemetry is not None:  # a span per element attempt, named like the element
            name = element_name(task.name, index)
            return self.telemetry.begin(slot, name, attempt, fn, perf_counter()), args, kwargs
        return fn, args, kwargs

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
        if self.gates is not None:
            self.gates.release(slot, None)
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
        if self.gates is not None:
            self.gates.release(slot, error)
        k = slot - self.n
        m = self._slot_map[k]
        if m is None or m.finished:
            return None
        delay, error = retry_delay(m.task, self._slot_attempts[k], error)
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
            self.stop_starting()
        self._element_ended(slot, _FAILED)

    def _element_ended(self, slot: int, status: TaskStatus) -> None:
        """Element ``slot`` ended in ``status``: free its slot, admit the next."""
        if self.gates is not None:
            self.gates.release(slot, None)  # e.g. cancelled while it ran
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
