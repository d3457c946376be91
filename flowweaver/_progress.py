"""Progress for long work, standard library only.

:class:`ProgressLine` renders ``ran/total``, rate, ETA and failures. Work that never ran
(cancelled by a stop, or upstream of nothing because its upstream failed) is counted apart,
never in the bar, so a run that stopped early ends showing where it stopped (``3/10 30% …
7 not run  stopped``), as ``tqdm`` does, rather than 100 %. On a terminal it is one
line rewritten in place (at most ten times a second, so rendering cost does not grow with the
number of items); elsewhere (CI logs, files) it prints a plain line every
``plain_every`` seconds and a last one at the end. :class:`ProgressMonitor` drives it from a
workflow run's status changes (``execute(..., progress=True)``).
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, TextIO

from ._status import TaskStatus

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._run import WorkflowRun

__all__ = ["ProgressLine", "ProgressMonitor"]

_WIDTH = 24
#: Most redraws per second on a terminal.
_REFRESH = 10.0


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"


class ProgressLine:
    """One progress line for ``total`` units of work (None: unknown, e.g. a stream).

    Args:
        label: Shown first (a workflow or pipeline name).
        total: Units expected, or None.
        stream: Where to write (default: standard error).
        unit: What a unit is called in the rate ("tasks", "items").
        plain_every: Seconds between lines when the stream is not a terminal.
        clock: Time source (tests inject one).
        not_run_label: How units that never ran are named ("not run", "cancelled").
    """

    def __init__(
        self,
        label: str,
        total: int | None,
        stream: TextIO | None = None,
        *,
        unit: str = "tasks",
        plain_every: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        not_run_label: str = "not run",
    ) -> None:
        self.label = label
        self.not_run_label = not_run_label
        self.closed = False
        self.total = total
        self.stream = stream if stream is not None else sys.stderr
        self.unit = unit
        isatty = getattr(self.stream, "isatty", None)
        self.live = bool(isatty and isatty())
        self._interval = 1.0 / _REFRESH if self.live else plain_every
        self._clock = clock
        self._start = clock()
        self._last = -float("inf")
        self.done = 0
        self.failed = 0
        self.not_run = 0
        self._drawn: tuple[int, int, int] | None = None  # the counts last drawn

    def render(self) -> str:
        """The line as it would be drawn now."""
        elapsed = max(self._clock() - self._start, 1e-9)
        ran = self.done - self.not_run  # what never ran is no progress
        rate = ran / elapsed
        parts = [self.label]
        if self.total:
            filled = min(_WIDTH, _WIDTH * ran // self.total)
            parts.append(f"[{'#' * filled}{'-' * (_WIDTH - filled)}]")
            parts.append(f"{ran}/{self.total} {100 * ran // self.total:3d}%")
        else:
            parts.append(f"{ran} {self.unit}")
        parts.append(f"{rate:,.1f} {self.unit}/s")
        if not self.closed and self.total and rate > 0 and self.done < self.total:
            parts.append(f"ETA {_duration((self.total - self.done) / rate)}")
        else:
            parts.append(f"in {_duration(elapsed)}")
        if self.failed:
            parts.append(f"{self.failed} failed")
        if self.not_run:
            parts.append(f"{self.not_run} {self.not_run_label}")
        if self.closed and self.total and self.done < self.total:
            parts.append(f"{self.total - self.done} not started")
        if self.closed and (self.not_run or (self.total and self.done < self.total)):
            parts.append("stopped")
        return "  ".join(parts)

    def update(self, done: int, failed: int = 0, not_run: int = 0) -> None:
        """Record progress; redraw if the last redraw is old enough.

        Args:
            done: Units finished, whatever their outcome.
            failed: Of those, how many failed.
            not_run: Of those, how many never ran (cancelled, or upstream failed).
        """
        self.done, self.failed, self.not_run = done, failed, not_run
        now = self._clock()
        if now - self._last >= self._interval:
            self._last = now
            self._draw()

    def close(self) -> None:
        """Draw the final state and end the line (a plain line is not repeated when its
        counts are already the last one printed). A run that stopped before every unit ran
        says ``stopped``, after how many never ran or never started."""
        stopped = bool(self.not_run or (self.total and self.done < self.total))
        self.closed = True
        if self.live or stopped or self._drawn != (self.done, self.failed, self.not_run):
            self._draw()
        if self.live:
            self.stream.write("\n")
        self.stream.flush()

    def _draw(self) -> None:
        self._drawn = (self.done, self.failed, self.not_run)
        if self.live:
            self.stream.write("\r" + self.render() + "\033[K")
        else:
            self.stream.write(self.render() + "\n")
        self.stream.flush()


_NOT_RUN = frozenset({TaskStatus.UPSTREAM_FAILED, TaskStatus.CANCELLED})


def _units(run: WorkflowRun) -> int:
    """Tasks to show: every task, a mapped one counting as its elements (seen so far)."""
    total = len(run)
    for record in run._elements.values():
        count = record.total if record.total is not None else len(record)
        total += max(count, 1) - 1
    return total


class ProgressMonitor:
    """A :class:`~flowweaver.Monitor` that shows a workflow run's progress.

    Counts a task once it ends; failed tasks, and tasks that never ran (cancelled or
    upstream_failed), are shown apart. A mapped task counts as its elements (each once it
    ends), and the total grows by its element count once the task knows it.
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream
        self._line: ProgressLine | None = None
        self._done = self._failed = self._not_run = 0

    def on_run_start(self, run: WorkflowRun) -> None:
        self._done = self._failed = self._not_run = 0
        self._line = ProgressLine(run.workflow, len(run), self._stream)

    def on_status_change(self, run: WorkflowRun, task_name: str, status: TaskStatus) -> None:
        line = self._line
        if not status.is_terminal or line is None:
            return
        if run._elements:
            if run.element_of(task_name) is None:
                record = run.elements(task_name)
                if record is not None and len(record):
                    return  # a mapped task's end: its elements were counted
            line.total = _units(run)
        elif len(run) != line.total:  # a subflow's tasks joined the run
            line.total = len(run)
        self._done += 1
        self._failed += status is TaskStatus.FAILED
        self._not_run += status in _NOT_RUN
        line.update(self._done, self._failed, self._not_run)

    def on_run_end(self, run: WorkflowRun) -> None:
        if self._line is not None:
            self._line.update(self._done, self._failed, self._not_run)
            self._line.close()
            self._line = None
