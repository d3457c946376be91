"""One run of a pipeline: where items come in, where they end, and how the run stops.

Design:

* Items end in exactly one place: :meth:`PipelineRun.complete` (a result, after the last stage)
  or :meth:`PipelineRun.fail` (a recorded failure: error summary, tracker, ``on_failure``,
  ``stream()``). Both set ``item.ended`` before anything else, so whatever a shutdown races
  with, an item ends once.
* Checkpointing (a run with a :class:`~flowweaver._pipeline_state.Checkpoint`) adds a third
  ending and one step, both on the loop: :meth:`feed` ends an item whose committed result it
  restores (``restored`` — no stage sees it), and the last stage's worker commits
  an item's result just before :meth:`complete` (a commit that fails fails the item instead).
* The run counts items fed and not yet ended (``open``), from the moment a feeder takes one
  from the input: an item in a feeder's hand (waiting for room in a full channel) is in flight
  too, and ends like the others. :meth:`join` waits until that is zero
  with no feed in progress — items waiting for a per-stage retry or for room downstream are still
  open — then closes the channels, and the workers drain and end.
* :meth:`abort` (``shutdown()``, a cancelled ``run()``, a ``stream()`` left early) cancels every
  worker and retry timer, waits for them (a bounded grace for tasks that ignore cancellation),
  then fails every item still inside — in a worker's slot, a channel, a timer or a feeder's
  hand — with :class:`ItemCancelledError`; a feeder takes nothing more from its input.
  Closing the channels also wakes feeders waiting on a full queue: nothing waits forever.
* Sync tasks go through the run's ``sync_calls`` (``_offload``): flowweaver's daemon threads by
  default, made for the run and closed with it, or the user's executor through its ``submit``.
* Failures are counted exactly (in total, by error type, by stage). Their records
  (:class:`FailedItem`, with the exception) are all kept when the run keeps its results; a run
  that keeps none (``stream()``, ``collect_results=False``) keeps the latest
  :data:`KEPT_FAILURES`, so its memory stays flat however many items fail.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, deque
from collections.abc import AsyncIterable, Callable, Iterable
from operator import attrgetter
from time import time
from typing import TYPE_CHECKING, Any

from ._channel import Channel, ChannelClosed
from ._errors import ItemCancelledError, PipelineError
from ._events import OBSERVER_TIMEOUT, ObserverWaits, call_safely
from ._pipeline_stats import end_of_run_warning
from ._pipeline_types import EMPTY, FailedItem, ItemStatus, PipelineResult, success
from ._stage_items import Item, Permit, WorkerSlot
from ._stage_run import StageRun
from ._tracker import CODE

if TYPE_CHECKING:
    from collections.abc import Awaitable, Sequence

    from ._clock import Clock
    from ._limiter import Limiter
    from ._offload import SyncCalls
    from ._pipeline_state import Checkpoint
    from ._stage import Stage
    from ._telemetry_spans import PipelineTelemetry
    from ._tracker import StatusTracker

__all__ = ["KEPT_FAILURES", "PipelineRun"]

logger = logging.getLogger("flowweaver.pipeline")

_QUEUED = CODE[ItemStatus.QUEUED]
_FAILED = CODE[ItemStatus.FAILED]
_TASK_HOOKS = ("on_task_start", "on_task_complete", "on_task_retry", "on_task_fail")
#: How long a shutdown waits for cancelled workers before abandoning them (a task that
#: swallows cancellation); cooperative tasks stop at once.
_GRACE = 1.0
#: Restoring items never waits: yield to the event loop after this many of them.
_YIELD_EVERY = 64
#: How many failure records (the latest) a run that keeps no results keeps; counts stay exact.
KEPT_FAILURES = 1000


#: A result's position in the input (C-level: the sort at the end calls it once per result).
_seq = attrgetter("sequence_id")


class PipelineRun:
    """The state of one run (from ``start()`` to ``join()`` or ``shutdown()``)."""

    def __init__(
        self,
        stages: Sequence[Stage],
        *,
        tracker: StatusTracker | None,
        clock: Clock,
        sync_calls: SyncCalls | None,
        collect: bool,
        outbox: Channel[PipelineResult] | None,
        checkpoint: Checkpoint | None = None,
        telemetry: PipelineTelemetry | None = None,
        carry_context: bool = True,
        observer_timeout: float | None = OBSERVER_TIMEOUT,
        name: str = "pipeline",
    ) -> None:
        self.name = name
        self.tracker = tracker
        #: How long callbacks' awaitables may run (the rule for observers that do not return).
        self.observer_waits = ObserverWaits(observer_timeout)
        #: OpenTelemetry spans and counters (None unless configure_telemetry() is on).
        self.telemetry = telemetry
        #: Whether sync tasks run in this process (threads), so they can get a worker's context.
        self.carry_context = carry_context
        self.checkpoint = checkpoint
        self.clock = clock
        self.sync_calls = sync_calls  # where sync tasks run; closed when the run finishes
        self.task_hooks = tracker is not None and any(
            getattr(tracker, hook) is not None for hook in _TASK_HOOKS
        )
        self.results: list[PipelineResult] | None = [] if collect else None
        self.outbox = outbox
        # Every failure record while results are kept; the latest ones otherwise.
        self.failures: list[FailedItem] | deque[FailedItem] = (
            [] if collect else deque(maxlen=KEPT_FAILURES)
        )
        self.failed = 0
        self.failed_by_type: Counter[str] = Counter()
        self.failed_by_stage: Counter[str] = Counter()
        self.processed = 0
        self.restored = 0  # of processed: ended as fed, with a result committed earlier
        self.open = 0
        self.feeding = 0
        self.fed = 0
        self.stopping = False
        self.finished = False
        self.drained = asyncio.Event()
        self.drained.set()
        # Set once the run is over: join() finished it, or a shutdown settled every item.
        self._over = asyncio.Event()
        self.timers: dict[asyncio.Task[None], tuple[Item, StageRun]] = {}
        #: Items a feeder took from the input and waits to put into a full channel.
        self.in_hand: dict[Item, StageRun] = {}
        self.workers: list[asyncio.Task[None]] = []
        self._muted: set[tuple[str, str]] = set()
        self.stages = [
            StageRun(self, stage, limiters) for stage, limiters in _limiters(stages, tracker)
        ]
        for before, after in zip(self.stages, self.stages[1:], strict=False):
            before.next = after
        if tracker is not None:
            tracker._begin_run()

    def start(self) -> None:
        """Start every worker (on the running loop)."""
        loop = asyncio.get_running_loop()
        for stage in self.stages:
            for slot in stage.slots:
                self.workers.append(loop.create_task(stage.work(slot), name=slot.name))

    # -- items in ------------------------------------------------------------------------------

    def _item(self, raw: Any, priority: int) -> Item:
        seq = self.fed
        self.fed = seq + 1
        self.open += 1  # in flight from here: every item taken from the input ends, once
        if isinstance(raw, dict) and "id" in raw:
            meta = {k: v for k, v in raw.items() if k not in {"id", "value"}} or None
            return Item(raw["id"], raw.get("value", raw), seq, priority, meta)
        return Item(seq, raw, seq, priority, None)

    async def feed(
        self,
        items: Iterable[Any] | AsyncIterable[Any],
        stage: StageRun,
        priority: int,
        *,
        stops_on_cancel: bool = False,
    ) -> None:
        """Put every item into ``stage``'s channel, waiting for room.

        Every item taken from ``items`` ends, once: an item in hand when the run is shut down
        (or when this feed is cancelled) is recorded as cancelled, and no further item is taken
        once the run is stopping.

        Args:
            stops_on_cancel: The caller stops the run if this feed is cancelled (``run()``,
                ``stream()``): the item in hand is left to that shutdown, whose callbacks are
                bounded by the stop (``ObserverWaits``), rather than recorded here first.

        Raises:
            PipelineError: The run stopped (shutdown) before every item was accepted.
        """
        self.feeding += 1
        self.drained.clear()
        inbox, tracker, name = stage.inbox, self.tracker, stage.name
        restore = None if self.checkpoint is None else self.checkpoint.restore
        count = 0
        item: Item | None = None  # the item in hand: taken from the input, not yet accepted
        try:
            if isinstance(items, AsyncIterable):
                async for raw in items:
                    item = self._item(raw, priority)
                    if restore is None or not await self._restored(item, restore, stage):
                        await self._accept(item, stage, stops_on_cancel)
                    item = None
                    count += 1
                    if inbox.closed:  # shut down meanwhile: take nothing more from the input
                        raise ChannelClosed
            else:
                put_nowait = inbox.put_nowait
                queued = None if tracker is None else tracker._key((name, _QUEUED, None))
                log = None if tracker is None else tracker._log_for()
                for raw in items:
                    item = self._item(raw, priority)
                    if restore is not None and await self._restored(item, restore, stage):
                        pass
                    elif put_nowait(item, priority):
                        if tracker is None:
                            pass
                        elif tracker.on_status_change is None:  # the one-call record
                            assert queued is not None
                            if log is not None:
                                log += (item.id, queued, time())
                            else:
                                tracker._record(item.id, queued)
                        else:
                            pending = tracker._status(item.id, name, _QUEUED, None, None)
                            if pending is not None:
                                item = None
                                await self.settle(pending, "on_status_change")
                    else:
                        await self._accept(item, stage, stops_on_cancel)
                    item = None
                    count += 1
                    if inbox.closed:  # shut down meanwhile: take nothing more from the input
                        raise ChannelClosed
        except ChannelClosed:
            if item is not None:  # in hand when the run stopped (or taken as it stopped)
                self.in_hand.pop(item, None)
                await self.fail(item, stage, ItemCancelledError(item.id, name), 0)
            raise PipelineError(
                f"the pipeline was shut down while feeding stage {name!r}: "
                f"{count} item(s) were accepted"
                + (", the one taken from the input was recorded as cancelled" * (item is not None))
                + ", the rest were not taken"
            ) from None
        finally:
            self.feeding -= 1
            if not self.open and not self.feeding:
                self.drained.set()

    async def _accept(self, item: Item, stage: StageRun, stops_on_cancel: bool) -> None:
        """Put ``item`` into ``stage``'s channel, waiting for room; while it waits it is in the
        feeder's hand (``in_hand``), where a shutdown finds it.

        Raises:
            ChannelClosed: A shutdown closed the channel (the caller records the item).
        """
        in_hand = self.in_hand
        in_hand[item] = stage
        try:
            await stage.inbox.put(item, item.priority)
        except asyncio.CancelledError:
            # Cancelled run() or stream(): the shutdown that follows records it, its callbacks
            # bounded by the stop. A cancelled feed() alone (the run goes on): recorded here.
            if (self.stopping or not stops_on_cancel) and in_hand.pop(item, None) is not None:
                await self.fail(item, stage, ItemCancelledError(item.id, stage.name), 0)
            raise
        del in_hand[item]  # in the step that put it in the channel (see _stage_run)
        tracker = self.tracker
        if tracker is not None:
            pending = tracker._status(item.id, stage.name, _QUEUED, None, None)
            if pending is not None:
                await self.settle(pending, "on_status_change")

    async def _restored(
        self,
        item: Item,
        restore: Callable[[Item], PipelineResult | BaseException | None],
        stage: StageRun,
    ) -> bool:
        """End an item as it is fed if the checkpoint has it: with its restored result, or
        failed (the store could not say). False if it is to be processed."""
        outcome = restore(item)
        if outcome is None:
            return False
        if stage.inbox.closed:  # shut down: refused like an item put into the closed channel
            raise ChannelClosed
        if isinstance(outcome, BaseException):
            await self.fail(item, stage, outcome, 0)
            return True
        item.ended = True
        self.processed += 1
        self.restored += 1
        self.open -= 1
        if self.results is not None:
            self.results.append(outcome)
        outbox = self.outbox
        if outbox is not None and not outbox.put_nowait(outcome, 0):
            await outbox.put(outcome, 0)
        elif not self.restored % _YIELD_EVERY:
            await asyncio.sleep(0)  # a long run of restored items must not starve the loop
        return True

    def requeue(self, stage: StageRun, item: Item, delay: float) -> None:
        """Send an item back to its stage for a per-stage retry, now or after ``delay``."""
        if delay <= 0:
            stage.inbox.put_nowait(item, item.priority, force=True)
            return
        timer = asyncio.get_running_loop().create_task(self._requeue_later(stage, item, delay))
        self.timers[timer] = (item, stage)
        timer.add_done_callback(self._timer_done)

    async def _requeue_later(self, stage: StageRun, item: Item, delay: float) -> None:
        await self.clock.sleep_async(delay)
        stage.inbox.put_nowait(item, item.priority, force=True)
        # In the same step: the item is the channel's now, and no longer the timer's (the
        # done-callback would forget the timer only later, and a shutdown looks in both).
        timer = asyncio.current_task()
        if timer is not None:
            self.timers.pop(timer, None)

    def _timer_done(self, timer: asyncio.Task[None]) -> None:
        self.timers.pop(timer, None)

    # -- items out: the only two places an item ends -------------------------------------------

    def complete(self, item: Item) -> PipelineResult | None:
        """``item`` went through the last stage: record its result.

        Returns:
            The result, when somebody must hear of it (:meth:`deliver`); None when the item
            had already ended (a shutdown gave up on its worker).
        """
        if item.ended:
            return None
        item.ended = True
        self.processed += 1
        self.open -= 1
        if self.telemetry is not None:
            self.telemetry.item(self.stages[-1].name, "processed")
        if not self.open and not self.feeding:
            self.drained.set()
        result = success(item.id, item.value, item.seq, item.meta or EMPTY)
        if self.results is not None:
            self.results.append(result)
        return result

    async def deliver(self, item: Item, result: PipelineResult) -> None:
        """Hand a completed item's result to ``stream()`` and the tracker's ``on_success``."""
        outbox = self.outbox
        if outbox is not None and not outbox.put_nowait(result, 0):
            await outbox.put(result, 0)
        tracker = self.tracker
        if tracker is not None and tracker.on_success is not None:
            await self.item_callback("on_success", tracker.on_success, item, item.value)

    async def fail(
        self,
        item: Item,
        stage: StageRun,
        error: BaseException,
        attempts: int,
        slot: WorkerSlot | None = None,
    ) -> None:
        """``item`` failed in ``stage``: record it everywhere a failure is reported.

        The one place a failure is counted — in total, by type, by stage, and for ``slot``, the
        worker that held the item (None: none did; it was queued or waiting for a retry).
        """
        if item.ended:
            return
        item.ended = True
        self.open -= 1
        if slot is not None:
            slot.failed += 1
        if self.checkpoint is not None:
            self.checkpoint.forget(item, stage.name, error, attempts)
        try:
            name = stage.name
            self.failures.append(FailedItem(item.id, name, error, attempts, time()))
            self.failed += 1
            self.failed_by_type[type(error).__name__] += 1
            self.failed_by_stage[name] += 1
            if self.telemetry is not None:
                self.telemetry.item(name, "failed")
            if not self.stopping:  # recorded everywhere already: a story line, not an alarm
                logger.info(
                    "item %r failed in stage %r after %d attempt(s): %s: %s",
                    item.id, name, attempts, type(error).__name__, error,
                    extra={"stage": name, "item": item.id},
                )  # fmt: skip
            tracker = self.tracker
            if tracker is not None:
                meta = {
                    "error": str(error),
                    "error_type": type(error).__name__,
                    "attempts": attempts,
                }
                pending = tracker._status(item.id, name, _FAILED, None, meta, error)
                if pending is not None:
                    await self.settle(pending, "on_status_change")
            on_failure = stage.stage.on_failure
            if on_failure is not None:
                await self.stage_callback(stage, "on_failure", on_failure, item, error)
            if tracker is not None:
                tracker._item_finished(item.id)
                if tracker.on_failure is not None:
                    await self.item_callback("on_failure", tracker.on_failure, item, error)
            outbox = self.outbox
            if outbox is not None and not outbox.closed:
                result = PipelineResult(
                    item.id, item.value, item.seq, item.meta or EMPTY, error, name
                )
                if self.stopping or not outbox.put_nowait(result, 0):
                    if self.stopping:  # nobody may be reading any more: never wait
                        outbox.put_nowait(result, 0, force=True)
                    else:
                        await outbox.put(result, 0)
        finally:
            if not self.open and not self.feeding:
                self.drained.set()

    # -- callbacks -------------------------------------------------------------------------

    def metadata(self, item: Item, stage: str) -> dict[str, Any]:
        """What ``on_success``/``on_failure`` receive as their third argument."""
        meta = dict(item.meta) if item.meta else {}
        meta.update(id=item.id, value=item.value, sequence_id=item.seq, stage=stage)
        return meta

    async def stage_callback(
        self, stage: StageRun, hook: str, callback: Callable[..., object], item: Item, arg: object
    ) -> None:
        await self._callback(
            stage.name, hook, callback, (item.id, arg, self.metadata(item, stage.name))
        )

    async def item_callback(
        self, hook: str, callback: Callable[..., object], item: Item, arg: object
    ) -> None:
        await self._callback("", hook, callback, (item.id, arg, self.metadata(item, "")))

    async def _callback(
        self, owner: str, hook: str, callback: Callable[..., object], args: tuple[object, ...]
    ) -> None:
        key = (owner, hook)
        if key in self._muted:
            return
        what = "%s of stage %r" if owner else "%s of the status tracker%s"
        ok, value = call_safely(callback, args, what, hook, owner)
        if not ok or (
            value is not None
            and hasattr(value, "__await__")
            and not await self.observer_waits.wait(value, what, hook, owner)
        ):
            self._muted.add(key)

    async def settle(self, pending: Awaitable[object], hook: str) -> None:
        """Await a tracker callback's awaitable; if it raises or hangs, disable that callback."""
        if not await self.observer_waits.wait(pending, "status tracker callback %s", hook):
            assert self.tracker is not None
            self.tracker._mute(hook)

    # -- the end -------------------------------------------------------------------------------

    async def join(self) -> None:
        """Wait until every item fed has ended, then stop the workers.

        If the run is shut down meanwhile (by another task), waits for that to finish.
        Cancelling ``join`` stops the run as :meth:`abort` does, then re-raises.
        """
        try:
            while (self.open or self.feeding) and not self.stopping:
                await self.drained.wait()
            if not self.stopping:
                for stage in self.stages:
                    stage.inbox.close()
                # wait(), not gather(): a worker a concurrent shutdown cancels is no error here.
                await asyncio.wait(self.workers)
        except BaseException:
            await self.abort()
            raise
        if self.stopping:
            await self._over.wait()
        else:
            self._finish()

    async def abort(self) -> None:
        """Stop now: cancel workers and timers, then fail every item still inside.

        Idempotent; a second caller waits for the first to finish. After :meth:`join`
        finished the run there is nothing left to stop: it returns at once.
        """
        if self.stopping or self.finished:
            await self._over.wait()  # already set when join() finished the run
            return
        self.stopping = True
        self.observer_waits.stop()  # from now on, callbacks share a short grace: never a hang
        try:
            await self._stop()
        finally:
            self._finish()

    async def _stop(self) -> None:
        me = asyncio.current_task()
        timers = dict(self.timers)
        running = [t for t in (*self.workers, *timers) if t is not me and not t.done()]
        for task in running:
            task.cancel()
        for stage in self.stages:
            stage.inbox.close()  # wakes feeders waiting for room: they raise PipelineError
        self.drained.set()  # wakes join(): it waits for this shutdown instead
        if running:
            _, stuck = await asyncio.wait(running, timeout=_GRACE)
            if stuck:
                logger.warning(
                    "%d pipeline worker(s) ignored cancellation for %.1f s; abandoning them",
                    len(stuck), _GRACE,
                )  # fmt: skip
        for task in self.workers:
            if task.done() and not task.cancelled() and task.exception() is not None:
                logger.error("pipeline worker %s ended with %r", task.get_name(), task.exception())
        cancelled = 0
        for stage in self.stages:
            # (item, the worker that held it, attempts it had started in this stage)
            leftovers: list[tuple[Item, WorkerSlot | None, int]] = []
            for slot in stage.slots:
                if slot.item is not None:
                    leftovers.append((slot.item, slot, slot.attempts))
                    slot.item = None
            # Queued or waiting for a per-stage retry: item.attempt is the next attempt.
            waiting = stage.inbox.drain()
            waiting += [item for item, where in timers.values() if where is stage]
            held = [item for item, where in self.in_hand.items() if where is stage]
            for item in held:
                del self.in_hand[item]
            waiting += held  # item.attempt is 1: no attempt started
            leftovers += [(item, None, item.attempt - 1) for item in waiting]
            for item, holder, attempts in leftovers:
                if not item.ended:
                    cancelled += 1
                    error = ItemCancelledError(item.id, stage.name)
                    await self.fail(item, stage, error, attempts, holder)
        if cancelled:
            logger.info("pipeline stopped: %d unfinished item(s) recorded as cancelled", cancelled)

    def _finish(self) -> None:
        if self.finished:
            return
        self.finished = True
        try:
            if self.outbox is not None:
                self.outbox.close()
            if self.results is not None:
                self.results.sort(key=_seq)
            if self.sync_calls is not None:
                self.sync_calls.close()
            if self.checkpoint is not None:
                self.checkpoint.finish(self)
            if self.telemetry is not None:
                self.telemetry.finish(self.failed)
            warning = end_of_run_warning(self.name, self)
            if warning is not None:
                logger.warning("%s", warning)
        finally:
            # Whoever ended the run (join or abort), later callers of abort() and join() wait
            # on this: it must be set, or they would wait forever.
            self._over.set()


