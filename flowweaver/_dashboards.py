"""The built-in displays of ``Pipeline.run()``: a progress line and three dashboards.

* ``progress=True``: :class:`PipelineProgress`, the standard-library :class:`ProgressLine` that
  workflows use too (done/total, rate, ETA, failures).
* ``dashboard="compact"``: :class:`CompactDashboard`, one panel: progress bar, the stages
  that are busy, rate and ETA, counts.
* ``dashboard="detailed"``: :class:`DetailedDashboard`, the same overview and a table of the
  stages (workers busy, queued, done, failed, time per successful item).
* ``dashboard="full"``: :class:`FullDashboard`, that and a table of the workers (what each is
  doing and has done) and the latest failures.

Each builds its frame from the :class:`DashboardSnapshot` it is handed (pure, and bounded by
the pipeline's shape: a few lines per stage, at most ``max_workers_shown`` workers and
``max_errors_shown`` failures), so drawing costs the same after ten items or ten million.
They draw with ``rich`` when it is installed (``flowweaver[rich]``), as plain text otherwise;
see :mod:`flowweaver._dashboard_render` for how frames reach the screen.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, TextIO

from ._checks import is_number
from ._dashboard_base import BaseDashboard
from ._dashboard_render import (
    Bar,
    Block,
    Frame,
    Grid,
    Line,
    Screen,
    Span,
    default_stream,
    render_plain,
    render_rich,
    resolve_rich,
)
from ._errors import ConfigurationError, ItemCancelledError
from ._pipeline_types import WorkerStatus
from ._progress import ProgressLine
from ._progress import _duration as _clock_time
from ._public import publish

#: How the error summary names items a stop cancelled: counted apart from failures.
CANCELLED = ItemCancelledError.__name__

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._pipeline_types import DashboardSnapshot, ErrorSummary, PipelineResult

__all__ = ["CompactDashboard", "DetailedDashboard", "FullDashboard", "PipelineProgress"]


def _positive(name: str, value: object, *, integer: bool = False) -> None:
    ok = is_number(value) and value > 0 and (not integer or isinstance(value, int))
    if not ok:
        kind = "an int" if integer else "a finite number"
        raise ConfigurationError(f"{name} must be {kind} > 0, got {value!r}")


class PipelineProgress:
    """``progress=True``: one progress line for a pipeline run (standard library only).

    On a terminal it is rewritten in place; elsewhere a plain line is printed every
    ``plain_every`` seconds and at the end. The total is unknown (no bar, no ETA) when the
    items have no ``len()`` (a generator, an async iterable).
    """

    def __init__(self, stream: TextIO | None = None, *, plain_every: float = 5.0) -> None:
        self._stream = stream
        self._plain_every = plain_every
        self._line: ProgressLine | None = None
        self._processed = 0

    def on_start(self, pipeline: Any, total_items: int | None) -> None:
        self._processed = 0
        self._line = ProgressLine(
            "pipeline",
            total_items,
            default_stream(self._stream),
            unit="items",
            plain_every=self._plain_every,
            not_run_label="cancelled",
        )

    def on_update(self, snapshot: DashboardSnapshot) -> None:
        if self._line is not None:
            stats = snapshot.pipeline_stats
            self._processed = stats.items_processed
            self._line.update(stats.items_processed + stats.items_failed, stats.items_failed)

    def on_finish(self, results: list[PipelineResult], summary: ErrorSummary) -> None:
        line, self._line = self._line, None
        if line is not None:
            # The summary's counts are exact; a stop's cancellations are not failures.
            cancelled = summary.errors_by_type.get(CANCELLED, 0)
            processed = max(self._processed, len(results))
            failed = summary.total_failed
            line.update(processed + failed, failed - cancelled, cancelled)
            line.close()


class _Dashboard(BaseDashboard):
    """What the three dashboards share: the overview, the screen, the final summary.

    A :class:`BaseDashboard` whose ``on_update`` shows a frame on its screen (redrawn at most
    ``refresh`` times a second) and whose ``render`` returns a frame's text."""

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        use_rich: bool | None = None,
        refresh: float = 4.0,
        plain_every: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        _positive("refresh", refresh)
        _positive("plain_every", plain_every)
        self.use_rich = resolve_rich(use_rich)
        self._stream = stream
        self._refresh = refresh
        self._plain_every = plain_every
        self._clock = clock
        self.total: int | None = None
        self.title = "flowweaver pipeline"
        self.started = clock()
        self._screen: Screen | None = None
        self._latest: DashboardSnapshot | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(use_rich={self.use_rich})"

    # -- DashboardProtocol -----------------------------------------------------------------------

    def on_start(self, pipeline: Any, total_items: int | None) -> None:
        """Start drawing: the title names the stages of ``pipeline``."""
        self.total = total_items
        self.started = self._clock()
        self._latest = None
        stages = getattr(pipeline, "stages", ())
        names = [getattr(stage, "name", "?") for stage in stages]
        self.title = "flowweaver pipeline" + (": " + " -> ".join(names) if names else "")
        self._screen = Screen(
            default_stream(self._stream),
            use_rich=self.use_rich,
            refresh=self._refresh,
            plain_every=self._plain_every,
            clock=self._clock,
        )
        self._screen.start(self._starting_frame())

    def on_update(self, snapshot: DashboardSnapshot) -> None:
        """Show ``snapshot`` (drawn now or at the next redraw, never per item)."""
        self._latest = snapshot
        if self._screen is not None:
            self._screen.show(self.frame(snapshot))

    async def on_finish(self, results: list[PipelineResult], summary: ErrorSummary) -> None:
        """Draw the last frame and a summary line (waiting for them without blocking the
        event loop)."""
        screen, self._screen = self._screen, None
        if screen is None:
            return
        latest = self._latest
        if latest is not None:
            stats = latest.pipeline_stats
            ok, failed = stats.items_processed, stats.items_failed
            elapsed = latest.timestamp - self.started
        else:  # on_update was disabled: what the run returned is all we know
            ok, failed = len(results), summary.total_failed
            elapsed = self._clock() - self.started
        await screen.close([self._last_line(ok, failed, elapsed, summary)])

    def _last_line(self, ok: int, failed: int, elapsed: float, summary: ErrorSummary) -> str:
        """``pipeline finished …``, or ``pipeline interrupted …`` for a run that stopped
        before every item ended (Ctrl-C, ``shutdown()``): its cancelled items, and those it
        never started, are counted apart from failures."""
        failed = max(failed, summary.total_failed)
        cancelled = summary.errors_by_type.get(CANCELLED, 0)
        stopped = cancelled > 0
        never = max(self.total - ok - failed, 0) if stopped and self.total is not None else 0
        verb = "interrupted after" if stopped else "finished in"
        line = f"pipeline {verb} {elapsed:.2f} s: {ok} succeeded, {failed - cancelled} failed"
        if cancelled:
            line += f", {cancelled} cancelled"
        if never:
            line += f", {never} never started"
        kinds = sorted(
            ((k, n) for k, n in summary.errors_by_type.items() if k != CANCELLED),
            key=lambda kv: (-kv[1], kv[0]),
        )
        if kinds:
            shown = ", ".join(f"{name} {count}" for name, count in kinds[:3])
            line += f" ({shown}{', …' if len(kinds) > 3 else ''})"
        return line

    # -- what is drawn -------------------------------------------------------------------------

    def frame(self, snapshot: DashboardSnapshot) -> Frame:
        """What this dashboard shows for ``snapshot`` (a pure function of it and the run's
        total and start time): each dashboard draws its own."""
        raise NotImplementedError

    def render(self, snapshot: DashboardSnapshot, width: int = 80) -> str:
        """The text of one frame, as it is written to a non-terminal (``rich`` without colour
        when this dashboard uses it, plain text otherwise)."""
        frame = self.frame(snapshot)
        return render_rich(frame, width) if self.use_rich else render_plain(frame)

    def _starting_frame(self) -> Frame:
        return (Block(self.title, ((Span("starting…", "dim"),),)),)

    def _overview(self, snapshot: DashboardSnapshot, active: bool = False) -> Block:
        stats = snapshot.pipeline_stats
        done = stats.items_processed + stats.items_failed
        total = self.total
        elapsed = max(snapshot.timestamp - self.started, 0.0)
        rate = done / elapsed if elapsed > 0 else 0.0
        lines: list[Line] = []
        if total:
            lines.append(
                (
                    Bar(min(done / total, 1.0)),
                    Span(f"  {done}/{total}  "),
                    Span(f"{100 * done // total}%", "strong"),
                )
            )
        else:
            lines.append((Span(f"{done} items done", "strong"),))
        if active:
            pools = self._pool_sizes(snapshot)
            busy = [
                f"{name} {s.in_progress_items}/{pools.get(name, 0)} busy"
                for name, s in stats.stage_stats.items()
                if s.in_progress_items or s.pending_items
            ]
            lines.append((Span("active: ", "dim"), Span(", ".join(busy) or "none", "warn")))
        timing = [Span("rate ", "dim"), Span(f"{rate:,.1f} items/s", "ok")]
        if total and rate > 0 and done < total:
            timing += [Span("  ETA ", "dim"), Span(_clock_time((total - done) / rate), "ok")]
        timing += [Span("  elapsed ", "dim"), Span(_clock_time(elapsed))]
        lines.append(tuple(timing))
        # In flight: held by a worker; queued: waiting for one (items_in_flight is both).
        working = sum(s.in_progress_items for s in stats.stage_stats.values())
        queued = max(stats.items_in_flight - working, 0)
        counts = [
            Span("ok ", "dim"),
            Span(str(stats.items_processed), "ok"),
            Span("  failed ", "dim"),
            Span(str(stats.items_failed), "bad" if stats.items_failed else ""),
            Span("  in flight ", "dim"),
            Span(str(working), "accent"),
            Span("  queued ", "dim"),
            Span(str(queued)),
        ]
        if total is not None:
            counts += [Span("  remaining ", "dim"), Span(str(max(total - done, 0)))]
        lines.append(tuple(counts))
        return Block(self.title, tuple(lines))

    @staticmethod
    def _pool_sizes(snapshot: DashboardSnapshot) -> dict[str, int]:
        sizes: dict[str, int] = {}
        for state in snapshot.worker_states.values():
            sizes[state.stage] = sizes.get(state.stage, 0) + 1
        return sizes


