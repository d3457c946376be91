"""A durable mapped run killed with SIGKILL resumes only the elements it had not committed.

``map_crash_worker.py`` maps over 10,000 numbers; its element 7,000 blocks forever, so the run
is killed (SIGKILL) with at least the 7,000 elements before it committed. The rerun of the same
run id must restore every committed element without running it again, run each missing one,
and end with the same total as an uninterrupted run.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from flowweaver import SQLiteStore
from flowweaver._store import run_namespace

WORKER = str(Path(__file__).with_name("map_crash_worker.py"))
N = 10_000
BLOCK_AT = 7_000

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")


def _worker(store: Path, log: Path, executor: str, block_at: int = -1) -> subprocess.Popen[str]:
    args = [sys.executable, WORKER, str(store), str(log), executor, str(block_at)]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize("executor", ["sequential", "threaded"])
def test_a_killed_mapped_run_resumes_only_the_missing_elements(
    tmp_path: Path, executor: str
) -> None:
    store_path, log = tmp_path / "state.db", tmp_path / "side-effects.log"
    proc = _worker(store_path, log, executor, BLOCK_AT)
    assert proc.stdout is not None
    missing, blocked = set(range(BLOCK_AT)), False
    try:
        for line in proc.stdout:  # blocking reads: we kill on progress, not after a sleep
            if line.startswith("DONE "):
                missing.discard(int(line.split()[1]))
            blocked = blocked or line.strip() == "BLOCKED"
            if blocked and not missing:  # every element before the blocker is committed
                break
        assert blocked and not missing, proc.communicate(timeout=30)[1]  # it died early: why
    except BaseException:  # a failed test (or its timeout) must not leave the worker blocked
        proc.kill()
        raise
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    with SQLiteStore(store_path) as store:
        names = set(store.entries(run_namespace("map-crash", "crash")))
    committed = {int(n[7:-1]) for n in names if n.startswith("square[")}
    # Sequentially, exactly the elements before the blocker; on threads also some after it.
    assert set(range(BLOCK_AT)) <= committed and BLOCK_AT not in committed
    assert len(committed) < N
    assert "square" not in names  # the task itself never completed

    before = Counter(log.read_text().split())
    resumed = _worker(store_path, log, executor)
    out, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err
    lines = dict(line.split(" ", 1) for line in out.splitlines())
    assert int(lines["RESTORED"]) == len(committed)
    assert int(lines["RESULT"]) == sum(n * n for n in range(N))
    after = Counter(log.read_text().split()) - before
    assert {int(n) for n in after} == set(range(N)) - committed  # only the missing ones ran
    assert set(after.values()) == {1}
