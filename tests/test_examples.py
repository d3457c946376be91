"""Every script in examples/ runs to the end (in a subprocess, as a user would run it)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.mark.parametrize("executor", ["sequential", "threaded", "async"])
def test_etl_workflow_example(executor: str) -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "etl_workflow.py"), executor],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "8/8 tasks completed, 2 retries" in done.stdout
    assert "customer_tiers: retry #2" in done.stdout
    assert "gold customers:" in done.stdout


def test_etl_workflow_example_refuses_an_unknown_executor() -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "etl_workflow.py"), "quantum"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "usage:" in done.stderr


def test_resumable_run_example_restores_what_the_first_run_committed() -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "resumable_run.py")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "first run executed 13 steps" in done.stdout
    assert "second run executed 8 steps (step_13 to step_20), restored 12 from the store" in (
        done.stdout
    )


def test_cpu_bound_example_gets_the_same_answer_on_threads_and_processes() -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "cpu_bound_processes.py"), "2"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split()[:2] == ["threads", lines[1].split()[1]]  # same prime count
    assert lines[1].startswith("processes ")


def _run_example(*args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return done


def test_batch_api_example_runs_the_same_batches_both_ways() -> None:
    done = _run_example(
        str(EXAMPLES / "batch_api.py"), "--batches", "12", "--group", "4", "--scale", "0.1",
        "--dashboard", "full",
    )  # fmt: skip
    out = done.stdout.splitlines()
    assert out[0].startswith("12 batches: upload -> check (poll until processed) -> download")
    assert out[0].endswith("at most 4 batches processing at once either way")
    base = re.fullmatch(
        r"batch-by-batch \(asyncio\.gather, groups of 4\): (\d+\.\d\d) s, (.*)", out[3]
    )
    pools = re.fullmatch(
        r"worker pools \(Pipeline: Upload 4, Check 4, Download 4, Save 2\): (\d+\.\d\d) s, (.*)",
        out[4],
    )
    assert base and pools
    # The same batches met the same failures and retries either way: one fails for good.
    assert base.group(2) == pools.group(2)
    assert re.fullmatch(r"11 saved, 1 failed \(batch-\d{3}\), \d+ retries", base.group(2))
    assert re.fullmatch(r"batch-by-batch left slots idle for \d+\.\d\d slot-seconds, .*", out[5])
    ratio = re.fullmatch(r"worker pools finished (\d+\.\d\d)x faster", out[6])
    assert ratio
    expected = float(base.group(1)) / float(pools.group(1))
    assert abs(float(ratio.group(1)) - expected) < 0.05 * expected + 0.01
    # The full dashboard drew the pipeline run on stderr (not a terminal: the last frame).
    err = done.stderr.splitlines()
    assert any("Latest failures (1 of 1)" in line for line in err)
    assert err[-1].startswith("pipeline finished in ")
    assert err[-1].endswith(" s: 11 succeeded, 1 failed (FileNotFoundError 1)")


def test_batch_api_example_refuses_bad_arguments() -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "batch_api.py"), "--batches", "1"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.splitlines()[-1].endswith(
        "error: --batches must be >= 2, --group >= 1 and --scale > 0"
    )


@pytest.mark.parametrize("display", ["compact", "detailed"])
def test_web_scraper_example(display: str) -> None:
    done = _run_example(
        str(EXAMPLES / "web_scraper.py"), "--pages", "40", "--scale", "0.5", "--display", display
    )
    out = done.stdout.splitlines()
    assert out[0] == "scraped 40 pages: 38 stored, 2 failed"
    assert [line.split(": ", 1)[1] for line in out[1:3]] == [
        "HTTPError: /page/19: HTTP 404 (in Fetch, 1 attempt(s))",
        "HTTPError: /page/27: HTTP 404 (in Fetch, 1 attempt(s))",
    ]  # a 404 is not retried
    retries = re.fullmatch(r"retries: \d+ \((.*)\)", out[3])
    assert retries
    assert "ServiceUnavailable" in retries.group(1)
    assert "TaskTimeoutError" in retries.group(1)  # the hanging pages were cancelled
    assert out[4] == "tracker: 38 completed, 2 failed"
    assert out[5] in ("database connections at once: at most 1",
                      "database connections at once: at most 2")  # fmt: skip
    assert done.stderr.splitlines()[-1].startswith("pipeline finished in ")
    assert ("Stages" in done.stderr) is (display == "detailed")


def test_web_scraper_example_streams_with_an_unknown_total() -> None:
    done = _run_example(
        str(EXAMPLES / "web_scraper.py"), "--pages", "40", "--scale", "0.5",
        "--display", "progress", "--stream",
    )  # fmt: skip
    assert done.stdout.splitlines()[0] == "scraped 40 pages: 38 stored, 2 failed"
    assert done.stdout.splitlines()[-1] == "stream() yielded 2 failures as results with .error"
    assert re.fullmatch(
        r"pipeline  40 items  [\d,.]+ items/s  in 0:00:0\d  2 failed", done.stderr.splitlines()[-1]
    )


@pytest.mark.parametrize("executor", ["sequential", "thread", "async"])
def test_word_count_example_maps_over_the_files_it_finds(executor: str) -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "word_count_files.py"), "--executor", executor],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "a.txt: 9 words",
        "b.txt: 10 words",
        "c.txt: 10 words",
        "d.txt: 0 words",
        "4 files, 29 words in all",
        "could not read: unreadable.txt",
        "count_words: 4 of 5 elements completed, 7 attempts",
    ]
