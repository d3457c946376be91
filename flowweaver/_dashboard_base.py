"""The base class of pipeline dashboards, and AntFlow's dependency-free progress bar.

:class:`BaseDashboard` is AntFlow 0.10's abstract base: ``on_start`` / ``on_update`` /
``on_finish`` with ``on_update`` handing each snapshot to the one abstract method, ``render``.
flowweaver's compact, detailed and full dashboards are subclasses. Anything with the three
methods works as a ``custom_dashboard`` too (:class:`~flowweaver.DashboardProtocol`); the base
class is for those who want the defaults.
"""

from __future__ import annotations

import sys
import time
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, TextIO

from ._errors import ConfigurationError
from ._public import publish

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._pipeline_types import DashboardSnapshot, ErrorSummary, PipelineResult

__all__ = ["BaseDashboard", "ProgressDisplay"]


class BaseDashboard(ABC):
    """A dashboard to subclass: implement :meth:`render`, override the rest as needed.

    Example::

        class Counter(BaseDashboard):
            def render(self, snapshot):
                print(snapshot.pipeline_stats.items_processed, "done")

        await pipeline.run(items, custom_dashboard=Counter())

    ``on_start`` and ``on_finish`` do nothing by default; ``on_update`` calls ``render``. Any
    of them may be ``async`` in a subclass. One that raises is logged and not called again
    during that run.
    """

    def on_start(self, pipeline: Any, total_items: int | None) -> object:
        """The run starts; ``total_items`` is None when the items have no ``len()``."""
        return None

    def on_update(self, snapshot: DashboardSnapshot) -> object:
        """Every ``dashboard_update_interval`` seconds, and once at the end: ``render`` it."""
        return self.render(snapshot)

    def on_finish(self, results: list[PipelineResult], summary: ErrorSummary) -> object:
        """The run ended (also when it was cancelled)."""
        return None

    @abstractmethod
    def render(self, snapshot: DashboardSnapshot) -> object:
        """Draw ``snapshot``."""

    @staticmethod
    def _progress_units(snapshot: DashboardSnapshot, total_items: int) -> tuple[int, int]:
        """``(done, total)`` work units, weighting every stage (AntFlow's helper): each item
        passes every stage, so the total is ``total_items * stages`` and every item a stage
        finished (or failed) is one unit done — a bar that moves while early stages work."""
        stages = snapshot.pipeline_stats.stage_stats
        total = max(total_items * (len(stages) or 1), 1)
        done = sum(s.completed_items + s.failed_items for s in stages.values())
        return done, total


class ProgressDisplay(BaseDashboard):
    """A one-line progress bar without dependencies (AntFlow's ``ProgressDisplay``)::

        [████████████░░░░░░░░░░░░░░░░░░]  42.0% | 126/300 | 24.5/s | 2 failed

    Pass it as ``custom_dashboard=ProgressDisplay(total=len(items))``. (``progress=True``
    shows flowweaver's own progress line, which also works when the total is unknown.)

    Args:
        total: Items expected; replaced by the run's count when it knows one.
        width: Characters of the bar.
        fill_char: The done part of the bar.
        empty_char: The rest.
        stream: Where to write (standard output by default, as AntFlow does).
        clock: Seconds for the rate (``time.monotonic`` by default).

    Raises:
        ConfigurationError: A negative total, a width < 1, or a fill that is not one character.
    """

    def __init__(
        self,
        total: int,
        width: int = 30,
        fill_char: str = "█",
        empty_char: str = "░",
        *,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if isinstance(total, bool) or not isinstance(total, int) or total < 0:
            raise ConfigurationError(f"ProgressDisplay: total must be an int >= 0, got {total!r}")
        if isinstance(width, bool) or not isinstance(width, int) or width < 1:
            raise ConfigurationError(f"ProgressDisplay: width must be an int >= 1, got {width!r}")
        for name, char in (("fill_char", fill_char), ("empty_char", empty_char)):
            if not isinstance(char, str) or len(char) != 1:
                raise ConfigurationError(
                    f"ProgressDisplay: {name} must be one character, got {char!r}"
                )
        self.total = total
        self.width = width
        self.fill_char = fill_char
        self.empty_char = empty_char
        self._stream = stream
        self._clock = clock
        self.start_time: float | None = None

    def on_start(self, pipeline: Any, total_items: int | None) -> None:
        if total_items is not None:
            self.total = total_items
        self.start_time = self._clock()
        self._write(self.line(0, 0, 0.0))

    def render(self, snapshot: DashboardSnapshot) -> None:
        stats = snapshot.pipeline_stats
        finished = stats.items_processed + stats.items_failed
        done, units = self._progress_units(snapshot, self.total)
        self._write(self.line(finished, stats.items_failed, self._rate(finished), done / units))

    def on_finish(self, results: list[PipelineResult], summary: ErrorSummary) -> None:
        finished = len(results) + summary.total_failed
        elapsed = self._elapsed()
        self._write(self.line(finished, summary.total_failed, self._rate(finished)))
        ok, failed = len(results), summary.total_failed
        tail = f"{ok} items" if not failed else f"{ok} ok, {failed} failed"
        self._write(f"\nCompleted: {tail} in {elapsed:.1f}s\n")

    def line(self, finished: int, failed: int, rate: float, share: float | None = None) -> str:
        """The bar for ``finished`` of ``total`` items (``share``: the fraction to draw,
        stage-weighted while the run goes on)."""
        if share is None:
            share = finished / self.total if self.total else 1.0
        share = min(max(share, 0.0), 1.0)
        filled = int(self.width * share)
        bar = self.fill_char * filled + self.empty_char * (self.width - filled)
        text = f"\r[{bar}] {share * 100:5.1f}% | {finished}/{self.total}"
        if rate > 0:
            text += f" | {rate:.1f}/s"
        if failed:
            text += f" | {failed} failed"
        return text + "   "

    def _elapsed(self) -> float:
        return 0.0 if self.start_time is None else self._clock() - self.start_time

    def _rate(self, finished: int) -> float:
        elapsed = self._elapsed()
        return finished / elapsed if elapsed > 0 else 0.0

    def _write(self, text: str) -> None:
        stream = self._stream if self._stream is not None else sys.stdout
        stream.write(text)
        stream.flush()


publish(__name__)  # last: every exported class above exists
