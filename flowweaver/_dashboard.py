"""Dashboards: how ``run(progress=..., dashboard=..., custom_dashboard=...)`` shows a run.

Dashboards are polled, not fed: a background task takes a :class:`DashboardSnapshot` every
``dashboard_update_interval`` seconds (through the pipeline's clock) and hands it to
``on_update``. Nothing is produced per item, so a dashboard costs the same for ten items or ten
million; for a reaction to each event use :class:`StatusTracker` callbacks instead.

The built-in displays are found by name in :data:`DISPLAYS`; the ones here are minimal plain
text on stderr. A richer renderer (a terminal progress bar, ``rich`` panels) replaces an entry
of that mapping and nothing else: the run loop only ever sees a :class:`DashboardProtocol`.
"""

from __future__ import annotations

import asyncio
import logging
import math
import sys
from functools import partial
from time import perf_counter
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Protocol, TextIO, runtime_checkable

from ._errors import ConfigurationError
from ._events import call_safely

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from ._pipeline_types import DashboardSnapshot, ErrorSummary, PipelineResult
    from ._retry import Clock

__all__ = ["DISPLAYS", "DashboardPoller", "DashboardProtocol", "TextDashboard", "make_display"]

logger = logging.getLogger("flowweaver.pipeline")


@runtime_checkable
class DashboardProtocol(Protocol):
    """What ``run(custom_dashboard=...)`` accepts. Each method may also be ``async``.

    A method that raises is logged and not called again during that run.
    """

    def on_start(self, pipeline: Any, total_items: int | None) -> object:
        """The run starts; ``total_items`` is None when the items have no ``len()``."""
        ...

    def on_update(self, snapshot: DashboardSnapshot) -> object:
        """Called every ``dashboard_update_interval`` seconds, and once more at the end."""
        ...

    def on_finish(self, results: list[PipelineResult], summary: ErrorSummary) -> object:
        """The run ended (also when it was cancelled): its results and failures."""
        ...


class TextDashboard:
    """The minimal plain-text display: a line on stderr whenever the numbers change.

    Args:
        detail: ``"progress"`` (items done of total), ``"compact"`` (+ in flight and rate),
            ``"detailed"`` (+ one line per stage) or ``"full"`` (+ one line per worker).
        stream: Where to write (default: ``sys.stderr`` at the time of each write).
    """

    _DETAILS = ("progress", "compact", "detailed", "full")

    def __init__(self, detail: str = "progress", stream: TextIO | None = None) -> None:
        if detail not in self._DETAILS:
            raise ConfigurationError(
                f"TextDashboard: detail must be one of {list(self._DETAILS)!r}, got {detail!r}"
            )
        self.detail = detail
        self._stream = stream
        self._total: int | None = None
        self._started = 0.0
        self._last = ""

    def _write(self, text: str) -> None:
        stream = self._stream if self._stream is not None else sys.stderr
        stream.write(text + "\n")
        stream.flush()

    def on_start(self, pipeline: Any, total_items: int | None) -> None:
        self._total = total_items
        self._started = perf_counter()
        self._last = ""
        stages = " -> ".join(stage.name for stage in pipeline.stages)
        count = "" if total_items is None else f"{total_items} items, "
        self._write(f"[flowweaver] pipeline started: {count}{stages}")

    def on_update(self, snapshot: DashboardSnapshot) -> None:
        unchanged = self.render(snapshot, rate=False)  # the rate alone changing is no news
        if unchanged != self._last:
            self._last = unchanged
            self._write(self.render(snapshot))

    def on_finish(self, results: list[PipelineResult], summary: ErrorSummary) -> None:
        elapsed = perf_counter() - self._started
        self._write(
            f"[flowweaver] pipeline finished in {elapsed:.2f} s: {len(results)} succeeded, "
            f"{summary.total_failed} failed"
        )

    def render(self, snapshot: DashboardSnapshot, rate: bool = True) -> str:
        """The text for one snapshot (without the trailing newline)."""
        stats = snapshot.pipeline_stats
        done = stats.items_processed + stats.items_failed
        total = self._total
        line = f"[flowweaver] {done}/{total if total is not None else '?'} items"
        if total:
            line += f" ({100 * done // total}%)"
        line += f", {stats.items_failed} failed"
        if self.detail == "progress":
            return line
        line += f", {stats.items_in_flight} in flight"
        if rate:
            elapsed = perf_counter() - self._started
            line += f", {done / elapsed if elapsed > 0 else 0.0:.0f} items/s"
        lines = [line]
        if self.detail in ("detailed", "full"):
            lines.extend(
                f"  {s.stage_name}: {s.pending_items} queued, {s.in_progress_items} busy, "
                f"{s.completed_items} done, {s.failed_items} failed"
                for s in stats.stage_stats.values()
            )
        if self.detail == "full":
            for name, metrics in snapshot.worker_metrics.items():
                state = snapshot.worker_states[name]
                doing = "" if state.current_item_id is None else f" item {state.current_item_id!r}"
                lines.append(
                    f"    {name}: {state.status}{doing}, {metrics.items_processed} done, "
                    f"{metrics.items_failed} failed, avg {metrics.avg_processing_time:.3f} s"
                )
        return "\n".join(lines)