class CompactDashboard(_Dashboard):
    """``dashboard="compact"``: one panel with the essentials.

    Examples:
        >>> results = await pipeline.run(items, dashboard="compact")  # doctest: +SKIP
        >>> results = await pipeline.run(  # doctest: +SKIP
        ...     items, custom_dashboard=CompactDashboard(use_rich=False)
        ... )

    Shows a progress bar (or a count when the total is unknown), the stages with busy workers
    or queued items, the rate and ETA, and how many items succeeded, failed, are in flight
    and remain.

    Args:
        stream: Where to draw (default: standard error at the time the run starts).
        use_rich: ``None`` draws with ``rich`` when it is installed; ``False`` always as plain
            text; ``True`` requires it.
        refresh: Most redraws per second on a terminal.
        plain_every: Seconds between frames when ``stream`` is not a terminal (the last frame
            is always written).
        clock: Wall-clock time source (``time.time``): the rate and elapsed time, and how
            often frames are drawn.

    Raises:
        ConfigurationError: ``use_rich=True`` without ``rich`` installed
            (``pip install 'flowweaver[rich]'``), or a bad ``refresh``/``plain_every``.
    """

    def frame(self, snapshot: DashboardSnapshot) -> Frame:
        return (self._overview(snapshot, active=True),)


