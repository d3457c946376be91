"""Stage workers: how a stage's workers take items, call the tasks, retry, and pass items on.

Design:

* A worker is a coroutine that loops: take the next item from its stage's channel (waiting on a
  future when it is empty: no polling, so an idle pipeline uses no CPU), run the stage's tasks in
  order, then put the item into the next stage's channel (waiting for room there *is* the
  backpressure) or, after the last stage, hand it to the run, which records the result.
* The common case — one async task, no limit, timeout, unpacking or task-event listener — is a
  single ``await fn(value)`` inline in the loop; a stage with nothing else (no ``skip_if``,
  ``on_success``, telemetry or checkpoint) runs a copy of the loop without the tests for those
  (``_stage_plain``). Everything else goes through :meth:`_call`, and retries through
  :meth:`_retry`: the fast path pays for none of it.
* Per-task retries happen inside the worker, which keeps the item (but no concurrency-limit
  permit) while it waits through the run's :class:`Clock`. Which errors are retried and how
  long to wait are the workflow engine's rules, written once (``RetryPolicy.should_retry`` /
  ``delay_before``); why this loop is not the engine's is said in ``_engine``'s docstring.
  Per-stage retries send the item back to its own stage's queue with a forced put: waiting
  for room in one's own queue can deadlock.
* An item that has not ended is in exactly one place the run can find: a channel, a worker's
  slot (running, waiting for a permit, a retry delay or room downstream), or a pending retry
  timer. A worker clears its slot in the same step (no ``await`` between) as it puts the item
  into a channel, so a shutdown, which looks in all three, records each item once and in the
  stage that holds it. (``item.ended`` covers the rest: a worker abandoned by a shutdown that
  finishes late finds its item already recorded.)
* Exceptions follow the rule of every place that runs user code (``_calls.INTERRUPTS``):
  ``KeyboardInterrupt`` and ``SystemExit`` propagate and stop the run; the worker's own
  cancellation (``current_task().cancelling()``) stops the worker; anything else a task raises
  — ``BaseException`` subclasses and the task's own ``CancelledError`` included — is the
  item's failure. A worker never dies of a task's error, and if something unexpected escapes
  (ours, or a hook's), it logs it, fails that item and carries on.
* Sync tasks run where the run's ``sync_calls`` puts them (``_offload``: flowweaver's threads,
  or the user's executor), which also starts their timeout only once they can run; async
  tasks are awaited here, within the timeout. A sync task that runs in this process gets a
  copy of its worker's context (``_stage_context``: ``set_task_status``, the call limits).
* A pull stage's channel is a hand-off (capacity 0, see ``_channel``): an upstream worker's put
  completes only when one of this stage's workers waits in ``get``, so at most ``workers``
  items are inside the stage; everything else about it is an ordinary stage.
* Where an attempt of a task starts and ends (``_run_tasks``, ``_retry``, the fast path) is
  where an observer of attempts (telemetry spans) hooks in; nothing there is formatted or
  allocated when nobody observes.
"""

from __future__ import annotations

import asyncio
import logging
from time import perf_counter, time
from typing import TYPE_CHECKING, Any

from ._calls import bounded
from ._channel import Channel, ChannelClosed
from ._errors import ItemCancelledError
from ._limiter import Limiter
from ._offload import Offload
from ._pipeline_types import ItemStatus, TaskEvent, TaskEventType
from ._retry import judged
from ._stage_context import WorkerContext, current, in_worker_context
from ._stage_items import YIELD_EVERY, Failed, Item, Permit, WorkerSlot, stops
from ._stage_permits import take_with_thread
from ._stage_plain import plain_loop
from ._tracker import CODE

if TYPE_CHECKING:
    from ._pipeline_run import PipelineRun
    from ._stage import Stage

__all__ = ["StageRun"]

logger = logging.getLogger("flowweaver.pipeline")

_IN_PROGRESS = CODE[ItemStatus.IN_PROGRESS]
_COMPLETED = CODE[ItemStatus.COMPLETED]
_QUEUED = CODE[ItemStatus.QUEUED]
_RETRYING = CODE[ItemStatus.RETRYING]
_SKIPPED = CODE[ItemStatus.SKIPPED]

