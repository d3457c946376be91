"""How a dashboard frame reaches the screen: plain text, or ``rich`` when it is installed.

Design:

* A dashboard describes what it shows as a :data:`Frame`: a few titled sections of styled text
  (:class:`Block`) and tables (:class:`Grid`). A frame is built from one snapshot and its size
  depends on the pipeline's shape, never on the number of items that passed.
* Two renderers turn a frame into text: :func:`render_plain` (standard library) and the
  ``rich`` one (panels and tables). ``rich`` is the optional extra ``flowweaver[rich]``,
  imported here and nowhere else, and only when a dashboard asks for it: importing flowweaver
  never imports it.
* :class:`Screen` decides how frames are shown: on a terminal, redrawn in place at most
  ``refresh`` times a second (a ``rich.live`` display, or ANSI cursor moves without ``rich``);
  anywhere else (a CI log, a file), printed in full every ``plain_every`` seconds, and the
  last one at the end.
* The event loop never writes: it builds the frame (cheap, bounded) and hands it to the
  screen's own thread, which renders and writes it. A terminal that stops reading stalls that
  thread, never the pipeline.
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import shutil
import sys
import threading
from collections import deque
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, TextIO

from ._errors import ConfigurationError, MissingDependencyError

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

__all__ = [
    "Bar",
    "Block",
    "Frame",
    "Grid",
    "Line",
    "Screen",
    "Span",
    "fit",
    "render_plain",
    "render_rich",
    "resolve_rich",
]

#: Styles a :class:`Span` may carry, as ``rich`` styles (plain text ignores them).
STYLES = {
    "": "",
    "ok": "green",
    "bad": "bold red",
    "warn": "yellow",
    "dim": "dim",
    "accent": "cyan",
    "strong": "bold",
}


logger = logging.getLogger("flowweaver.pipeline")


@dataclass(frozen=True, slots=True)
class Span:
    """A piece of text with a style name from :data:`STYLES`."""

    text: str
    style: str = ""


@dataclass(frozen=True, slots=True)
class Bar:
    """A progress bar ``width`` characters wide, ``fraction`` (0..1) full."""

    fraction: float
    width: int = 30


Piece = Span | Bar
Line = tuple[Piece, ...]


@dataclass(frozen=True, slots=True)
class Block:
    """A titled group of lines (a panel)."""

    title: str
    lines: tuple[Line, ...]


@dataclass(frozen=True, slots=True)
class Grid:
    """A titled table. ``align`` has one letter per column, ``l`` or ``r`` (default: the first
    column left, the others right).

    A grid with a ``noun`` may lose rows to fit a small screen (:func:`fit`); its note then
    counts them: ``+ 3 more workers`` (``hidden`` rows were left out already), followed by
    ``detail``.
    """

    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[Span, ...], ...]
    note: str = ""
    align: str = ""
    noun: str = ""
    hidden: int = 0
    detail: str = ""

    def alignment(self) -> str:
        return self.align or "l" + "r" * (len(self.columns) - 1)

    def caption(self) -> str:
        """The line under the table (empty: none)."""
        if not self.noun or not self.hidden:
            return self.note
        noun = self.noun if self.hidden == 1 else self.noun + "s"
        more = f"+ {self.hidden} more {noun}"
        return " ".join(part for part in (more, self.detail, self.note) if part)

    def keep(self, count: int) -> Grid:
        """This grid with only its first ``count`` rows (the others counted as hidden)."""
        count = max(0, min(count, len(self.rows)))
        return replace(self, rows=self.rows[:count], hidden=self.hidden + len(self.rows) - count)


Section = Block | Grid
Frame = tuple[Section, ...]


def resolve_rich(use_rich: bool | None) -> bool:
    """Whether to draw with ``rich``: ``None`` means "if it is installed".

    Raises:
        ConfigurationError: ``use_rich`` is not a bool or None.
        MissingDependencyError: ``use_rich=True`` and ``rich`` cannot be imported (the
            ``rich`` extra), as for every optional extra a caller explicitly asks for.
    """
    if use_rich is not None and not isinstance(use_rich, bool):
        raise ConfigurationError(f"use_rich must be True, False or None, got {use_rich!r}")
    if use_rich is False:
        return False
    try:
        import rich  # noqa: F401  # the optional extra: imported only when a dashboard asks
    except ImportError:
        if use_rich:
            raise MissingDependencyError("a dashboard with use_rich=True", "rich", "rich") from None
        return False
    return True


# -- plain text --------------------------------------------------------------------------------


def _plain_piece(piece: Piece) -> str:
    if isinstance(piece, Bar):
        filled = max(0, min(piece.width, round(piece.width * piece.fraction)))
        return f"[{'#' * filled}{'-' * (piece.width - filled)}]"
    return piece.text


def render_plain(frame: Frame) -> str:
    """The frame as plain text (no trailing newline)."""
    out: list[str] = []
    for section in frame:
        if out:
            out.append("")
        out.append(section.title)
        if isinstance(section, Block):
            out.extend("  " + "".join(_plain_piece(p) for p in line) for line in section.lines)
            continue
        table = [section.columns, *(tuple(cell.text for cell in row) for row in section.rows)]
        widths = [max(len(row[i]) for row in table) for i in range(len(section.columns))]
        align = section.alignment()
        for row in table:
            cells = [
                cell.ljust(width) if side == "l" else cell.rjust(width)
                for cell, width, side in zip(row, widths, align, strict=True)
            ]
            out.append(("  " + "  ".join(cells)).rstrip())
        caption = section.caption()
        if caption:
            out.append("  " + caption)
    return "\n".join(out)


# -- rich --------------------------------------------------------------------------------------


def _rich_renderable(frame: Frame) -> Any:
    from rich import box
    from rich.console import Group
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    parts: list[Any] = []
    for section in frame:
        if parts:
            parts.append(Text(""))
        if isinstance(section, Block):
            lines = []
            for line in section.lines:
                text = Text()
                for piece in line:
                    if isinstance(piece, Bar):
                        filled = max(0, min(piece.width, round(piece.width * piece.fraction)))
                        text.append("█" * filled, style="cyan")
                        text.append("░" * (piece.width - filled), style="dim")
                    else:
                        text.append(piece.text, style=STYLES.get(piece.style, ""))
                lines.append(text)
            parts.append(
                Panel(Group(*lines), title=section.title, title_align="left", border_style="cyan")
            )
            continue
        table = Table(
            title=section.title,
            title_justify="left",
            title_style="bold",
            box=box.SIMPLE_HEAD,
            show_edge=False,
            caption=section.caption() or None,
            caption_justify="left",
        )
        for i, (column, side) in enumerate(zip(section.columns, section.alignment(), strict=True)):
            table.add_column(column, justify="left" if side == "l" else "right", no_wrap=i == 0)
        for row in section.rows:
            table.add_row(*(Text(cell.text, style=STYLES.get(cell.style, "")) for cell in row))
        parts.append(table)
    return Group(*parts)


def fit(frame: Frame, rows: int, render: Callable[[Frame], str]) -> str:
    """``frame`` rendered in at most ``rows`` lines if it can be: the grids that may shrink
    (those with a ``noun``: workers, failures) lose rows, the longest first, and say how many
    they hide; the overview and the stages are kept whole. Still too tall: the text as is."""
    text = render(frame)
    while (excess := text.count("\n") + 1 - rows) > 0:
        shrinkable = [
            (len(s.rows), i)
            for i, s in enumerate(frame)
            if isinstance(s, Grid) and s.noun and s.rows
        ]
        if not shrinkable:
            break
        _, i = max(shrinkable)
        grid = frame[i]
        assert isinstance(grid, Grid)
        # One row more when the grid gains its "+ N more" line now.
        drop = excess + (0 if grid.caption() else 1)
        frame = (*frame[:i], grid.keep(len(grid.rows) - drop), *frame[i + 1 :])
        text = render(frame)
    return text


def render_rich(frame: Frame, width: int = 80) -> str:
    """The frame as ``rich`` draws it, without colours, ``width`` columns wide."""
    from rich.console import Console

    buffer = io.StringIO()
    console = Console(
        file=buffer,
        width=width,
        color_system=None,
        force_terminal=False,
        force_interactive=False,
        no_color=True,
        highlight=False,
        emoji=False,
    )
    console.print(_rich_renderable(frame))
    return "\n".join(line.rstrip() for line in buffer.getvalue().rstrip("\n").split("\n"))


# -- the screen ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Close:
    lines: tuple[str, ...]
    frame: Frame


class Screen:
    """Where one dashboard's frames go during one run (see the module docstring).

    The event loop calls :meth:`show` (and :meth:`close` at the end); every write to ``stream``
    happens on the screen's own daemon thread, so a slow or stuck terminal never holds up the
    loop. The loop decides *when* a frame is due (with ``clock``, so tests need no timing);
    the thread draws the frames in order, keeping only the latest few if it falls behind.

    Args:
        stream: The output stream (a terminal or not).
        use_rich: Draw with ``rich`` (already resolved: see :func:`resolve_rich`).
        refresh: Most redraws per second on a terminal.
        plain_every: Seconds between frames when ``stream`` is not a terminal.
        clock: Time source for the throttling.
        width: Columns of a frame written to a non-terminal.
        size: The terminal's size (default: asked of ``stream``'s own terminal each frame).

    On a terminal without ``rich`` a frame is drawn in place and never taller than the
    screen less one line, nor wider than it (its grids of workers and failures lose rows to
    fit, saying how many), so a redraw never scrolls and no copy of a frame is left in the
    terminal's scrollback; the last frame is then drawn whole, below which the run's summary
    goes.
    """

    #: Frames the drawing thread may fall behind by before the oldest are dropped.
    BACKLOG = 8
    #: Seconds :meth:`close` waits for the last frame to be written before giving up on a
    #: stream that does not take it (the thread is a daemon: it never holds up exit).
    GRACE = 2.0

    def __init__(
        self,
        stream: TextIO,
        *,
        use_rich: bool,
        refresh: float,
        plain_every: float,
        clock: Callable[[], float],
        width: int = 80,
        size: Callable[[], os.terminal_size] | None = None,
    ) -> None:
        self.stream = stream
        self._size = size
        self.use_rich = use_rich
        isatty = getattr(stream, "isatty", None)
        self.live = bool(isatty and isatty())
        self._interval = 1.0 / refresh if self.live else plain_every
        self._clock = clock
        self._width = width
        self._last_post = -float("inf")
        self._frame: Frame = ()
        self._posted: Frame | None = None  # the last frame handed to the thread
        self._backlog: deque[Frame | _Close] = deque()
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None
        # Touched by the drawing thread only:
        self._height = 0  # lines of the frame drawn in place (plain terminal mode)
        self._rich_live: Any = None
        self._broken = False

    # -- the event loop's side -------------------------------------------------------------------

    def start(self, frame: Frame) -> None:
        """Start the drawing thread; on a terminal, show ``frame`` at once."""
        self._frame = frame
        self._thread = threading.Thread(target=self._draw_all, name="flowweaver-dashboard")
        self._thread.daemon = True
        self._thread.start()
        if self.live:
            self._post(frame)

    def show(self, frame: Frame) -> None:
        """Make ``frame`` the current one; hand it to the thread if the last one is old enough."""
        self._frame = frame
        now = self._clock()
        if now - self._last_post >= self._interval:
            self._last_post = now
            self._post(frame)

    async def close(self, lines: Sequence[str]) -> None:
        """Draw the last frame (unless it was the last one drawn), then ``lines`` below it;
        wait (without blocking the loop, at most :attr:`GRACE` seconds) until they are out."""
        self._post(_Close(tuple(lines), self._frame))
        thread, self._thread = self._thread, None
        if thread is not None:
            await asyncio.to_thread(thread.join, self.GRACE)
            if thread.is_alive():
                logger.warning(
                    "the dashboard's output stream took no data for %.1f s; leaving it behind",
                    self.GRACE,
                )

    def _post(self, item: Frame | _Close) -> None:
        if not isinstance(item, _Close):
            self._posted = item
        with self._wake:
            backlog = self._backlog
            if len(backlog) >= self.BACKLOG and not isinstance(item, _Close):
                backlog.popleft()  # the drawing thread is behind: the oldest frame is stale
            backlog.append(item)
            self._wake.notify()

    # -- the drawing thread's side -----------------------------------------------------------------

    def _draw_all(self) -> None:
        while True:
            with self._wake:
                while not self._backlog:
                    self._wake.wait()
                item = self._backlog.popleft()
            closing = isinstance(item, _Close)
            if not self._broken:
                try:
                    if isinstance(item, _Close):
                        self._finish(item)
                    else:
                        self._draw(item)
                except Exception:
                    self._broken = True
                    logger.exception("the dashboard could not draw; it stops drawing for this run")
            if closing:
                return

    def _terminal_size(self) -> os.terminal_size:
        if self._size is not None:
            return self._size()
        try:  # the stream's own terminal: standard output may be redirected elsewhere
            return os.get_terminal_size(self.stream.fileno())
        except (AttributeError, OSError, ValueError):
            return shutil.get_terminal_size((self._width, 24))

    def _draw(self, frame: Frame, final: bool = False) -> None:
        if self.live and self.use_rich:
            if self._rich_live is None:
                self._rich_live = _start_rich_live(self.stream)
            self._rich_live.update(_rich_renderable(frame), refresh=True)
            return
        if not self.live:  # a log or a file: the fixed width, every frame whole
            text = render_rich(frame, self._width) if self.use_rich else render_plain(frame)
            self.stream.write(text + "\n\n")
            self.stream.flush()
            return
        # Redraw in place: back to the frame's first line, clear below, write. A frame fits
        # the screen less one line (the cursor's), its lines cut to the width, so none wraps
        # or scrolls and the line count stays right; the final frame is written whole.
        size = self._terminal_size()
        columns = max(size.columns - 1, 10)
        if final:
            rows = [row[:columns] for row in render_plain(frame).split("\n")]
        else:
            text = fit(frame, max(size.lines - 1, 3), render_plain)
            rows = [row[:columns] for row in text.split("\n")][: max(size.lines - 1, 3)]
        up = f"\033[{self._height}F" if self._height else ""
        self.stream.write(up + "\033[J" + "\n".join(rows) + "\n")
        self._height = len(rows)
        self.stream.flush()

    def _finish(self, close: _Close) -> None:
        if self.live and self.use_rich:
            self._draw(close.frame)  # the live display shows the last frame, then stops
            live, self._rich_live = self._rich_live, None
            live.stop()
        elif self.live:
            self._draw(close.frame, final=True)  # whole, over the fitted one
        elif self._posted is not close.frame:
            self._draw(close.frame)
        for line in close.lines:
            self.stream.write(line + "\n")
        self.stream.flush()


def _start_rich_live(stream: TextIO) -> Any:
    from rich.console import Console
    from rich.live import Live

    # No refresh thread of rich's own: the screen's thread refreshes it when a frame is due.
    live = Live(console=Console(file=stream), auto_refresh=False)
    live.start()
    return live


def default_stream(stream: TextIO | None) -> TextIO:
    """``stream``, or standard error as it is now (so redirections made later still count)."""
    return stream if stream is not None else sys.stderr
