"""A durable run killed with SIGKILL in the middle of its subflow resumes the subflow: the
child tasks that committed are restored, not run again (``subflow_crash_worker.py``)."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from flowweaver import SQLiteStore
from flowweaver._store import run_namespace

WORKER = str(Path(__file__).with_name("subflow_crash_worker.py"))
N = 40

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")


def _worker(store: Path, log: Path, executor: str, block_at: str = "") -> subprocess.Popen[str]:
    args = [
        sys.executable,
        WORKER,
        str(store),
        str(log),
        executor,
        *([block_at] if block_at else []),
    ]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize(("seed", "executor"), [(1, "sequential"), (2, "threaded"), (3, "async")])
def test_a_run_killed_inside_its_subflow_resumes_without_rerunning_committed_children(
    tmp_path: Path, seed: int, executor: str
) -> None:
    rng = random.Random(seed)
    kill_after = rng.randint(3, N - 10)
    block_at = f"parse_{kill_after + rng.randint(0, 5)}"
    store_path, log = tmp_path / "state.db", tmp_path / "side-effects.log"

    proc = _worker(store_path, log, executor, block_at)
    assert proc.stdout is not None
    done, blocked = 0, False
    for line in proc.stdout:  # blocking reads: we kill on progress, not after a sleep
        done += line.startswith("DONE load/")
        blocked = blocked or line.strip() == "BLOCKED"
        if done >= kill_after or (blocked and done):
            break
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    with SQLiteStore(store_path) as store:  # the child's run id is derived from the parent's
        committed = set(store.entries(run_namespace("parse_files", "crash/load")))
    assert 0 < len(committed) < N

    rerun = _worker(store_path, log, executor)
    out, err = rerun.communicate(timeout=60)
    assert rerun.returncode == 0, err
    lines = dict(line.split(" ", 1) for line in out.splitlines() if " " in line)
    restored = set(lines["RESTORED"].split())
    assert {name.removeprefix("load/") for name in restored if name != "list_files"} == committed
    runs = Counter(log.read_text().split())
    assert {name for name in committed if runs[name] != 1} == set()  # committed: ran once
    assert set(runs) == {f"parse_{k}" for k in range(N)}  # every child task ran
    assert int(lines["RESULT"]) == sum(k * k for k in range(N))
