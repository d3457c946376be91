"""StatusTracker: every item's status in every stage, its history, and live callbacks.

Design: the pipeline reports each change as plain values (:meth:`StatusTracker._status`); the
tracker keeps them as compact records and exact per-status counters, and only builds
:class:`StatusEvent` objects when a callback listens or a query asks. So a tracker with no
callbacks costs the pipeline no event objects at all.

An unbounded tracker (no ``max_history``) keeps no object per item or change: every change
is three slots appended to one flat log (item id, key, timestamp), which the worker loops
extend in place (``_log_for``). Every query first indexes what was logged since the last one
(``_fold``): for each change, the log index of its item's change before it (an ``array``),
each item's latest change (one dict of ints) and the counters — so the garbage collector
has nothing per item to look at, and polling ``get_stats()`` costs only what changed. A
bounded tracker keeps one history list per item instead (below), so that a finished item can
be forgotten at once.

A bounded tracker's history of an item is one flat list of ``(key, timestamp)`` pairs. A key
is a tuple of the changes made at that moment, each ``(stage, status code, worker,
metadata)``, and keys without metadata are made once and shared by every item (the log's
too), so a change costs the list two slots and a float: no object per change survives, and
the garbage collector has one list per item to look at (a tuple per change made every
collection slower as the history grew). A key may hold two
changes: when nobody listens to ``on_status_change``, a worker that finishes an item and puts
it into the next stage's queue in one step records "completed here, queued there" as one
pair (:meth:`StatusTracker._record`), with one timestamp — nobody could have told them apart.

Callbacks may be sync or async. A change is recorded, and a sync callback called, in the step
that makes it, so an item's history, and what a sync callback hears, is in order. An async
callback is awaited before the item moves on — except for ``queued``: that change is reported
once the item is in the stage's queue, where a worker may take it at once, so for one item an
async callback may hear of ``in_progress`` (or later changes) while its ``queued`` call still
runs.
"""

from __future__ import annotations

import threading
from array import array
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterator, Mapping
from time import time
from typing import Any

from ._checks import check_count, check_mapping, is_count
from ._errors import ConfigurationError
from ._events import call_safely
from ._pipeline_types import EMPTY, ErrorSummary, FailedItem, ItemStatus, StatusEvent, TaskEvent
from ._public import publish

__all__ = ["StatusTracker"]

_STATUSES = tuple(ItemStatus)
#: Index of each status in the counters (the pipeline passes these small ints around).
CODE = {status: code for code, status in enumerate(_STATUSES)}
_FAILED = CODE[ItemStatus.FAILED]
_COMPLETED = CODE[ItemStatus.COMPLETED]

StatusCallback = Callable[[StatusEvent], object]
TaskCallback = Callable[[TaskEvent], object]
#: One change: stage, status code, worker, metadata (or None).
Change = tuple[str | None, int, str | None, Mapping[str, Any] | None]
#: The changes one entry of a history records (one, or a "completed, queued" pair).
Key = tuple[Change, ...]