class _LimiterPermit:
    """A :class:`Limiter` of ``Stage(limits=...)`` as the permit a stage task's call takes."""

    __slots__ = ("limiter",)

    def __init__(self, limiter: Limiter) -> None:
        self.limiter = limiter

    async def acquire(self) -> None:
        await self.limiter.acquire_async()

    def release(self) -> None:
        self.limiter.release()


def _limiters(
    stages: Sequence[Stage], tracker: StatusTracker | None
) -> list[tuple[Stage, tuple[tuple[Permit, ...], ...]]]:
    """Per stage, per task: the permits a call must hold (pipeline-wide semaphores first, so
    two limited tasks always take them in the same order; then the stage's ``limits``)."""
    shared = {
        name: asyncio.Semaphore(limit)
        for name, limit in (tracker.task_concurrency_limits if tracker is not None else {}).items()
    }
    plans = []
    for stage in stages:
        own = {name: asyncio.Semaphore(n) for name, n in stage.task_concurrency_limits.items()}
        limits: tuple[Permit, ...] = tuple(map(_LimiterPermit, stage.limits))
        per_task = tuple(
            (*(s for s in (shared.get(name), own.get(name)) if s is not None), *limits)
            for name in stage.plan.names
        )
        plans.append((stage, per_task))
    return plans