_START, _COMPLETE, _RETRY, _FAIL = (
    TaskEventType.START, TaskEventType.COMPLETE, TaskEventType.RETRY, TaskEventType.FAIL
)  # fmt: skip
_HOOK = {
    _START: "on_task_start",
    _COMPLETE: "on_task_complete",
    _RETRY: "on_task_retry",
    _FAIL: "on_task_fail",
}


def _unpacked(value: Any) -> tuple[tuple[Any, ...], dict[str, Any] | None]:
    if isinstance(value, dict):
        return (), value
    if isinstance(value, list | tuple):
        return tuple(value), None
    return (value,), None


class StageRun:
    """One stage in one run: its channel, its workers' slots, and the code the workers run."""

    def __init__(
        self,
        run: PipelineRun,
        stage: Stage,
        limiters: tuple[tuple[Permit, ...], ...],
    ) -> None:
        plan = stage.plan
        self.run = run
        self.stage = stage
        self.name = stage.name
        self.inbox: Channel[Item] = Channel(plan.capacity)
        self.pull = plan.pull
        self.next: StageRun | None = None
        self.slots = [WorkerSlot(f"{stage.name}-W{i}") for i in range(stage.workers)]
        self.names = plan.names
        judge = plan.task_policy.retry_if_result or (
            plan.stage_policy.retry_if_result if plan.stage_policy is not None else None
        )
        self.fns = (
            tuple(stage.tasks)
            if judge is None  # else a returned value may be a failure (see _retry.judged)
            else tuple(
                judged(fn, judge, name) for fn, name in zip(stage.tasks, plan.names, strict=True)
            )
        )
        self.is_async = plan.is_async
        self.limiters = limiters
        self.timeout = stage.task_timeout
        self.unpack = stage.unpack_args
        self.policy = plan.task_policy
        self.stage_policy = plan.stage_policy
        #: The stage's adaptive ``limits``: they learn each call's outcome.
        self.feedback = tuple(limiter for limiter in stage.limits if limiter.adaptive)
        #: A sync task takes the stage's ``limits`` only once a thread is free for it
        #: (``_stage_permits``); its other permits (``limiters``' first ones) before that.
        self.gated = len(stage.limits)
        # The stage's call limits, made per run (in-task helpers, ``_stage_context``).
        self.call_concurrency = (
            None
            if stage.call_concurrency is None
            else Limiter(concurrency=stage.call_concurrency, name=f"{stage.name}.call_concurrency")
        )
        self.call_rate = (
            None
            if stage.call_rate is None
            else Limiter(
                rate=stage.call_rate,
                per=stage.call_rate_period,
                name=f"{stage.name}.call_rate",
                clock=run.clock,
            )
        )
        # A task is "plain" when calling it is just `await fn(value)`.
        self.plain = tuple(
            is_async and not limits and not self.unpack and self.timeout is None
            for is_async, limits in zip(plan.is_async, limiters, strict=True)
        )

    async def work(self, slot: WorkerSlot) -> None:
        """Run one worker until the channel is closed and empty, or the worker is cancelled."""
        current.set(WorkerContext(self, slot, self.run.clock))  # this worker task's own context
        run, stage = self.run, self.stage
        plain = (
            len(self.fns) == 1
            and self.plain[0]
            and not run.task_hooks
            and run.telemetry is None
            and stage.skip_if is None
            and stage.on_success is None
            and (self.next is not None or run.checkpoint is None)
        )
        while True:
            try:
                await (plain_loop(self, slot) if plain else self._loop(slot))
                return
            except BaseException as error:  # not a task's error (those are caught): ours, a hook's
                if stops(error):
                    raise
                logger.exception("pipeline worker %s failed unexpectedly; it carries on", slot.name)
                item, slot.item = slot.item, None
                if item is not None:
                    await self.run.fail(item, self, error, slot.attempts, slot)

    async def _loop(self, slot: WorkerSlot) -> None:
        run, inbox, nxt = self.run, self.inbox, self.next
        get_nowait = inbox.get_nowait
        tracker = run.tracker
        name, worker = self.name, slot.name
        fn = self.fns[0]
        telemetry = run.telemetry
        fast = len(self.fns) == 1 and self.plain[0] and not run.task_hooks and telemetry is None
        skip_if, on_success = self.stage.skip_if, self.stage.on_success
        checkpoint = run.checkpoint if nxt is None else None
        streak = 0
        while True:
            item = get_nowait()
            if item is None:
                streak = 0
                item = await inbox.get()
                if item is None:
                    return
            slot.item = item
            slot.attempts = 0
            slot.status = slot.status_at = None
            slot.since = start = perf_counter()
            ran = False  # whether it ran the tasks (not skipped): the stage then reports completed
            try:
                if skip_if is None or not await self._skips(item, slot):
                    ran = True
                    if tracker is not None:
                        pending = tracker._status(item.id, name, _IN_PROGRESS, worker, None)
                        if pending is not None:
                            await run.settle(pending, "on_status_change")
                    if fast:
                        value = item.value
                        slot.attempts = item.attempt
                        try:
                            item.value = await fn(value)
                        except BaseException as error:
                            if stops(error):
                                raise
                            item.value = await self._retry(0, value, item, slot, error, None)
                    elif telemetry is None:
                        item.value = await self._run_tasks(item, slot)
                    else:
                        slot.span = telemetry.stage_span(name, worker, item.id, item.attempt)
                        item.value = await self._run_tasks(item, slot)
                if checkpoint is not None and not item.ended:
                    # Before the item counts, is collected or is reported anywhere as done: a
                    # commit that fails makes it a failure of this stage, and nothing else.
                    trouble = checkpoint.commit(item)
                    if trouble is not None:
                        raise Failed(trouble, item.attempt, -1, None)
            except Failed as failed:
                if slot.span is not None:
                    assert telemetry is not None
                    telemetry.end_span(slot.span, name, None, failed.error)
                    slot.span = None
                slot.last = perf_counter()  # busy counts successes only (WorkerMetrics)
                await self._failed(item, slot, failed)
                slot.item = None
                continue
            if item.ended:  # a shutdown gave up on this worker and recorded the item
                slot.item = None
                return
            if slot.span is not None:
                assert telemetry is not None
                telemetry.end_span(slot.span, name, None, None)
                slot.span = None
            end = perf_counter()
            slot.processed += 1
            slot.busy += end - start
            slot.last = end
            # The last stage ends the item (a result, committed) before anyone hears of it.
            result = run.complete(item) if nxt is None else None
            if tracker is not None and (ran or result is not None):
                if result is None:
                    pending = tracker._status(item.id, name, _COMPLETED, worker, None)
                elif ran:
                    pending = tracker._done(item.id, name, worker)
                else:  # skipped by the last stage: a result all the same
                    pending = None
                    tracker._item_finished(item.id)
                if pending is not None:
                    await run.settle(pending, "on_status_change")
            if on_success is not None:
                await run.stage_callback(self, "on_success", on_success, item, item.value)
            if nxt is not None:
                item.attempt = 1
                handed = False  # straight into a pull stage's worker: it never queued there
                try:  # waiting for room downstream is the backpressure
                    if not nxt.inbox.put_nowait(item, item.priority):
                        # A pull stage's worker takes it from our hands: in that step it is
                        # no longer ours (see _channel), so no snapshot sees it twice.
                        await nxt.inbox.put(item, item.priority, slot.handed_off)
                        handed = nxt.pull
                except ChannelClosed:  # only a shutdown closes a channel an item is headed for
                    slot.item = None
                    await run.fail(item, nxt, ItemCancelledError(item.id, nxt.name), 0)
                    return
                # In the step that put it there: the item is the next stage's now, and only
                # there (a shutdown during the callback below records it in that stage).
                slot.item = None
                if tracker is not None and not handed:
                    pending = tracker._status(item.id, nxt.name, _QUEUED, None, None)
                    if pending is not None:
                        await run.settle(pending, "on_status_change")
            elif result is not None and (
                run.outbox is not None or (tracker is not None and tracker.on_success is not None)
            ):
                await run.deliver(item, result)
            slot.item = None
            streak += 1
            if streak >= YIELD_EVERY:
                streak = 0
                await asyncio.sleep(0)

    async def _skips(self, item: Item, slot: WorkerSlot) -> bool:
        """Apply ``skip_if``; True when the item passes this stage unchanged."""
        predicate = self.stage.skip_if
        assert predicate is not None
        try:
            verdict = predicate(item.value)
            if hasattr(verdict, "__await__"):
                verdict = await verdict
        except BaseException as error:
            if stops(error):
                raise
            raise Failed(error, 0, -1, None) from None
        if not verdict:
            return False
        tracker = self.run.tracker
        if tracker is not None:
            pending = tracker._status(item.id, self.name, _SKIPPED, slot.name, None)
            if pending is not None:
                await self.run.settle(pending, "on_status_change")
        on_skip = self.stage.on_skip
        if on_skip is not None:
            await self.run.stage_callback(self, "on_skip", on_skip, item, item.value)
        return True

    async def _run_tasks(self, item: Item, slot: WorkerSlot) -> Any:
        """Every task of the stage in order (the general path); returns the last result."""
        fns, plain, observed = self.fns, self.plain, self.run.task_hooks
        traced = self.run.telemetry is not None
        value = item.value
        attempt = item.attempt
        for k in range(len(fns)):
            slot.task = k
            slot.attempts = attempt
            if observed:
                await self._event(item, slot, k, _START, attempt)
            start = perf_counter()
            try:
                if traced:
                    result = await self._traced(k, value, attempt, slot)
                else:
                    result = await (fns[k](value) if plain[k] else self._call(k, value))
            except BaseException as error:
                if stops(error):
                    raise
                value = await self._retry(k, value, item, slot, error, perf_counter() - start)
            else:
                if observed:
                    duration = perf_counter() - start
                    await self._event(item, slot, k, _COMPLETE, attempt, None, duration)
                value = result
        slot.task = 0
        return value

    async def _retry(
        self,
        k: int,
        arg: Any,
        item: Item,
        slot: WorkerSlot,
        error: BaseException,
        duration: float | None,
    ) -> Any:
        """Task ``k`` failed on ``arg``: retry it while the policy allows (per-task mode).

        Raises:
            Failed: No attempt is left (always, in per-stage mode: the worker decides there).
        """
        if self.stage_policy is not None:
            raise Failed(error, item.attempt, k, duration)
        policy, clock, observed = self.policy, self.run.clock, self.run.task_hooks
        telemetry = self.run.telemetry
        attempt = 1
        while True:
            delay, error = policy.decide(error, attempt)
            if delay is None:
                raise Failed(error, attempt, k, duration)
            if telemetry is not None:
                telemetry.item(self.name, "retried")
            if observed:
                await self._event(item, slot, k, _RETRY, attempt, error, duration)
            if delay > 0:
                slot.waiting = True
                try:
                    await clock.sleep_async(delay)
                finally:
                    slot.waiting = False
            attempt += 1
            slot.attempts = attempt
            if observed:
                await self._event(item, slot, k, _START, attempt)
            start = perf_counter()
            try:
                if telemetry is not None:
                    value = await self._traced(k, arg, attempt, slot)
                else:
                    value = await self._call(k, arg)
            except BaseException as next_error:
                if stops(next_error):
                    raise
                error, duration = next_error, perf_counter() - start
            else:
                if observed:
                    duration = perf_counter() - start
                    await self._event(item, slot, k, _COMPLETE, attempt, None, duration)
                return value

    async def _traced(self, k: int, value: Any, attempt: int, slot: WorkerSlot) -> Any:
        """Task ``k``'s attempt in its own span, current inside the task's code."""
        telemetry = self.run.telemetry
        assert telemetry is not None
        span, ctx = telemetry.task_span(slot.span, self.names[k], attempt)
        token = telemetry.attach(ctx)
        start = perf_counter()
        try:
            result = await (self.fns[k](value) if self.plain[k] else self._call(k, value, ctx))
        except BaseException as error:
            telemetry.end_span(span, self.name, perf_counter() - start, error)
            raise
        finally:
            telemetry.detach(token)
        telemetry.end_span(span, self.name, perf_counter() - start, None)
        return result

    async def _call(self, k: int, value: Any, context: object = None) -> Any:
        """Call task ``k``: unpack, take its permits, run it where it runs, within its timeout
        (a sync task on this process's threads with OpenTelemetry ``context`` current)."""
        args, kwargs = _unpacked(value) if self.unpack else ((value,), None)
        limiters = self.limiters[k]
        acquired = 0
        failure: BaseException | None = None
        is_async = self.is_async[k]
        try:
            for limiter in limiters if is_async or not self.gated else limiters[: -self.gated]:
                await limiter.acquire()
                acquired += 1
            fn = self.fns[k]
            if not is_async:  # its timeout starts once it can run (see _offload)
                calls = self.run.sync_calls
                assert calls is not None  # the run has them whenever a stage has a sync task
                telemetry = self.run.telemetry
                if context is not None and telemetry is not None and isinstance(calls, Offload):
                    fn = telemetry.wrap(fn, context)  # our own threads: the span goes along
                if self.run.carry_context:  # set_task_status() and the limits work there too
                    fn = in_worker_context(fn)
                reserved = bool(self.gated)
                if reserved:  # a thread first, then the limits: no permit waits for a thread
                    await take_with_thread(calls, self.stage.limits)
                    acquired = len(limiters)
                return await calls.call(fn, args, kwargs, self.names[k], self.timeout, reserved)
            # The coroutine is made only now: one made before a cancelled wait would never run.
            coroutine = fn(*args, **kwargs) if kwargs else fn(*args)
            if self.timeout is None:
                return await coroutine
            return await bounded(coroutine, self.names[k], self.timeout)
        except BaseException as error:
            failure = error
            raise
        finally:
            if self.feedback and acquired == len(limiters):  # adaptive limits learn the outcome
                for adaptive in self.feedback:
                    adaptive.record(failure)
            for limiter in limiters[:acquired]:
                limiter.release()

    async def _failed(self, item: Item, slot: WorkerSlot, failed: Failed) -> None:
        """Report a failure in this stage: retry the whole stage, or end the item."""
        run, policy, observed = self.run, self.stage_policy, self.run.task_hooks
        error = failed.error
        delay = None
        if policy is not None and failed.task >= 0:
            delay, error = policy.decide(error, item.attempt)
        if delay is not None:
            if run.telemetry is not None:
                run.telemetry.item(self.name, "retried")
            if observed:
                await self._event(
                    item, slot, failed.task, _RETRY, item.attempt, error, failed.duration
                )
            item.attempt += 1
            tracker = run.tracker
            if tracker is not None:
                meta = {
                    "attempt": item.attempt,
                    "retry": True,
                    "error": str(error),
                    "error_type": type(error).__name__,
                }
                pending = tracker._status(item.id, self.name, _RETRYING, slot.name, meta)
                if pending is not None:
                    await run.settle(pending, "on_status_change")
            run.requeue(self, item, delay)
            return
        if observed and failed.task >= 0:
            await self._event(
                item, slot, failed.task, _FAIL, failed.attempts, error, failed.duration
            )
        await run.fail(item, self, error, failed.attempts, slot)

    async def _event(
        self,
        item: Item,
        slot: WorkerSlot,
        k: int,
        kind: TaskEventType,
        attempt: int,
        error: BaseException | None = None,
        duration: float | None = None,
    ) -> None:
        """Tell the tracker's task hook (only called when at least one task hook is set)."""
        tracker = self.run.tracker
        hook = _HOOK[kind]
        if tracker is None or getattr(tracker, hook) is None:
            return
        event = TaskEvent(
            item.id, self.name, self.names[k], slot.name, kind, attempt, time(), error, duration
        )
        pending = tracker._task(hook, event)
        if pending is not None:
            await self.run.settle(pending, hook)