class StatusTracker:
    """Tracks the status of every item flowing through the pipelines it is attached to.

    Examples:
        >>> tracker = StatusTracker(on_status_change=print)
        >>> pipeline = Pipeline(stages=[stage], status_tracker=tracker)  # doctest: +SKIP
        >>> await pipeline.run(items)  # doctest: +SKIP
        >>> tracker.get_stats()["completed"]  # doctest: +SKIP
        50

    An item's status is its latest change in any stage: ``queued``, ``in_progress``,
    ``completed`` (the stage, or the whole pipeline after the last one), ``retrying``,
    ``skipped`` or ``failed``. Callbacks are attributes and may be replaced between runs. One
    that raises is logged and disabled for the rest of the run; it never changes an outcome.

    Args:
        on_status_change: Called with each :class:`StatusEvent`.
        on_task_start: Called with a :class:`TaskEvent` as each task call starts.
        on_task_complete: … when a task call returns.
        on_task_retry: … when a task call failed and will be retried.
        on_task_fail: … when a task call failed for good.
        max_history: Keep the history (and status) of at most this many items that have
            finished the pipeline (completed or failed), forgetting the ones that finished
            first; items still in flight are always kept. None keeps everything.
            :meth:`get_stats` stays exact (an id fed again after it was forgotten counts anew).
        on_success: ``(item_id, value, metadata)`` when an item completes the last stage.
        on_failure: ``(item_id, error, metadata)`` when an item fails in any stage.
        task_concurrency_limits: ``{task name: n}``: at most ``n`` calls of that task at once
            across all stages of the pipeline (AntFlow's guide passes these here; a stage's own
            ``task_concurrency_limits`` is the usual place).
    """

    def __init__(
        self,
        on_status_change: StatusCallback | None = None,
        on_task_start: TaskCallback | None = None,
        on_task_complete: TaskCallback | None = None,
        on_task_retry: TaskCallback | None = None,
        on_task_fail: TaskCallback | None = None,
        *,
        max_history: int | None = None,
        on_success: Callable[[Any, Any, dict[str, Any]], object] | None = None,
        on_failure: Callable[[Any, BaseException, dict[str, Any]], object] | None = None,
        task_concurrency_limits: Mapping[str, int] | None = None,
    ) -> None:
        self.on_status_change = on_status_change
        self.on_task_start = on_task_start
        self.on_task_complete = on_task_complete
        self.on_task_retry = on_task_retry
        self.on_task_fail = on_task_fail
        self.on_success = on_success
        self.on_failure = on_failure
        for label in (
            "on_status_change", "on_task_start", "on_task_complete", "on_task_retry",
            "on_task_fail", "on_success", "on_failure",
        ):  # fmt: skip
            value = getattr(self, label)
            if value is not None and not callable(value):
                raise ConfigurationError(
                    f"StatusTracker: {label} must be callable or None, got {value!r}"
                )
        if max_history is not None:
            check_count("StatusTracker", "max_history", max_history, minimum=1)
        limits = dict(
            check_mapping("StatusTracker", "task_concurrency_limits", task_concurrency_limits)
        )
        for key, limit in limits.items():
            if not (isinstance(key, str) and is_count(limit, 1)):
                raise ConfigurationError(
                    "StatusTracker: task_concurrency_limits must map task names to ints >= 1, "
                    f"got {task_concurrency_limits!r}"
                )
        self.task_concurrency_limits: dict[str, int] = limits
        self.max_history = max_history
        #: Per item: ``[key, timestamp, key, timestamp, ...]``, oldest first.
        self._history: dict[Any, list[Any]] = {}
        #: The shared key of each change without metadata, by (stage, code, worker).
        self._keys: dict[tuple[str | None, int, str | None], Key] = {}
        # Finished items, oldest first (only when the history is bounded).
        self._finished: OrderedDict[Any, None] | None = (
            OrderedDict() if max_history is not None else None
        )
        self._counts = [0] * len(_STATUSES)
        #: Unbounded only (``_history`` stays empty): every change as ``item id, key,
        #: timestamp``, oldest first; the worker loops append to it in place.
        self._log: list[Any] = []
        #: How many of the log's changes :meth:`_fold` has indexed: for each, the index of
        #: the same item's change before it (-1: none), and each item's latest change.
        self._folded = 0
        self._prev = array("q")
        self._latest: dict[Any, int] = {}
        #: Held while folding: a query from another thread (a dashboard's) may fold too.
        self._folding = threading.Lock()
        self._muted: set[str] = set()
        #: The exception of every item whose latest status is ``failed``.
        self._errors: dict[Any, BaseException] = {}

    def __repr__(self) -> str:
        self._fold()
        items = len(self._history) + len(self._latest)
        return f"StatusTracker(items={items}, max_history={self.max_history!r})"

    # -- queries -----------------------------------------------------------------------------

    def get_stats(self) -> dict[str, int]:
        """How many items are in each status now (keys: every status value, even if 0)."""
        self._fold()
        return {status.value: count for status, count in zip(_STATUSES, self._counts, strict=True)}

    def get_status(self, item_id: Any) -> StatusEvent | None:
        """The item's latest event, or None if the tracker never saw it (or forgot it)."""
        latest = self._latest_entry(item_id)
        return None if latest is None else _event(item_id, latest[0][-1], latest[1])

    def get_by_status(self, status: ItemStatus | str) -> list[StatusEvent]:
        """The latest event of every item whose status is ``status`` now."""
        code = CODE[ItemStatus(status)]
        return [_event(i, k[-1], t) for i, k, t in self._latest_entries() if k[-1][1] == code]

    def get_history(self, item_id: Any) -> list[StatusEvent]:
        """Every event of the item, oldest first (empty if unknown)."""
        return [
            _event(item_id, change, timestamp)
            for key, timestamp in self._entries(item_id)
            for change in key
        ]

    def get_tracked_ids(self) -> list[Any]:
        """The ids of every item the tracker remembers, in the order it first saw them."""
        self._fold()
        return list(self._latest if self._finished is None else self._history)

    def get_failed_items(self) -> list[FailedItem]:
        """Every remembered item whose latest status is ``failed``, in first-seen order."""
        failed = _FAILED
        items = []
        for item_id, key, timestamp in self._latest_entries():
            stage, code, _, metadata = key[-1]
            if code != failed:
                continue
            error = self._errors.get(item_id)
            if error is None:  # failed without an exception object (never by the pipeline)
                error = RuntimeError((metadata or {}).get("error", "unknown error"))
            attempts = (metadata or {}).get("attempts", 0)
            items.append(FailedItem(item_id, stage or "", error, attempts, timestamp))
        return items

    def get_error_summary(self) -> ErrorSummary:
        """The failures this tracker remembers, counted by type and by stage, and listed.

        With ``max_history``, only the remembered items are in it; ``Pipeline.get_error_summary``
        is the exact count of the latest run.
        """
        items = self.get_failed_items()
        by_type: dict[str, int] = {}
        by_stage: dict[str, int] = {}
        for item in items:
            by_type[item.error_type] = by_type.get(item.error_type, 0) + 1
            by_stage[item.stage] = by_stage.get(item.stage, 0) + 1
        return ErrorSummary(len(items), by_type, by_stage, items)

    # -- what the pipeline calls -------------------------------------------------------------

    def _begin_run(self) -> None:
        """A pipeline run starts: callbacks disabled in an earlier run get another chance."""
        self._muted.clear()

    def _status(
        self,
        item_id: Any,
        stage: str | None,
        code: int,
        worker: str | None,
        metadata: Mapping[str, Any] | None,
        error: BaseException | None = None,
    ) -> Awaitable[object] | None:
        """Record a change; returns the callback's awaitable when an async callback must run.

        ``error``: the exception of a ``failed`` change (kept for :meth:`get_failed_items`).
        """
        if metadata is None:
            key = self._keys.get((stage, code, worker))
            if key is None:
                key = self._keys[stage, code, worker] = ((stage, code, worker, None),)
        else:
            key = ((stage, code, worker, metadata),)
        if self._finished is None:  # unbounded: into the log (see _fold)
            timestamp = time()
            if error is None:
                self._log += (item_id, key, timestamp)
            else:  # what came before clears an earlier error, this one sets it
                self._fold()
                self._log += (item_id, key, timestamp)
                self._fold()
                self._errors[item_id] = error
            callback = self.on_status_change
            if callback is None or "on_status_change" in self._muted:
                return None
            return self._call("on_status_change", callback, (_event(item_id, key[0], timestamp),))
        counts = self._counts
        errors = self._errors
        if error is not None:
            errors[item_id] = error
        elif errors and item_id in errors:
            del errors[item_id]  # fed again after it failed
        history = self._history.get(item_id)
        if history is None:
            history = self._history[item_id] = [key, time()]
        else:
            counts[history[-2][-1][1]] -= 1  # the code of its latest change
            history += (key, time())
            finished = self._finished
            if finished is not None and item_id in finished:
                del finished[item_id]  # fed again: in flight, so kept
        counts[code] += 1
        callback = self.on_status_change
        if callback is None or "on_status_change" in self._muted:
            return None
        return self._call("on_status_change", callback, (_event(item_id, key[0], history[-1]),))

    def _key(self, *changes: tuple[str, int, str | None]) -> Key:
        """The key of these changes (no metadata) made at one moment, for :meth:`_record`."""
        return tuple((stage, code, worker, None) for stage, code, worker in changes)

    def _record(self, item_id: Any, key: Key, last: bool = False) -> None:
        """Record the changes of ``key`` (from :meth:`_key`), now: what :meth:`_status` does
        for each of them, in one call.

        Only while nobody listens to ``on_status_change`` (the pipeline checks): it calls no
        callback. ``last``: the last stage's ``completed`` (the item may be forgotten now).
        """
        if self._finished is None:
            self._log += (item_id, key, time())  # see _fold
            return
        errors = self._errors
        if errors and item_id in errors:
            del errors[item_id]  # fed again after it failed
        counts = self._counts
        history = self._history.get(item_id)
        if history is None:
            self._history[item_id] = [key, time()]
        else:
            finished = self._finished
            if finished is not None and item_id in finished:
                del finished[item_id]  # fed again: in flight, so kept
            counts[history[-2][-1][1]] -= 1
            history += (key, time())
        counts[key[-1][1]] += 1
        if last and self._finished is not None:
            self._item_finished(item_id)

    def _log_for(self) -> list[Any] | None:
        """The log a worker loop may append ``item id, key, timestamp`` to in place, or None.

        Only for an unbounded tracker (a bounded one forgets items as they finish, so it
        records each change as it comes) and while nobody listens to ``on_status_change``
        (the loop checks that before each append, as for :meth:`_record`).
        """
        return self._log if self._finished is None else None

    def _fold(self) -> None:
        """Index the changes logged since the last fold (unbounded only), oldest first: each
        one's link to its item's change before it, the item's latest change, the counters,
        and an earlier error cleared (the item was fed again) — what :meth:`_record` does to
        a bounded tracker's histories, with no object per item or change."""
        log = self._log
        if self._folded * 3 == len(log):
            return
        with self._folding:
            end = len(log) // 3  # the loops append whole changes
            latest = self._latest
            get = latest.get
            prev = self._prev
            counts = self._counts
            errors = self._errors
            for index in range(self._folded, end):
                item_id = log[3 * index]
                if errors and item_id in errors:
                    del errors[item_id]  # fed again after it failed
                before = get(item_id, -1)
                if before >= 0:
                    counts[log[3 * before + 1][-1][1]] -= 1
                prev.append(before)
                latest[item_id] = index
                counts[log[3 * index + 1][-1][1]] += 1
            self._folded = end

    def _latest_entry(self, item_id: Any) -> tuple[Key, float] | None:
        """The item's latest key and its timestamp, or None."""
        if self._finished is None:
            self._fold()
            index = self._latest.get(item_id)
            if index is None:
                return None
            return self._log[3 * index + 1], self._log[3 * index + 2]
        history = self._history.get(item_id)
        return None if history is None else (history[-2], history[-1])

    def _latest_entries(self) -> Iterator[tuple[Any, Key, float]]:
        """Every remembered item's id, latest key and its timestamp, in first-seen order."""
        if self._finished is None:
            self._fold()
            log = self._log
            for item_id, index in list(self._latest.items()):
                yield item_id, log[3 * index + 1], log[3 * index + 2]
        else:
            for item_id, history in list(self._history.items()):
                yield item_id, history[-2], history[-1]

    def _entries(self, item_id: Any) -> list[tuple[Key, float]]:
        """The item's keys with their timestamps, oldest first (empty if unknown)."""
        if self._finished is not None:
            history = self._history.get(item_id, [])
            return list(zip(history[::2], history[1::2], strict=True))
        self._fold()
        log, prev = self._log, self._prev
        index = self._latest.get(item_id, -1)
        entries = []
        while index >= 0:
            entries.append((log[3 * index + 1], log[3 * index + 2]))
            index = prev[index]
        entries.reverse()
        return entries

    def _done(self, item_id: Any, stage: str, worker: str) -> Awaitable[object] | None:
        """``completed`` in the last stage: the item is a result (it may be forgotten now)."""
        pending = self._status(item_id, stage, _COMPLETED, worker, None)
        if self._finished is not None:
            self._item_finished(item_id)
        return pending

    def _item_finished(self, item_id: Any) -> None:
        """The item completed the pipeline or failed: it may be forgotten (bounded history)."""
        finished = self._finished
        if finished is None:
            return
        finished[item_id] = None
        if len(finished) > self.max_history:  # type: ignore[operator]
            # A forgotten item keeps its final status in the counters, so they describe every
            # item seen, not only the remembered ones.
            forgotten = finished.popitem(last=False)[0]
            self._history.pop(forgotten, None)
            self._errors.pop(forgotten, None)

    def _task(self, hook: str, event: TaskEvent) -> Awaitable[object] | None:
        callback = getattr(self, hook)
        if callback is None or hook in self._muted:
            return None
        return self._call(hook, callback, (event,))

    def _call(
        self, hook: str, callback: Callable[..., object], args: tuple[object, ...]
    ) -> Awaitable[object] | None:
        ok, value = call_safely(callback, args, "status tracker callback %s", hook)
        if not ok:
            self._muted.add(hook)
            return None
        if value is not None and hasattr(value, "__await__"):
            return value
        return None

    def _mute(self, hook: str) -> None:
        """An async callback raised (the pipeline awaited it): disable it for this run."""
        self._muted.add(hook)


def _event(item_id: Any, change: Change, timestamp: float) -> StatusEvent:
    stage, code, worker, metadata = change
    return StatusEvent(item_id, stage, _STATUSES[code], worker, timestamp, metadata or EMPTY)


publish(__name__)  # last: every exported class above exists
