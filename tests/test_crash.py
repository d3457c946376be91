"""The crash test: a durable run killed with SIGKILL at a random point resumes exactly.

Each case runs ``crash_worker.py`` (300 tasks, a random DAG) in a subprocess and kills it with
SIGKILL once it has reported a random number of completed (committed) tasks, or once it has
reached the task that blocks forever (so it can never finish first) and committed something. Then it reruns the same run id to the end and
checks: every task whose result had been committed ran exactly once in all (counted in the
append-only side-effect log), the rerun restored exactly the committed tasks, and the final
results equal those of an uninterrupted run.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from flowweaver import JSONFileStore, SQLiteStore
from flowweaver._store import run_namespace

WORKER = str(Path(__file__).with_name("crash_worker.py"))
N = 300

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")


def _worker(store: Path, log: Path, executor: str, block_at: str = "") -> subprocess.Popen[str]:
    args = [sys.executable, WORKER, str(store), str(log), executor]
    if block_at:
        args.append(block_at)
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(proc: subprocess.Popen[str]) -> tuple[list[str], str]:
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    restored: list[str] = []
    results = ""
    for line in out.splitlines():
        if line.startswith("RESTORED"):
            restored = line.split()[1:]
        elif line.startswith("RESULTS "):
            results = line.removeprefix("RESULTS ")
    assert results, out
    return restored, results


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The results of an uninterrupted run."""
    folder = tmp_path_factory.mktemp("reference")
    restored, results = _finish(_worker(folder / "state.db", folder / "log", "sequential"))
    assert restored == []
    return results


def _open(path: Path) -> SQLiteStore | JSONFileStore:
    return SQLiteStore(path) if path.suffix == ".db" else JSONFileStore(path)


@pytest.mark.parametrize(
    ("seed", "executor", "suffix"),
    [
        (1, "sequential", ".db"),
        (2, "threaded", ".db"),
        (3, "async", ".db"),
        (4, "sequential", ".db"),
        (5, "threaded", ".json"),
        (6, "sequential", ".json"),
    ],
)
def test_a_killed_run_resumes_without_rerunning_committed_tasks(
    tmp_path: Path, reference: str, seed: int, executor: str, suffix: str
) -> None:
    rng = random.Random(seed)
    kill_after = rng.randint(5, N - 80)
    block_at = f"t{kill_after + rng.randint(0, 60)}"
    store_path, log = tmp_path / f"state{suffix}", tmp_path / "side-effects.log"

    proc = _worker(store_path, log, executor, block_at)
    assert proc.stdout is not None
    done, blocked = 0, False
    for line in proc.stdout:  # blocking reads: we kill on progress, not after a sleep
        done += line.startswith("DONE ")
        blocked = blocked or line.strip() == "BLOCKED"
        # t0 is a source and never the blocker: some task always commits.
        if done >= kill_after or (blocked and done):
            break
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    with _open(store_path) as store:
        committed = set(store.entries(run_namespace("crash-test", "crash")))
    assert 0 < len(committed) < N  # the kill interrupted the run after some commits

    restored, results = _finish(_worker(store_path, log, executor))
    runs = Counter(log.read_text().split())
    assert set(restored) == committed
    assert {name for name in committed if runs[name] != 1} == set()  # committed: ran once
    assert set(runs) == {f"t{i}" for i in range(N)}  # every task ran at least once
    # Only the tasks in flight at the kill ran twice: one inline; up to max_workers on the loop;
    # on threads also calls that had returned but whose outcome the driver had not committed
    # yet (at most workers + lane queue depth, 4 + 64).
    assert sum(runs.values()) - N <= {"sequential": 1, "async": 4, "threaded": 68}[executor]
    assert results == reference
    if suffix == ".json":
        leftovers = [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
        assert len(leftovers) <= 1  # at most the write the kill interrupted
    else:
        assert os.stat(store_path).st_mode & 0o777 == 0o600