class DetailedDashboard(_Dashboard):
    """``dashboard="detailed"``: the overview and one row per stage.

    The stage table shows, for each stage: workers busy of its pool, items queued, done and
    failed in it, and the mean time its workers spent on an item they processed successfully
    (as :attr:`WorkerMetrics.avg_processing_time`, over the whole stage). Arguments as
    :class:`CompactDashboard`.
    """

    def frame(self, snapshot: DashboardSnapshot) -> Frame:
        return (self._overview(snapshot), self._stages(snapshot))

    def _stages(self, snapshot: DashboardSnapshot) -> Grid:
        # time/item: time on successful items over successes, the stage's avg_processing_time.
        busy_time: dict[str, float] = {}
        processed: dict[str, int] = {}
        workers: dict[str, int] = {}
        for metrics in snapshot.worker_metrics.values():
            busy_time[metrics.stage] = busy_time.get(metrics.stage, 0.0) + (
                metrics.total_processing_time
            )
            processed[metrics.stage] = processed.get(metrics.stage, 0) + metrics.items_processed
            workers[metrics.stage] = workers.get(metrics.stage, 0) + 1
        rows = []
        for name, s in snapshot.pipeline_stats.stage_stats.items():
            count = processed.get(name, 0)
            avg = f"{busy_time.get(name, 0.0) / count:.3f} s" if count else "-"
            rows.append(
                (
                    Span(name, "strong"),
                    Span(f"{s.in_progress_items}/{workers.get(name, 0)}", "warn"),
                    Span(str(s.pending_items)),
                    Span(str(s.completed_items), "ok"),
                    Span(str(s.failed_items), "bad" if s.failed_items else ""),
                    Span(avg, "dim"),
                )
            )
        columns = ("stage", "busy", "queued", "done", "failed", "time/item")
        return Grid("Stages", columns, tuple(rows))


