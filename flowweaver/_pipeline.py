"""The item-stream Pipeline (AntFlow's API) on flowweaver's executors and event model.

Design (the parts live in their own modules; this one wires them together):

* ``_stage``: the :class:`Stage` definition, validated and compiled once.
* ``_channel``: each stage's input queue — bounded by default, closable, priority-ordered.
* ``_stage_run``: the workers (async-native: async tasks run on the loop; sync ones through
  ``_offload``, on flowweaver's own daemon threads by default, or through the ``submit`` of the
  ``executor=`` given), per-task and per-stage retries.
* ``_pipeline_run``: one run — items in (``feed``), items out (``complete`` / ``fail``: the only
  two places an item ends), ``join`` and ``abort``.
* ``_tracker``, ``_dashboard``, ``_pipeline_stats``: observing a run.
* ``_pipeline_state``: checkpointing (``store=`` / ``run_id=``): restore items that completed
  in an earlier run as they are fed, commit each result as it leaves the last stage.

Lifecycle: a :class:`Pipeline` is a reusable definition; each ``run()`` / ``stream()`` /
``start()`` makes a fresh run, so repeated runs never mix results, statistics or metrics. At most
one run is active at a time. Every item fed ends exactly once, as a result or as a recorded
failure, including when the run is shut down, cancelled, or a ``stream()`` is left early.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterable, Callable, Iterable, Sequence, Sized
from typing import TYPE_CHECKING, Any, Literal, Self

from ._calls import signals_wake
from ._channel import Channel
from ._checks import check_callables, check_flag, check_items
from ._clock import Clock, SystemClock
from ._dashboard import DashboardPoller, make_display
from ._errors import ConfigurationError, PipelineError, StageValidationError
from ._events import OBSERVER_TIMEOUT, check_observer_timeout
from ._offload import Submitter, sync_calls
from ._pipeline_builder import PipelineBuilder
from ._pipeline_run import PipelineRun
from ._pipeline_state import make_checkpoint
from ._pipeline_stats import (
    dashboard_snapshot,
    error_summary,
    pipeline_stats,
    worker_metrics,
    worker_states,
)
from ._public import publish
from ._stage import Stage, task_name
from ._telemetry import pipeline_telemetry
from ._tracker import StatusTracker

if TYPE_CHECKING:
    from types import TracebackType

    from ._dashboard import DashboardProtocol
    from ._offload import SyncCalls
    from ._pipeline_state import Checkpoint
    from ._pipeline_types import (
        DashboardSnapshot,
        ErrorSummary,
        PipelineResult,
        PipelineStats,
        WorkerMetrics,
        WorkerState,
    )
    from ._status import ChangePolicy
    from ._store import StateStore

__all__ = ["Pipeline"]


#: ``feed()``'s default priority (lower numbers are taken first).
DEFAULT_PRIORITY = 100
#: Results ``stream()`` holds for its consumer when the last stage's queue is unbounded.
_STREAM_BUFFER = 100

DashboardName = Literal["compact", "detailed", "full"]


def _total(items: object) -> int | None:
    return len(items) if isinstance(items, Sized) else None


def _in_process(executor: object) -> bool:
    """Whether sync tasks sent to ``executor`` run on a thread of this process (where a copy
    of their worker's context can go with them: a context does not pickle)."""
    if executor is None:
        return True
    from concurrent.futures import ThreadPoolExecutor

    from ._async import AsyncExecutor
    from ._executors import SequentialExecutor, ThreadedExecutor

    return isinstance(
        executor, ThreadPoolExecutor | ThreadedExecutor | SequentialExecutor | AsyncExecutor
    )


class Pipeline:
    """A chain of stages, each a pool of workers; items flow through them as a stream.

    Examples:
        >>> async def fetch(x): return f"data_{x}"
        >>> async def save(x): return f"saved_{x}"
        >>> pipeline = Pipeline(stages=[
        ...     Stage(name="Fetch", workers=10, tasks=[fetch]),
        ...     Stage(name="Save", workers=3, tasks=[save]),
        ... ])
        >>> results = await pipeline.run(range(100))  # doctest: +SKIP
        >>> results[0].value  # doctest: +SKIP
        'saved_data_0'

    Items are plain values (their id is their input index) or dicts with an ``"id"`` (and a
    ``"value"``, else the whole dict is the value; other keys become the result's metadata).

    Checkpointing: ``run(items, store=SQLiteStore(path), run_id="nightly")`` commits each result
    as it leaves the last stage; rerun with the same ``name``, store and run id, items whose id
    completed are not processed again (``restored=True``). Ids must be unique and stable.

    Args:
        stages: The stages, in order; names must be unique.
        collect_results: Keep results for :attr:`results` and ``run()``'s return value. A
            run that keeps no results (this False, or ``stream()``) keeps only the latest
            1,000 failure records too: see :meth:`get_error_summary`.
        status_tracker: A :class:`StatusTracker` that sees every status change.
        executor: Where sync task functions run: any flowweaver executor (or object) with
            ``submit``; at most its ``max_workers`` calls are in flight at once, so a call's
            timeout starts when the executor can run it. Default: flowweaver's daemon threads,
            one per worker of the stages with sync tasks, made per run and closed after it.
            ``SequentialExecutor()`` runs them inline on the event loop (the deterministic
            debugging mode). What a ``task_timeout`` stops on each: see :class:`Stage`.
        clock: Where retry waits and dashboard intervals come from (tests pass a fake one).
        name: Identifies the pipeline in a state store (with the run id). Default: its stage
            names joined by ``" > "``; name pipelines that share a store and stage names.
        observer_timeout: Seconds an async callback (tracker, stage ``on_success`` /
            ``on_failure``, dashboard) may run before it is cancelled, logged and disabled for
            the rest of the run (default 10; None: no bound). Once the run is stopping, they
            get at most 0.5 s more in all. See the guide's "Observer rules".

    Raises:
        PipelineError: ``stages`` is empty.
        StageValidationError: A stage is invalid (its :meth:`Stage.validate`), the first stage
            is a pull stage, or two share a name; also a :class:`PipelineError`.
        ConfigurationError: Another argument has the wrong type.
    """

    def __init__(
        self,
        stages: Sequence[Stage],
        collect_results: bool = True,
        status_tracker: StatusTracker | None = None,
        *,
        executor: Submitter | None = None,
        clock: Clock | None = None,
        name: str | None = None,
        observer_timeout: float | None = OBSERVER_TIMEOUT,
    ) -> None:
        if isinstance(stages, Stage) or not isinstance(stages, Iterable):
            raise ConfigurationError(f"stages must be a list of Stage objects, got {stages!r}")
        stages = tuple(stages)
        if not stages:
            raise PipelineError("a pipeline needs at least one stage, got none")
        seen: set[str] = set()
        for index, stage in enumerate(stages):
            if not isinstance(stage, Stage):
                raise StageValidationError(
                    f"stages[{index}] must be a Stage, got {stage!r}", None, "stages"
                )
            stage.validate()
            if index == 0 and stage.pull:
                raise StageValidationError(
                    f"stage {stage.name!r}: the first stage cannot be a pull stage (nothing "
                    "upstream hands items to it)",
                    stage.name,
                    "pull",
                )
            if stage.name in seen:
                raise StageValidationError(
                    f"duplicate stage name {stage.name!r}: stage names must be unique "
                    "in a pipeline",
                    stage.name,
                    "name",
                )
            seen.add(stage.name)
        if status_tracker is not None and not isinstance(status_tracker, StatusTracker):
            raise ConfigurationError(
                f"status_tracker must be a StatusTracker or None, got {status_tracker!r}"
            )
        if executor is not None and not callable(getattr(executor, "submit", None)):
            raise ConfigurationError(f"executor must have a submit() method, got {executor!r}")
        if clock is not None and not isinstance(clock, Clock):
            raise ConfigurationError(f"clock must implement Clock, got {clock!r}")
        if name is not None and (not isinstance(name, str) or not name):
            raise ConfigurationError(f"name must be a non-empty str or None, got {name!r}")
        self.name: str = name if name is not None else " > ".join(s.name for s in stages)
        self.stages: tuple[Stage, ...] = stages
        self.collect_results = check_flag("Pipeline", "collect_results", collect_results)
        self.status_tracker = status_tracker
        self.executor = executor
        self.observer_timeout = check_observer_timeout(observer_timeout, "Pipeline")
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._index = {stage.name: i for i, stage in enumerate(stages)}
        self._run: PipelineRun | None = None
        self._started = False  # start() was called for the current run

    def __repr__(self) -> str:
        names = [stage.name for stage in self.stages]
        return f"Pipeline(stages={names!r}, running={self._active() is not None})"

    # -- running -----------------------------------------------------------------------------

    async def run(
        self,
        items: Iterable[Any] | AsyncIterable[Any],
        progress: bool = False,
        dashboard: DashboardName | None = None,
        custom_dashboard: DashboardProtocol | None = None,
        dashboard_update_interval: float = 0.5,
        *,
        store: StateStore | None = None,
        run_id: str | None = None,
        on_changed: ChangePolicy | str = "rerun",
    ) -> list[PipelineResult]:
        """Feed ``items``, wait for every one to end, and return the results in input order.

        Failed items are not in the list: see :meth:`get_error_summary` (or use
        :meth:`stream`, which yields them with ``.error``). Cancelling ``run()`` (a timeout,
        Ctrl-C) cancels the tasks in flight, records every unfinished item as failed with
        :class:`ItemCancelledError`, and re-raises.

        Args:
            items: Values or ``{"id", "value"}`` dicts (an async iterable works too).
            progress: Show a minimal progress line on stderr.
            dashboard: A built-in display: ``"compact"``, ``"detailed"`` or ``"full"``.
            custom_dashboard: Your own :class:`DashboardProtocol`.
            dashboard_update_interval: Seconds between dashboard updates (polling).
            store: Checkpoint in this :class:`StateStore` (see the class docstring).
            run_id: The run to commit to and resume (required with a store, else unused).
            on_changed: An item committed by other stage code or from another input value:
                ``"rerun"`` it (default) or fail it (``"error"``, :class:`ItemMismatchError`).

        Raises:
            PipelineError: The pipeline is already running.
            ConfigurationError: More than one display was asked for, a bad display option, or
                a bad store option (a store without a run id).
            StateError: The store cannot be read.
        """
        check_items("Pipeline.run", items)
        display = make_display(progress, dashboard, custom_dashboard, dashboard_update_interval)
        checkpoint = make_checkpoint(self.name, self.stages, store, run_id, on_changed)
        run = self._begin(collect=self.collect_results, checkpoint=checkpoint)
        self._started = True
        poller = None
        # On the main thread, Ctrl-C wakes the loop even when everything waits (a hung callback).
        with signals_wake(asyncio.get_running_loop()):
            try:
                if display is not None:
                    poller = DashboardPoller(
                        display,
                        self.get_dashboard_snapshot,
                        dashboard_update_interval,
                        self._clock,
                        run.observer_waits,
                    )
                    await poller.start(self, _total(items))
                await run.feed(items, run.stages[0], DEFAULT_PRIORITY, stops_on_cancel=True)
                await run.join()
            except BaseException:
                await run.abort()
                raise
            finally:
                if poller is not None:
                    await poller.stop(self._results(run), self.get_error_summary())
        return self._results(run)

    async def stream(
        self,
        items: Iterable[Any] | AsyncIterable[Any],
        progress: bool = False,
        buffer_size: int | None = None,
        *,
        store: StateStore | None = None,
        run_id: str | None = None,
        on_changed: ChangePolicy | str = "rerun",
    ) -> AsyncGenerator[PipelineResult, None]:
        """Yield each item's result (failures too, with ``.error``) as soon as it ends.

        Results come in completion order while items are still being fed; no result is kept,
        so memory stays flat however many items pass (of the failures, exact counts and the
        latest 1,000 records are kept for :meth:`get_error_summary`). Leaving the loop early
        (``break``) stops the pipeline: unfinished items are recorded as cancelled. The cleanup
        runs when the generator is closed — at once when nothing else references it; wrap it in
        ``contextlib.aclosing()`` to make that explicit.

        ``store``, ``run_id`` and ``on_changed`` checkpoint as in :meth:`run`: restored results
        are yielded as their items are fed; each new result is committed before it is yielded.

        Args:
            items: Values or ``{"id", "value"}`` dicts (an async iterable works too).
            progress: Show a minimal progress line on stderr.
            buffer_size: Most results waiting for the consumer; when it is full, the last
                stage's workers wait (a slow consumer pushes back on the whole pipeline).
                ``0``: a hand-off, a result moves only when the consumer asks for the next.
                None (default): as many as the last stage's queue holds (10 per worker), or
                100 when that one is unbounded — never unbounded (AntFlow's default is).
            store: Checkpoint in this :class:`StateStore` (see :meth:`run`).
            run_id: The run to commit to and resume.
            on_changed: See :meth:`run`.

        Raises:
            PipelineError: The pipeline is already running.
            ConfigurationError: ``buffer_size`` is not an int >= 0 or None.
        """
        check_items("Pipeline.stream", items)
        if buffer_size is not None and (
            isinstance(buffer_size, bool) or not isinstance(buffer_size, int) or buffer_size < 0
        ):
            raise ConfigurationError(
                f"stream(): buffer_size must be an int >= 0 or None, got {buffer_size!r}"
            )
        display = make_display(progress, None, None, 0.5)
        checkpoint = make_checkpoint(self.name, self.stages, store, run_id, on_changed)
        # Results wait for the consumer in a bounded queue: a slow consumer holds the pipeline
        # back, memory stays flat.
        if buffer_size is None:
            buffer_size = self.stages[-1].plan.capacity or _STREAM_BUFFER
        outbox: Channel[PipelineResult] = Channel(buffer_size)
        run = self._begin(collect=False, outbox=outbox, checkpoint=checkpoint)
        self._started = True
        poller = None
        feeder = asyncio.get_running_loop().create_task(self._feed_and_join(run, items))
        try:
            if display is not None:
                poller = DashboardPoller(
                    display, self.get_dashboard_snapshot, 0.5, self._clock, run.observer_waits
                )
                await poller.start(self, _total(items))
            get_nowait = outbox.get_nowait
            while True:
                result = get_nowait()
                if result is None:
                    result = await outbox.get()
                    if result is None:
                        break
                yield result
            await feeder  # re-raises what stopped the feeding, if anything did
        finally:
            if not run.finished:
                await run.abort()
            feeder.cancel()
            await asyncio.gather(feeder, return_exceptions=True)
            if poller is not None:
                await poller.stop([], self.get_error_summary())

    async def _feed_and_join(
        self, run: PipelineRun, items: Iterable[Any] | AsyncIterable[Any]
    ) -> None:
        try:
            await run.feed(items, run.stages[0], DEFAULT_PRIORITY, stops_on_cancel=True)
            await run.join()
        except BaseException:
            await run.abort()
            raise

    async def start(self) -> None:
        """Start the workers in the background; then :meth:`feed` items and :meth:`join`.

        Raises:
            PipelineError: The pipeline was already started and has not been joined or shut
                down. (A ``feed()`` before ``start()`` starts the workers itself; ``start()``
                then just confirms it.)
        """
        if self._active() is not None:
            if self._started:
                raise PipelineError(
                    "the pipeline is already running; join() or shutdown() it first"
                )
        else:
            self._begin(collect=self.collect_results)
        self._started = True

    async def feed(
        self,
        items: Iterable[Any],
        target_stage: str | None = None,
        priority: int = DEFAULT_PRIORITY,
    ) -> None:
        """Put items into a stage's queue (the first by default), waiting for room.

        Starts the pipeline if it is not running, so feeding before :meth:`start` cannot
        deadlock on a full queue.

        Args:
            items: Values or ``{"id", "value"}`` dicts.
            target_stage: The stage to enter (e.g. to resume items that already passed the
                earlier stages).
            priority: Lower numbers are taken first within a stage (FIFO among equals).

        Raises:
            ConfigurationError: ``target_stage`` is not a stage of this pipeline (a
                ``ValueError``), or ``priority`` is not an int.
            PipelineError: The pipeline was shut down while feeding.
        """
        check_items("Pipeline.feed", items)
        index = self._stage_index(target_stage, priority)
        run = self._active() or self._begin(collect=self.collect_results)
        await run.feed(items, run.stages[index], priority)

    async def feed_async(
        self,
        items: AsyncIterable[Any],
        target_stage: str | None = None,
        priority: int = DEFAULT_PRIORITY,
    ) -> None:
        """:meth:`feed` from an async iterable."""
        if not isinstance(items, AsyncIterable):
            raise ConfigurationError(f"feed_async() needs an async iterable, got {items!r}")
        index = self._stage_index(target_stage, priority)
        run = self._active() or self._begin(collect=self.collect_results)
        await run.feed(items, run.stages[index], priority)

    async def join(self) -> None:
        """Wait until every item fed so far has ended, then stop the workers (no-op if not
        running). Cancelling ``join()`` shuts the pipeline down."""
        run = self._active()
        if run is not None:
            await run.join()

    async def shutdown(self) -> None:
        """Stop now: cancel the tasks in flight; every unfinished item is recorded as failed
        (:class:`ItemCancelledError`). Never waits on a full queue. Idempotent."""
        run = self._active()
        if run is not None:
            await run.abort()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # As a TaskGroup: a clean exit waits for what was fed; an error stops everything.
        if exc_type is None:
            await self.join()
        else:
            await self.shutdown()

    # -- results and observation ---------------------------------------------------------------

    @property
    def results(self) -> list[PipelineResult]:
        """Results of the current (or latest) run, in input order (empty with
        ``collect_results=False`` and after a ``stream()``)."""
        run = self._run
        return [] if run is None else self._results(run)

    def get_stats(self) -> PipelineStats:
        """Counts of the current (or latest) run."""
        return pipeline_stats(self.stages, self._run)

    def get_worker_names(self) -> dict[str, list[str]]:
        """``{stage name: ["<stage>-W0", …]}``, known before any run."""
        return {s.name: [f"{s.name}-W{i}" for i in range(s.workers)] for s in self.stages}

    def get_worker_states(self) -> dict[str, WorkerState]:
        """What each worker is doing now."""
        return worker_states(self.stages, self._run)

    def get_worker_metrics(self) -> dict[str, WorkerMetrics]:
        """What each worker has done in the current (or latest) run."""
        return worker_metrics(self.stages, self._run)

    def get_dashboard_snapshot(self) -> DashboardSnapshot:
        """Worker states, worker metrics and pipeline statistics, taken together."""
        return dashboard_snapshot(self.stages, self._run)

    def get_error_summary(self) -> ErrorSummary:
        """The failures of the current (or latest) run (with or without a tracker).

        The counts are exact. ``failed_items`` lists every failure of a run that keeps its
        results (``run()``, ``start()`` with ``collect_results=True``); a run that keeps none
        (``stream()``, which yields each failure, or ``collect_results=False``) keeps only the
        latest 1,000, so its memory stays flat however many items fail.
        """
        return error_summary(self._run)

    # -- one-liners ------------------------------------------------------------------------------

    @classmethod
    async def quick(
        cls,
        items: Iterable[Any],
        tasks: Callable[..., Any] | Sequence[Callable[..., Any]],
        workers: int = 5,
        retries: int = 3,
        progress: bool = False,
        dashboard: DashboardName | None = None,
        *,
        store: StateStore | None = None,
        run_id: str | None = None,
        on_changed: ChangePolicy | str = "rerun",
    ) -> list[PipelineResult]:
        """Run ``items`` through one stage per task (named after it) and return the results.

        ``retries`` is the number of retries after a failed first attempt (each stage gets
        ``task_attempts=retries + 1``, one second apart). ``store``, ``run_id`` and
        ``on_changed`` checkpoint as in :meth:`run`.
        """
        builder = PipelineBuilder(cls)
        taken: set[str] = set()
        check_items("Pipeline.quick", items)
        for fn in check_callables("Pipeline.quick", "tasks", tasks):
            name = base = task_name(fn)
            n = 1
            while name in taken:  # the same function twice, or several lambdas
                n += 1
                name = f"{base}-{n}"
            taken.add(name)
            builder.add(name, fn, workers=workers, retries=retries)
        state = {"store": store, "run_id": run_id, "on_changed": on_changed}
        return await builder.run(items, progress=progress, dashboard=dashboard, **state)

    @classmethod
    def create(cls) -> PipelineBuilder:
        """A builder: ``Pipeline.create().add("Fetch", fetch, workers=10).run(items)``."""
        return PipelineBuilder(cls)

    # -- internals ---------------------------------------------------------------------------

    def _active(self) -> PipelineRun | None:
        run = self._run
        return run if run is not None and not run.finished else None

    def _begin(
        self,
        *,
        collect: bool,
        outbox: Channel[PipelineResult] | None = None,
        checkpoint: Checkpoint | None = None,
    ) -> PipelineRun:
        try:
            if self._active() is not None:
                raise PipelineError(
                    "the pipeline is already running; join() or shutdown() it first"
                )
            run = PipelineRun(
                self.stages,
                tracker=self.status_tracker,
                clock=self._clock,
                sync_calls=self._sync_calls(),
                collect=collect,
                outbox=outbox,
                checkpoint=checkpoint,
                telemetry=pipeline_telemetry(self.name),
                carry_context=_in_process(self.executor),
                observer_timeout=self.observer_timeout,
                name=self.name,
            )
            run.start()
        except BaseException:
            if checkpoint is not None:  # the run never started: its run id is free again
                checkpoint.release()
            raise
        self._run = run
        self._started = False
        return run

    def _sync_calls(self) -> SyncCalls | None:
        """Where this run's sync tasks run (None: it has none); see ``_offload``."""
        workers = sum(s.workers for s in self.stages if not all(s.plan.is_async))
        return sync_calls(self.executor, workers, "flowweaver-pipeline") if workers else None

    def _stage_index(self, target_stage: str | None, priority: object) -> int:
        if isinstance(priority, bool) or not isinstance(priority, int):
            raise ConfigurationError(f"priority must be an int, got {priority!r}")
        if target_stage is None:
            return 0
        if not isinstance(target_stage, str):
            raise ConfigurationError(
                f"target_stage must be a stage name (a str) or None, got {target_stage!r}"
            )
        index = self._index.get(target_stage)
        if index is None:
            raise ConfigurationError(
                f"target_stage {target_stage!r} not found in pipeline: "
                f"its stages are {list(self._index)!r}"
            )
        return index

    @staticmethod
    def _results(run: PipelineRun) -> list[PipelineResult]:
        results = run.results
        if results is None:
            return []
        if not run.finished:
            return sorted(results, key=lambda r: r.sequence_id)
        return list(results)


publish(__name__)  # last: every exported class above exists