#: The built-in displays by name (``progress=True`` uses ``"progress"``). Each entry makes a
#: fresh display per run.
DISPLAYS: Mapping[str, Callable[[], DashboardProtocol]] = MappingProxyType(
    {detail: partial(TextDashboard, detail) for detail in TextDashboard._DETAILS}
)


def make_display(
    progress: bool, dashboard: str | None, custom: DashboardProtocol | None, interval: float
) -> DashboardProtocol | None:
    """The display a run asked for (None: none).

    Raises:
        ConfigurationError: More than one was asked for, an unknown name, an object that is
            not a :class:`DashboardProtocol`, or a bad interval.
    """
    chosen = [
        label
        for label, value in (
            ("progress=True", progress),
            (f"dashboard={dashboard!r}", dashboard is not None),
            ("custom_dashboard", custom is not None),
        )
        if value
    ]
    if len(chosen) > 1:
        raise ConfigurationError(
            f"run(): progress, dashboard and custom_dashboard are mutually exclusive, "
            f"got {' and '.join(chosen)}"
        )
    if (
        not isinstance(interval, int | float)
        or isinstance(interval, bool)
        or not (math.isfinite(interval) and interval > 0)
    ):
        raise ConfigurationError(
            f"run(): dashboard_update_interval must be a finite number > 0, got {interval!r}"
        )
    if custom is not None:
        if not isinstance(custom, DashboardProtocol):
            raise ConfigurationError(
                "run(): custom_dashboard must have on_start, on_update and on_finish methods, "
                f"got {custom!r}"
            )
        return custom
    if dashboard is not None:
        names = [name for name in DISPLAYS if name != "progress"]
        if dashboard not in names:
            raise ConfigurationError(
                f"run(): dashboard must be one of {names!r}, got {dashboard!r}"
            )
        return DISPLAYS[dashboard]()
    if not isinstance(progress, bool):
        raise ConfigurationError(f"run(): progress must be a bool, got {progress!r}")
    return DISPLAYS["progress"]() if progress else None


class DashboardPoller:
    """Calls a display's ``on_update`` every ``interval`` seconds while a run goes on."""

    def __init__(
        self,
        display: DashboardProtocol,
        snapshot: Callable[[], DashboardSnapshot],
        interval: float,
        clock: Clock,
    ) -> None:
        self.display = display
        self._snapshot = snapshot
        self._interval = interval
        self._clock = clock
        self._task: asyncio.Task[None] | None = None
        self._muted: set[str] = set()

    async def start(self, pipeline: Any, total: int | None) -> None:
        await self._call("on_start", pipeline, total)
        self._task = asyncio.get_running_loop().create_task(self._poll())

    async def _poll(self) -> None:
        while "on_update" not in self._muted:
            await self._clock.sleep_async(self._interval)
            await self._call("on_update", self._snapshot())

    async def stop(self, results: list[PipelineResult], summary: ErrorSummary) -> None:
        """Stop polling; show the final state; then ``on_finish``."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await self._call("on_update", self._snapshot())
        await self._call("on_finish", results, summary)

    async def _call(self, hook: str, *args: object) -> None:
        if hook in self._muted:
            return
        ok, value = call_safely(getattr(self.display, hook), args, "dashboard %s", hook)
        if ok and value is not None and hasattr(value, "__await__"):
            try:
                await value
            except Exception:
                logger.exception(
                    "dashboard %s raised; it is disabled for the rest of this run", hook
                )
                ok = False
        if not ok:
            self._muted.add(hook)
