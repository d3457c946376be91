"""The worker loop of the common stage: one plain async task and nothing else to call.

A stage whose only task is an async function with no limit, timeout or unpacking, and that
has no ``skip_if``, ``on_success``, task-event listener, telemetry or checkpoint (the last
stage's), runs this loop instead of ``StageRun._loop``. It takes the same steps in the same
order and keeps every rule of ``_stage_run``'s docstring (one place for each item; a slot
cleared in the step its item enters a channel; a failure retried or recorded through the
stage's own methods), minus the tests for what such a stage does not have. Those tests are
about a tenth of an item's time in a pipeline of trivial tasks.

With a :class:`StatusTracker` that nobody listens to change by change (no
``on_status_change``), it records each change through the tracker's one-call path
(``_record``, with keys made once per worker) — or, for an unbounded tracker, appends it to
the tracker's log in place (no call at all) — and "completed here" with "queued there" as
one record when the item goes into the next stage's queue without waiting.
"""

from __future__ import annotations

import asyncio
from time import perf_counter, time
from typing import TYPE_CHECKING

from ._channel import ChannelClosed
from ._errors import ItemCancelledError
from ._pipeline_types import ItemStatus
from ._stage_items import YIELD_EVERY, Failed, stops
from ._tracker import CODE, Key

if TYPE_CHECKING:
    from ._stage_items import WorkerSlot
    from ._stage_run import StageRun

__all__ = ["plain_loop"]

_IN_PROGRESS = CODE[ItemStatus.IN_PROGRESS]
_COMPLETED = CODE[ItemStatus.COMPLETED]
_QUEUED = CODE[ItemStatus.QUEUED]


async def plain_loop(stage: StageRun, slot: WorkerSlot) -> None:
    """``StageRun._loop`` for the common stage — one plain async task; no ``skip_if``,
    ``on_success``, task hook, telemetry or checkpoint — with the same steps in the same
    order, minus the tests for what it does not have (a tenth of an item's time)."""
    run, inbox, nxt = stage.run, stage.inbox, stage.next
    get_nowait = inbox.get_nowait
    tracker = run.tracker
    name, worker = stage.name, slot.name
    fn = stage.fns[0]
    # What it records when nobody listens to each change (see _tracker).
    began: Key = ()
    done: Key = ()
    moved: Key = ()
    # The tracker's log, appended to in place (an unbounded tracker; see _tracker).
    log = None
    if tracker is not None:
        log = tracker._log_for()
        began = tracker._key((name, _IN_PROGRESS, worker))
        done = tracker._key((name, _COMPLETED, worker))
        if nxt is not None:
            moved = tracker._key((name, _COMPLETED, worker), (nxt.name, _QUEUED, None))
    put_nowait = None if nxt is None else nxt.inbox.put_nowait
    streak = 0
    # When the last item ended (perf_counter) if the worker has not waited since: the next
    # one starts then — a clock read saved per item, the hand-off counted as busy time.
    ended: float | None = None
    while True:
        item = get_nowait()
        if item is None:
            streak = 0
            ended = None
            item = await inbox.get()
            if item is None:
                return
        slot.item = item
        if slot.status is not None:  # what its task said about the item before
            slot.status = slot.status_at = None
        slot.since = start = perf_counter() if ended is None else ended
        ended = None
        if tracker is not None:
            if tracker.on_status_change is None:
                if log is not None:
                    log += (item.id, began, time())
                else:
                    tracker._record(item.id, began)
            else:
                slot.attempts = 0  # none started yet, should a shutdown come meanwhile
                pending = tracker._status(item.id, name, _IN_PROGRESS, worker, None)
                if pending is not None:
                    await run.settle(pending, "on_status_change")
        value = item.value
        slot.attempts = item.attempt
        try:
            item.value = await fn(value)
        except BaseException as error:
            if stops(error):
                raise
            try:
                item.value = await stage._retry(0, value, item, slot, error, None)
            except Failed as failed:
                slot.last = perf_counter()  # busy counts successes only (WorkerMetrics)
                await stage._failed(item, slot, failed)
                slot.item = None
                continue
        if item.ended:  # a shutdown gave up on this worker and recorded the item
            slot.item = None
            return
        end = perf_counter()
        slot.processed += 1
        slot.busy += end - start
        slot.last = end
        if nxt is None:
            result = run.complete(item)  # ends the item before anyone hears of it
            if tracker is not None:
                if result is None:  # a shutdown ended it meanwhile
                    pending = tracker._status(item.id, name, _COMPLETED, worker, None)
                elif tracker.on_status_change is None:
                    pending = None
                    if log is not None:
                        log += (item.id, done, time())
                    else:
                        tracker._record(item.id, done, last=True)
                else:
                    pending = tracker._done(item.id, name, worker)
                if pending is not None:
                    await run.settle(pending, "on_status_change")
            if result is not None and (
                run.outbox is not None or (tracker is not None and tracker.on_success is not None)
            ):
                await run.deliver(item, result)
            elif tracker is None or tracker.on_status_change is None:
                ended = end  # nothing waited
            slot.item = None
        else:
            assert put_nowait is not None
            # With nobody listening to each change, "completed here" and "queued there"
            # are one record once the item is in (the same step: no one can tell).
            quiet = tracker is not None and tracker.on_status_change is None
            if tracker is not None and not quiet:
                pending = tracker._status(item.id, name, _COMPLETED, worker, None)
                if pending is not None:
                    await run.settle(pending, "on_status_change")
            item.attempt = 1
            handed = waited = False
            try:  # as in _loop
                if not put_nowait(item, item.priority):
                    if quiet:  # it waits for room: completed now, queued once it is in
                        assert tracker is not None
                        tracker._record(item.id, done)
                        quiet = False
                    waited = True
                    await nxt.inbox.put(item, item.priority, slot.handed_off)
                    handed = nxt.pull
            except ChannelClosed:
                slot.item = None
                await run.fail(item, nxt, ItemCancelledError(item.id, nxt.name), 0)
                return
            slot.item = None
            if quiet:
                if log is not None:
                    log += (item.id, moved, time())
                else:
                    assert tracker is not None
                    tracker._record(item.id, moved)
                ended = end  # nothing waited
            elif tracker is None:
                if not waited:
                    ended = end
            elif not handed:
                pending = tracker._status(item.id, nxt.name, _QUEUED, None, None)
                if pending is not None:
                    await run.settle(pending, "on_status_change")
        streak += 1
        if streak >= YIELD_EVERY:
            streak = 0
            ended = None
            await asyncio.sleep(0)
