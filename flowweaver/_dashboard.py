"""Dashboards: how ``run(progress=..., dashboard=..., custom_dashboard=...)`` shows a run.

Dashboards are polled, not fed: a background task takes a :class:`DashboardSnapshot` every
``dashboard_update_interval`` seconds (through the pipeline's clock) and hands it to
``on_update``. Nothing is produced per item, so a dashboard costs the same for ten items or ten
million; for a reaction to each event use :class:`StatusTracker` callbacks instead.

The built-in displays are found by name in :data:`DISPLAYS` (they live in ``_dashboards``: a
progress line, and compact/detailed/full dashboards drawn with ``rich`` when it is installed);
the run loop only ever sees a :class:`DashboardProtocol`.
"""

from __future__ import annotations

import asyncio
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from ._checks import check_flag, is_number
from ._dashboards import CompactDashboard, DetailedDashboard, FullDashboard, PipelineProgress
from ._errors import ConfigurationError
from ._events import ObserverWaits, call_safely
from ._public import publish

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from ._clock import Clock
    from ._pipeline_types import DashboardSnapshot, ErrorSummary, PipelineResult

__all__ = ["DISPLAYS", "DashboardPoller", "DashboardProtocol", "make_display"]


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


#: The built-in displays by name (``progress=True`` uses ``"progress"``). Each entry makes a
#: fresh display per run.
DISPLAYS: Mapping[str, Callable[[], DashboardProtocol]] = MappingProxyType(
    {
        "progress": PipelineProgress,
        "compact": CompactDashboard,
        "detailed": DetailedDashboard,
        "full": FullDashboard,
    }
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
    if not (is_number(interval) and interval > 0):
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
    return DISPLAYS["progress"]() if check_flag("run()", "progress", progress) else None


class DashboardPoller:
    """Calls a display's ``on_update`` every ``interval`` seconds while a run goes on."""

    def __init__(
        self,
        display: DashboardProtocol,
        snapshot: Callable[[], DashboardSnapshot],
        interval: float,
        clock: Clock,
        waits: ObserverWaits | None = None,
    ) -> None:
        self.display = display
        # The run's: an async display that hangs is cut off as any other observer.
        self._waits = waits if waits is not None else ObserverWaits()
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
            ok = await self._waits.wait(value, "dashboard %s", hook)
        if not ok:
            self._muted.add(hook)


publish(__name__)  # last: every exported class above exists
