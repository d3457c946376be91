"""Opt-in logging output and progress lines."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
from collections.abc import Iterator

import pytest

from flowweaver import LogLevel, SequentialExecutor, Task, Workflow, configure_logging
from flowweaver._progress import ProgressLine


@pytest.fixture
def restore_logging() -> Iterator[None]:
    logger = logging.getLogger("flowweaver")
    handlers, level = list(logger.handlers), logger.level
    yield
    logger.handlers[:] = handlers
    logger.setLevel(level)


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_importing_flowweaver_configures_nothing_and_prints_nothing() -> None:
    code = (
        "import logging, flowweaver\n"
        "logger = logging.getLogger('flowweaver')\n"
        "print(len(logger.handlers), logger.level, logging.getLevelName(25))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert (done.stdout, done.stderr) == ("0 0 Level 25\n", "")


def test_text_output_with_seed_layout(restore_logging: None) -> None:
    stream = io.StringIO()
    logger = configure_logging(level=LogLevel.INFO, use_colors=True, stream=stream)
    assert logger is logging.getLogger("flowweaver")
    logger.log(LogLevel.SUCCESS, "Task completed successfully.", extra={"task": "load"})
    logger.log(LogLevel.SYSTEM, "Worker released.")
    logger.debug("hidden at INFO")
    lines = stream.getvalue().splitlines()
    # Not a terminal: no color codes even though use_colors=True.
    assert [line[10:] for line in lines] == [
        "[SUCCESS] Task completed successfully.  task=load",
        "[SYSTEM] Worker released.",
    ]


def test_colors_on_a_terminal_and_no_color_wins(
    restore_logging: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    tty = Tty()
    configure_logging(stream=tty).warning("careful")
    assert "\033[33m[WARN]\033[0m careful" in tty.getvalue()
    monkeypatch.setenv("NO_COLOR", "1")
    plain = Tty()
    configure_logging(stream=plain).warning("careful")
    assert "[WARN] careful" in plain.getvalue()
    assert "\033[" not in plain.getvalue()


def test_json_lines_carry_context(restore_logging: None) -> None:
    stream = io.StringIO()
    configure_logging(level=LogLevel.DEBUG, json_output=True, stream=stream)
    wf = Workflow("etl")
    wf.add_task(Task(name="load", fn=lambda: 1))
    run = SequentialExecutor().execute(wf)
    entries = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert {"timestamp", "level", "logger", "message"} <= set(entries[0])
    assert all((e["workflow"], e["run_id"]) == ("etl", run.run_id) for e in entries)
    task_lines = [e for e in entries if e.get("task") == "load"]
    assert [(e["message"], e.get("attempt")) for e in task_lines] == [
        ("task 'load': attempt 1 started", 1),
        ("task 'load': completed", None),
    ]
    assert all(e["logger"].startswith("flowweaver") for e in entries)


def test_configuring_twice_replaces_the_handler(restore_logging: None) -> None:
    first, second = io.StringIO(), io.StringIO()
    configure_logging(stream=first)
    configure_logging(stream=second)
    logging.getLogger("flowweaver").info("once")
    assert first.getvalue() == ""
    assert second.getvalue().count("once") == 1


def test_progress_line_on_a_terminal_redraws_in_place() -> None:
    now = [0.0]
    tty = Tty()
    line = ProgressLine("etl", 4, tty, clock=lambda: now[0])
    now[0] = 1.0
    line.update(2)
    now[0] = 1.01  # too soon to redraw
    line.update(3)
    now[0] = 2.0
    line.update(4, failed=1)
    line.close()
    frames = tty.getvalue().split("\r")[1:]
    assert frames[0] == "etl  [############------------]  2/4  50%  2.0 tasks/s  ETA 0:00:01\033[K"
    assert frames[1].startswith(
        "etl  [########################]  4/4 100%  2.0 tasks/s  in 0:00:02"
    )
    assert frames[1].endswith("1 failed\033[K")
    assert len(frames) == 3  # two throttled updates drawn, plus the final draw
    assert tty.getvalue().endswith("\n")


def test_progress_when_not_a_terminal_prints_plain_lines() -> None:
    now = [0.0]
    out = io.StringIO()
    line = ProgressLine("etl", None, out, unit="items", plain_every=5.0, clock=lambda: now[0])
    for i in range(1, 101):
        now[0] = i * 0.1  # 10 s in all: one line at the start, one after 5 s
        line.update(i)
    line.close()
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    assert lines[-1] == "etl  100 items  10.0 items/s  in 0:00:10"
    assert len(lines) == 3


def test_workflow_progress_option_draws_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    wf = Workflow("etl")
    wf.add_task(Task(name="a", fn=lambda: 1))
    wf.add_task(Task(name="b", fn=lambda: 1 / 0))
    wf.add_task(Task(name="c", fn=lambda a: a), depends_on=["a"])
    with pytest.raises(RuntimeError):
        SequentialExecutor().execute(wf, progress=True)
    err = capsys.readouterr().err
    # a ran, b failed, c was cancelled (fail-fast): the line shows where the run stopped.
    assert err.splitlines()[-1].startswith("etl  [################--------]  2/3  66%")
    assert err.splitlines()[-1].endswith("1 failed  1 not run  stopped")


def test_progress_line_of_a_stopped_stream_counts_what_never_ran_or_started() -> None:
    now = [0.0]
    out = io.StringIO()
    line = ProgressLine("pipeline", 10, out, unit="items", not_run_label="cancelled",
                        clock=lambda: now[0])  # fmt: skip
    now[0] = 1.0
    line.update(6, failed=1, not_run=2)  # 4 ran (1 failed), 2 cancelled, 4 never fed
    line.close()
    assert out.getvalue().splitlines()[-1] == (
        "pipeline  [#########---------------]  4/10  40%  4.0 items/s  in 0:00:01  1 failed  "
        "2 cancelled  4 not started  stopped"
    )


def test_flowkit_seed_logging_example(
    restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    # The seed's "Structured Logging" example, with only the import changed.
    from flowweaver import LogLevel, configure_logging

    # Configure colored logging (default)
    configure_logging(level=LogLevel.INFO, use_colors=True)

    # Or JSON output for log aggregation
    configure_logging(level=LogLevel.DEBUG, json_output=True)

    logging.getLogger("flowweaver.example").log(LogLevel.SUCCESS, "Task completed successfully.")
    entry = json.loads(capsys.readouterr().err.splitlines()[-1])
    assert (entry["level"], entry["message"]) == ("SUCCESS", "Task completed successfully.")
    assert [level.name for level in LogLevel] == [
        "DEBUG", "INFO", "SYSTEM", "SUCCESS", "WARNING", "ERROR",
    ]  # fmt: skip
