"""The built-in displays: progress line, compact/detailed/full dashboards, with and without rich.

Frames are rendered from hand-made snapshots with a fixed width and an injected clock, so the
expected text is exact; runs use a clock whose sleeps never end, so the dashboard is polled
exactly once (at the end) whatever the machine's speed.
"""

from __future__ import annotations

import asyncio
import io
import re
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any, Literal, cast

import pytest

from flowweaver import (
    CompactDashboard,
    ConfigurationError,
    DashboardSnapshot,
    DetailedDashboard,
    ErrorSummary,
    FailedItem,
    FullDashboard,
    MissingDependencyError,
    Pipeline,
    PipelineStats,
    Stage,
    StageStats,
    WorkerMetrics,
    WorkerState,
    WorkerStatus,
)
from flowweaver._dashboard import DISPLAYS
from flowweaver._dashboard_render import Block, Frame, Grid, Screen
from flowweaver._dashboards import PipelineProgress
from flowweaver._pipeline_stats import RECENT_FAILURES

from .conftest import WAIT, FakeClock, run

DashboardName = Literal["compact", "detailed", "full"]
T0 = 1_000.0
BOARDS = {"compact": CompactDashboard, "detailed": DetailedDashboard, "full": FullDashboard}
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class NeverClock(FakeClock):
    """Dashboard intervals never elapse: the poller calls on_update once, at the end."""

    async def sleep_async(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        await asyncio.Event().wait()


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


class Shape:
    """What on_start reads from a pipeline: its stages."""

    stages = (Stage("Fetch", 2, [str]), Stage("Save", 1, [str]))


@pytest.fixture(params=["rich", "plain"])
def rich_mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    """Each test twice: with rich installed (the dev extra has it), and with it unimportable."""
    if request.param == "rich":
        import rich  # noqa: F401  # a missing dev extra fails here, loudly

        return True
    for name in [n for n in sys.modules if n == "rich" or n.startswith("rich.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "rich", None)
    return False


def snapshot(failed: int = 6) -> DashboardSnapshot:
    """Ten seconds into a run of 100 items: 30 done, ``failed`` failed, two workers busy."""
    states = {
        "Fetch-W0": WorkerState("Fetch-W0", "Fetch", WorkerStatus.BUSY, "url-7", T0 + 8.0, "fetch"),
        "Fetch-W1": WorkerState("Fetch-W1", "Fetch", WorkerStatus.IDLE),
        "Save-W0": WorkerState("Save-W0", "Save", WorkerStatus.BUSY, 3, T0 + 9.5, "save"),
    }
    metrics = {
        "Fetch-W0": WorkerMetrics("Fetch-W0", "Fetch", 20, 4, 5.0, T0 + 7.0),
        "Fetch-W1": WorkerMetrics("Fetch-W1", "Fetch", 16, 2, 3.0, T0 + 8.0),
        "Save-W0": WorkerMetrics("Save-W0", "Save", 30, 0, 1.5, T0 + 9.0),
    }
    stages = {
        "Fetch": StageStats("Fetch", 4, 1, 36, failed),
        "Save": StageStats("Save", 2, 1, 30, 0),
    }
    stats = PipelineStats(30, failed, 8, {"Fetch": 4, "Save": 2}, stages)
    failures = tuple(
        FailedItem(f"url-{i}", "Fetch", ValueError(f"HTTP 50{i}"), 3, T0 + i) for i in range(failed)
    )
    return DashboardSnapshot(states, metrics, stats, T0 + 10.0, failures)


OVERVIEW = """\
flowweaver pipeline: Fetch -> Save
  [###########-------------------]  36/100  36%
  active: Fetch 1/2 busy, Save 1/1 busy
  rate 3.6 items/s  ETA 0:00:17  elapsed 0:00:10
  ok 30  failed 6  in flight 2  queued 6  remaining 64"""

STAGES = """\
Stages
  stage  busy  queued  done  failed  time/item
  Fetch   1/2       4    36       6    0.222 s
  Save    1/1       2    30       0    0.050 s"""

WORKERS = """\
Workers
  worker    state  item   task     for  done  failed  time/item
  Fetch-W0  busy   url-7  fetch  2.0 s    20       4    0.250 s
  Save-W0   busy   3      save   0.5 s    30       0    0.050 s
  Fetch-W1  idle   -      -          -    16       2    0.188 s"""

FAILURES = """\
Latest failures (5 of 6)
  item   stage  error                 attempts
  url-1  Fetch  ValueError: HTTP 501         3
  url-2  Fetch  ValueError: HTTP 502         3
  url-3  Fetch  ValueError: HTTP 503         3
  url-4  Fetch  ValueError: HTTP 504         3
  url-5  Fetch  ValueError: HTTP 505         3"""

NO_ACTIVE = OVERVIEW.replace("  active: Fetch 1/2 busy, Save 1/1 busy\n", "")
PLAIN = {
    "compact": OVERVIEW,
    "detailed": f"{NO_ACTIVE}\n\n{STAGES}",
    "full": f"{NO_ACTIVE}\n\n{STAGES}\n\n{WORKERS}\n\n{FAILURES}",
}


def words(text: str) -> list[str]:
    """Each line's words, without colours and box-drawing borders (rules dropped): the same
    for rich and plain output."""
    lines = (" ".join(line.split()).strip("│╭╮╰╯─ ") for line in ANSI.sub("", text).splitlines())
    return [line for line in lines if line]


def without_bars(lines: list[str]) -> list[str]:
    return [line for line in lines if not line.startswith(("[", "█", "░"))]


def board_for(kind: str, stream: io.StringIO | None = None, **options: Any) -> Any:
    board = BOARDS[kind](stream if stream is not None else io.StringIO(), **options)
    board.on_start(Shape(), 100)
    return board


@pytest.mark.parametrize("kind", ["compact", "detailed", "full"])
def test_each_dashboard_renders_a_snapshot(kind: str, rich_mode: bool) -> None:
    board = board_for(kind, clock=lambda: T0)
    assert board.use_rich is rich_mode
    text = board.render(snapshot(), width=80)
    if not rich_mode:
        assert text == PLAIN[kind]
        return
    # rich draws the same words, in a panel and tables, within the width.
    assert without_bars(words(text)) == without_bars(words(PLAIN[kind]))
    assert text.splitlines()[0].startswith("╭─ flowweaver pipeline: Fetch -> Save ─")
    assert "███████████░░░░░░░░░░░░░░░░░░░  36/100  36%" in text
    assert max(len(line) for line in text.splitlines()) <= 80


def test_without_a_total_the_overview_counts_items(rich_mode: bool) -> None:
    board = CompactDashboard(io.StringIO(), clock=lambda: T0)
    board.on_start(Shape(), None)
    assert words(board.render(snapshot()))[1:4] == [
        "36 items done",
        "active: Fetch 1/2 busy, Save 1/1 busy",
        "rate 3.6 items/s elapsed 0:00:10",
    ]
    assert "ok 30 failed 6 in flight 2 queued 6" in words(board.render(snapshot()))


def test_a_worker_busy_with_an_item_whose_id_is_none_is_shown_busy() -> None:
    # Dict items may carry any id, None included: a worker's status says whether it is busy.
    snap = snapshot()
    states = dict(snap.worker_states)
    states["Save-W0"] = WorkerState("Save-W0", "Save", WorkerStatus.BUSY, None, T0 + 9.5, "save")
    board = board_for("full", use_rich=False, clock=lambda: T0, max_workers_shown=2)
    text = board.render(
        DashboardSnapshot(states, snap.worker_metrics, snap.pipeline_stats, T0 + 10.0)
    )
    workers = text.split("Workers\n")[1].splitlines()
    assert [line.split() for line in workers] == [
        ["worker", "state", "item", "task", "for", "done", "failed", "time/item"],
        ["Fetch-W0", "busy", "url-7", "fetch", "2.0", "s", "20", "4", "0.250", "s"],
        ["Save-W0", "busy", "None", "save", "0.5", "s", "30", "0", "0.050", "s"],
        ["+", "1", "more", "worker", "(2", "busy", "in", "all)"],
    ]


@pytest.mark.parametrize("kind", ["compact", "detailed", "full"])
def test_a_run_draws_the_last_frame_and_a_summary(
    kind: str, rich_mode: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    async def check(x: int) -> int:
        if x in (1, 4):
            raise ValueError(f"bad {x}")
        return x

    pipeline = Pipeline(
        [Stage("Fetch", 2, [check], task_attempts=1), Stage("Save", 1, [str])], clock=NeverClock()
    )
    results = run(pipeline.run(range(6), dashboard=cast("DashboardName", kind)))
    assert [r.value for r in results] == ["0", "2", "3", "5"]
    err = capsys.readouterr().err
    if not rich_mode:
        assert sys.modules.get("rich") is None  # still unimportable: nothing imported it
    assert ("╭─ flowweaver pipeline: Fetch -> Save" in err) is rich_mode
    lines = words(err)
    assert "ok 4 failed 2 in flight 0 queued 0 remaining 0" in lines
    assert re.fullmatch(
        r"pipeline finished in \d+\.\d\d s: 4 succeeded, 2 failed \(ValueError 2\)", lines[-1]
    )
    if kind != "compact":
        stages = [line for line in lines if re.fullmatch(r"\w+ 0/\d 0 4 \d \d\.\d{3} s", line)]
        assert [line.split()[:5] for line in stages] == [
            ["Fetch", "0/2", "0", "4", "2"],
            ["Save", "0/1", "0", "4", "0"],
        ]
    if kind == "full":
        assert "Latest failures (2 of 2)" in lines
        assert sum(line.endswith(" 1") and " Fetch ValueError: bad " in line for line in lines) == 2


def test_in_a_terminal_without_rich_the_frame_is_redrawn_in_place(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "rich", None)
    now = [T0]
    tty = Tty()
    board = CompactDashboard(tty, refresh=4.0, clock=lambda: now[0])

    async def main() -> None:
        board.on_start(Shape(), 100)  # a terminal shows a first frame at once
        now[0] = T0 + 1.0
        board.on_update(snapshot(failed=2))  # drawn
        now[0] = T0 + 1.1
        board.on_update(snapshot(failed=3))  # within 1/4 s: not drawn
        now[0] = T0 + 2.0
        board.on_update(snapshot(failed=4))  # drawn
        await board.on_finish([], _summary(4))  # the last frame again, whole, then the summary

    run(main())
    out = tty.getvalue()
    frames = out.split("\033[J")
    assert frames[0] == ""
    assert frames[1] == "flowweaver pipeline: Fetch -> Save\n  starting…\n\033[2F"
    assert "  ok 30  failed 2  in flight 2  queued 6  remaining 68\n\033[5F" in frames[2]
    assert "failed 3" not in out
    assert frames[3].startswith("flowweaver pipeline: Fetch -> Save\n  [##########")
    assert frames[3].endswith("  ok 30  failed 4  in flight 2  queued 6  remaining 66\n\033[5F")
    assert frames[4] == frames[3].removesuffix("\033[5F") + (
        "pipeline finished in 10.00 s: 30 succeeded, 4 failed (ValueError 4)\n"
    )
    assert len(frames) == 5


def test_in_a_terminal_with_rich_a_live_display_draws_and_stops() -> None:
    tty = Tty()
    before = set(threading.enumerate())
    board = CompactDashboard(tty, use_rich=True, clock=lambda: T0)

    async def main() -> None:
        board.on_start(Shape(), 100)
        board.on_update(snapshot())
        await board.on_finish([], _summary())

    run(main())
    text = ANSI.sub("", tty.getvalue())
    assert "flowweaver pipeline: Fetch -> Save" in text
    assert "36/100  36%" in text
    assert text.endswith("pipeline finished in 10.00 s: 30 succeeded, 6 failed (ValueError 6)\n")
    assert [t for t in threading.enumerate() if t not in before] == []  # drawing thread ended


class StuckTerminal(Tty):
    """A terminal that stops taking output once ``stuck`` is set, until ``release`` is."""

    def __init__(self) -> None:
        super().__init__()
        self.stuck = threading.Event()
        self.blocked = threading.Event()
        self.release = threading.Event()

    def write(self, text: str) -> int:
        if self.stuck.is_set():
            self.blocked.set()
            self.release.wait()
        return super().write(text)


def test_a_stuck_terminal_never_blocks_the_event_loop(rich_mode: bool) -> None:
    term = StuckTerminal()
    # Were the loop to block in on_update, only this would free it (and the test then fails).
    rescue = threading.Timer(WAIT, term.release.set)
    rescue.start()
    now = [T0]
    board = FullDashboard(term, clock=lambda: now[0])
    loop_turns = 0

    async def spin() -> None:
        nonlocal loop_turns
        while True:
            loop_turns += 1
            await asyncio.sleep(0)

    async def main() -> None:
        board.on_start(Shape(), 100)
        term.stuck.set()
        for step in range(1, 13):
            now[0] = T0 + step  # each update is due: each is handed to the drawing thread
            board.on_update(snapshot(failed=step))
        # The drawing thread is stuck in write(); the loop still runs other tasks.
        assert await asyncio.to_thread(term.blocked.wait, WAIT)
        spinner = asyncio.ensure_future(spin())
        for _ in range(100):
            await asyncio.sleep(0)
        spinner.cancel()
        assert not term.release.is_set()
        term.release.set()
        await board.on_finish([], _summary(12))

    run(main())
    rescue.cancel()
    assert loop_turns >= 50
    out = words(term.getvalue())
    assert out[-1] == "pipeline finished in 10.00 s: 30 succeeded, 12 failed (ValueError 12)"
    if not rich_mode:
        # Behind a stuck terminal, only the latest frames wait to be drawn; the last is drawn.
        assert term.getvalue().count("\033[J") <= 2 + Screen.BACKLOG
        assert "Latest failures (5 of 12)" in out


def test_a_cancelled_run_still_ends_its_dashboard(rich_mode: bool) -> None:
    started = asyncio.Event()

    async def forever(x: int) -> int:
        started.set()
        await asyncio.Event().wait()
        return x

    out = io.StringIO()
    before = set(threading.enumerate())
    pipeline = Pipeline([Stage("S", 1, [forever])], clock=NeverClock())

    async def main() -> None:
        running = asyncio.ensure_future(
            pipeline.run([1, 2], custom_dashboard=DetailedDashboard(out))
        )
        await started.wait()
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running

    run(main())
    assert words(out.getvalue())[-1].endswith(" s: 0 succeeded, 0 failed, 2 cancelled")
    assert words(out.getvalue())[-1].startswith("pipeline interrupted after ")
    # No thread the run started is left (other tests' threads may come and go meanwhile).
    assert [t for t in threading.enumerate() if t not in before and t.is_alive()] == []


def test_a_dashboard_that_cannot_draw_is_disabled_and_the_run_goes_on(
    rich_mode: bool, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken(io.StringIO):
        def write(self, text: str) -> int:
            raise OSError("stream closed")

    pipeline = Pipeline([Stage("S", 2, [str])], clock=NeverClock())
    with caplog.at_level("ERROR", logger="flowweaver"):
        results = run(pipeline.run(range(3), custom_dashboard=FullDashboard(Broken())))
    assert [r.value for r in results] == ["0", "1", "2"]
    assert [r.getMessage() for r in caplog.records] == [
        "the dashboard could not draw; it stops drawing for this run"
    ]


def _summary(failed: int = 6) -> ErrorSummary:
    return ErrorSummary(failed, {"ValueError": failed}, {"Fetch": failed}, [])


def _size(frame: Frame) -> int:
    """How much a frame holds: pieces of text in blocks, cells in tables."""
    size = 0
    for section in frame:
        if isinstance(section, Block):
            size += sum(len(line) for line in section.lines)
        else:
            assert isinstance(section, Grid)
            size += len(section.columns) * (1 + len(section.rows))
    return size


@pytest.mark.parametrize("kind", ["compact", "detailed", "full"])
def test_render_cost_does_not_grow_with_the_number_of_items(kind: str) -> None:
    async def check(x: int) -> int:
        if x % 4 == 0:
            raise ValueError(f"bad {x}")
        return x

    seen = []
    for n in (20, 800):
        board = BOARDS[kind](io.StringIO(), use_rich=False)
        frames: list[Frame] = []
        build: Callable[[DashboardSnapshot], Frame] = board.frame

        def recording(
            snap: DashboardSnapshot,
            build: Callable[[DashboardSnapshot], Frame] = build,
            frames: list[Frame] = frames,
        ) -> Frame:
            frames.append(build(snap))
            return frames[-1]

        setattr(board, "frame", recording)  # noqa: B010 - record each frame the board builds
        pipeline = Pipeline(
            [Stage("Fetch", 3, [check], task_attempts=1), Stage("Save", 2, [str])],
            clock=NeverClock(),
        )
        run(pipeline.run(range(n), custom_dashboard=board))
        snap = pipeline.get_dashboard_snapshot()
        assert snap.pipeline_stats.items_failed == n // 4
        assert len(snap.recent_failures) == min(n // 4, RECENT_FAILURES)
        assert len(frames) == 1  # polled once, at the end: nothing is drawn per item
        seen.append((_size(frames[0]), len(board.render(snap).splitlines())))
    assert seen[0] == seen[1]


def test_progress_true_uses_the_progress_line(capsys: pytest.CaptureFixture[str]) -> None:
    pipeline = Pipeline([Stage("S", 2, [str])], clock=NeverClock())
    run(pipeline.run(range(5), progress=True))
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1  # not a terminal: one plain line (the last state is not repeated)
    assert err[0].startswith("pipeline  [########################]  5/5 100%  ")
    assert re.search(r"  [\d,.]+ items/s  in 0:00:00$", err[0])


def test_progress_of_a_stream_fed_from_a_generator_has_no_total(
    capsys: pytest.CaptureFixture[str],
) -> None:
    async def check(x: int) -> int:
        if x == 2:
            raise ValueError("bad")
        return x

    pipeline = Pipeline([Stage("S", 2, [check], task_attempts=1)], clock=NeverClock())

    async def consume() -> int:
        return len([r async for r in pipeline.stream((i for i in range(6)), progress=True)])

    assert run(consume()) == 6
    err = capsys.readouterr().err.splitlines()
    assert re.fullmatch(r"pipeline  6 items  [\d,.]+ items/s  in 0:00:00  1 failed", err[-1])


def test_no_display_writes_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    pipeline = Pipeline([Stage("S", 2, [str])])
    assert len(run(pipeline.run(range(5)))) == 5
    assert capsys.readouterr() == ("", "")


def test_the_progress_line_on_a_terminal_is_redrawn_in_place() -> None:
    tty = Tty()
    progress = PipelineProgress(tty)
    progress.on_start(Shape(), 100)
    progress.on_update(snapshot())
    progress.on_finish([], _summary())
    frames = tty.getvalue().split("\r")
    assert frames[0] == ""
    assert frames[1].startswith("pipeline  [########----------------]  36/100  36%  ")
    assert frames[-1].endswith("  6 failed  64 not started  stopped\033[K\n")
    assert len(frames) == 3  # drawn, then drawn a last time in place


def test_dashboard_options_are_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigurationError) as info:
        CompactDashboard(refresh=0)
    assert str(info.value) == "refresh must be a finite number > 0, got 0"
    with pytest.raises(ConfigurationError) as info:
        FullDashboard(max_workers_shown=2.5)  # type: ignore[arg-type]
    assert str(info.value) == "max_workers_shown must be an int > 0, got 2.5"
    with pytest.raises(ConfigurationError) as info:
        DetailedDashboard(use_rich="yes")  # type: ignore[arg-type]
    assert str(info.value) == "use_rich must be True, False or None, got 'yes'"
    monkeypatch.setitem(sys.modules, "rich", None)
    with pytest.raises(MissingDependencyError) as missing:  # an ImportError, like every extra
        CompactDashboard(use_rich=True)
    assert str(missing.value) == (
        "a dashboard with use_rich=True needs the 'rich' extra: pip install 'flowweaver[rich]'"
    )
    assert CompactDashboard().use_rich is False  # by default: plain text without rich


def test_built_in_displays_by_name() -> None:
    assert dict(DISPLAYS) == {
        "progress": PipelineProgress,
        "compact": CompactDashboard,
        "detailed": DetailedDashboard,
        "full": FullDashboard,
    }


def test_importing_flowweaver_does_not_import_rich() -> None:
    code = (
        "import sys, flowweaver\n"
        "flowweaver.CompactDashboard(use_rich=False).render\n"
        "print('rich' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout == "False\n"


class Terminal:
    """Just enough of a terminal to count what a redraw pushes into the scrollback: a screen
    of ``lines`` rows, a cursor row, ``ESC[nF`` (up n lines, never above the top), ``ESC[J``
    and ``ESC[K`` (clear), and a newline on the last row scrolls the top row away."""

    def __init__(self, lines: int) -> None:
        self.lines = lines
        self.row = 0
        self.scrolled = 0

    def feed(self, text: str) -> None:
        for token in re.split(r"(\x1b\[\d*[A-Za-z]|\n)", text):
            if token == "\n":
                if self.row == self.lines - 1:
                    self.scrolled += 1
                else:
                    self.row += 1
            elif token.startswith("\x1b[") and token.endswith("F"):
                self.row = max(self.row - int(token[2:-1] or 1), 0)


def _big_snapshot(workers: int, failed: int) -> DashboardSnapshot:
    states = {
        f"Fetch-W{i}": WorkerState(f"Fetch-W{i}", "Fetch", WorkerStatus.BUSY, i, T0 + 9.0, "fetch")
        for i in range(workers)
    }
    metrics = {name: WorkerMetrics(name, "Fetch", 3, 0, 0.3, T0 + 9.0) for name in states}
    stages = {
        "Fetch": StageStats("Fetch", 10, workers, 30, failed),
        "Save": StageStats("Save", 0, 0, 0, 0),
    }
    stats = PipelineStats(30, failed, workers + 10, {"Fetch": 10, "Save": 0}, stages)
    failures = tuple(
        FailedItem(f"url-{i}", "Fetch", ValueError(f"HTTP 50{i}"), 3, T0 + i) for i in range(failed)
    )
    return DashboardSnapshot(states, metrics, stats, T0 + 10.0, failures)


class BigShape:
    stages = (Stage("Fetch", 12, [str]), Stage("Save", 1, [str]))


@pytest.mark.parametrize(("columns", "lines"), [(80, 24), (140, 40)])
def test_full_dashboard_without_rich_fits_the_terminal_and_ends_whole(
    monkeypatch: pytest.MonkeyPatch, columns: int, lines: int
) -> None:
    monkeypatch.setitem(sys.modules, "rich", None)
    monkeypatch.setenv("COLUMNS", str(columns))
    monkeypatch.setenv("LINES", str(lines))
    now = [T0]
    tty = Tty()
    board = FullDashboard(tty, refresh=4.0, clock=lambda: now[0])

    async def main() -> None:
        board.on_start(BigShape(), 100)
        for k in range(1, 6):
            now[0] = T0 + k
            board.on_update(_big_snapshot(12, failed=5))
        await board.on_finish([], _summary(5))

    run(main())
    out = tty.getvalue()
    frames = out.split("\033[J")[1:]
    live, final = frames[:-1], frames[-1]
    for frame in live:
        shown = ANSI.sub("", frame).split("\n")[:-1]
        assert len(shown) <= lines - 1  # never taller than the screen: a redraw never scrolls
        assert max(map(len, shown)) <= columns - 1
        if "Stages" in shown:
            assert "Stages" in shown and any(r.startswith("Latest failures") for r in shown)
            assert any(r.startswith("  + ") and "more worker" in r for r in shown) == (
                lines < 40
            )  # the workers make room on a small screen, and say how many they hide
    terminal = Terminal(lines)
    terminal.feed("".join("\033[J" + f for f in live))
    assert terminal.scrolled == 0  # no frame was pushed into the scrollback
    whole = board.render(_big_snapshot(12, failed=5))
    assert ANSI.sub("", final).startswith(whole + "\n")  # the last frame whole, then the summary
    assert "Fetch-W11" in final and final.endswith("failed (ValueError 5)\n")


class GateClock(FakeClock):
    """A retry's wait lasts until the test opens the gate."""

    def __init__(self) -> None:
        super().__init__()
        self.waiting = asyncio.Event()
        self.gate = asyncio.Event()

    async def sleep_async(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.waiting.set()
        await self.gate.wait()


def test_a_worker_waiting_out_a_retry_is_shown_retrying_with_its_attempt(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "rich", None)
    failed_once: list[int] = []

    def flaky(x: int) -> int:
        if not failed_once:
            failed_once.append(x)
            raise ConnectionError("try again")
        return x

    async def main() -> tuple[WorkerState, DashboardSnapshot, str, WorkerState]:
        clock = GateClock()
        pipeline = Pipeline([Stage("Fetch", 1, [flaky], task_attempts=3)], clock=clock)
        await pipeline.start()
        await pipeline.feed([7])
        await asyncio.wait_for(clock.waiting.wait(), WAIT)
        during = pipeline.get_worker_states()["Fetch-W0"]
        shot = pipeline.get_dashboard_snapshot()
        board = FullDashboard(io.StringIO())
        board.on_start(pipeline, 1)
        text = board.render(shot)
        clock.gate.set()
        await pipeline.join()
        return during, shot, text, pipeline.get_worker_states()["Fetch-W0"]

    during, shot, text, after = asyncio.run(asyncio.wait_for(main(), 30))
    assert (during.status, during.current_item_id) == (WorkerStatus.RETRYING, 0)
    assert shot.retry_attempts == {"Fetch-W0": 2}
    assert "Fetch-W0  retrying (attempt 2)" in text
    assert after.status is WorkerStatus.IDLE


def test_the_progress_line_of_an_interrupted_pipeline_counts_cancelled_apart() -> None:
    out = io.StringIO()
    progress = PipelineProgress(out)
    progress.on_start(Shape(), 100)
    progress.on_update(snapshot(failed=6))  # 30 ok, 6 failed so far
    # Ctrl-C: 8 items inside were cancelled (recorded as ItemCancelledError), 56 never fed.
    summary = ErrorSummary(14, {"ValueError": 6, "ItemCancelledError": 8}, {"Fetch": 14}, [])
    progress.on_finish([], summary)
    assert (
        out.getvalue().splitlines()[-1].endswith("  6 failed  8 cancelled  56 not started  stopped")
    )
    assert "  36/100  36%  " in out.getvalue().splitlines()[-1]  # ran: 30 ok + 6 failed