class FullDashboard(DetailedDashboard):
    """``dashboard="full"``: the overview, the stages, the workers and the latest failures.

    The worker table lists busy workers first (what item and task each is on, and for how
    long), then idle ones, each with items done and failed and the mean time per successful
    item (:attr:`WorkerMetrics.avg_processing_time`); the failure table lists the latest
    failures (item, stage, error, attempts), newest last. No :class:`StatusTracker` is
    needed: failures come with every snapshot.

    Args:
        stream: Where to draw (default: standard error at the time the run starts).
        max_workers_shown: Most worker rows (the rest are counted in a note).
        max_errors_shown: Most failure rows.
        use_rich: As for :class:`CompactDashboard`.
        refresh: As for :class:`CompactDashboard`.
        plain_every: As for :class:`CompactDashboard`.
        clock: As for :class:`CompactDashboard`.
    """

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        max_workers_shown: int = 12,
        max_errors_shown: int = 5,
        use_rich: bool | None = None,
        refresh: float = 4.0,
        plain_every: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        _positive("max_workers_shown", max_workers_shown, integer=True)
        _positive("max_errors_shown", max_errors_shown, integer=True)
        super().__init__(
            stream, use_rich=use_rich, refresh=refresh, plain_every=plain_every, clock=clock
        )
        self.max_workers_shown = max_workers_shown
        self.max_errors_shown = max_errors_shown

    def frame(self, snapshot: DashboardSnapshot) -> Frame:
        frame = (self._overview(snapshot), self._stages(snapshot), self._worker_grid(snapshot))
        failures = self._failure_grid(snapshot)
        return frame if failures is None else (*frame, failures)

    def _worker_grid(self, snapshot: DashboardSnapshot) -> Grid:
        states = snapshot.worker_states
        # By status, not by item id: an item's id may be None (a dict item's "id").
        busy = [name for name, state in states.items() if state.status is not WorkerStatus.IDLE]
        idle = [name for name, state in states.items() if state.status is WorkerStatus.IDLE]
        shown = (busy + idle)[: self.max_workers_shown]
        rows = []
        for name in shown:
            state = states[name]
            metrics = snapshot.worker_metrics.get(name)
            since = state.processing_since
            doing = state.status is not WorkerStatus.IDLE
            status = str(state.status)
            attempt = snapshot.retry_attempts.get(name)
            if state.status is WorkerStatus.RETRYING and attempt is not None:
                status = f"retrying (attempt {attempt})"
            rows.append(
                (
                    Span(name, "strong"),
                    Span(status, "warn" if doing else "dim"),
                    Span(_short(state.current_item_id) if doing else "-"),
                    Span(state.current_task or "-"),
                    Span(f"{snapshot.timestamp - since:.1f} s" if since is not None else "-"),
                    Span(str(metrics.items_processed if metrics else 0), "ok"),
                    Span(str(metrics.items_failed if metrics else 0)),
                    Span(f"{metrics.avg_processing_time:.3f} s" if metrics else "-", "dim"),
                )
            )
        columns = ("worker", "state", "item", "task", "for", "done", "failed", "time/item")
        return Grid(
            "Workers", columns, tuple(rows), align="llllrrrr", noun="worker",
            hidden=len(states) - len(shown), detail=f"({len(busy)} busy in all)",
        )  # fmt: skip

    def _failure_grid(self, snapshot: DashboardSnapshot) -> Grid | None:
        recent = snapshot.recent_failures[-self.max_errors_shown :]
        if not recent:
            return None
        rows = tuple(
            (
                Span(_short(failure.item_id), "strong"),
                Span(failure.stage),
                Span(_short(f"{failure.error_type}: {failure.error}", 48), "bad"),
                Span(str(failure.attempts)),
            )
            for failure in recent
        )
        failed = snapshot.pipeline_stats.items_failed
        title = f"Latest failures ({len(recent)} of {failed})"
        columns = ("item", "stage", "error", "attempts")
        return Grid(title, columns, rows, align="lllr", noun="failure")


def _short(value: object, limit: int = 24) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


publish(__name__)  # last: every exported class above exists
