"""The pipeline crash test: a checkpointed pipeline killed with SIGKILL resumes exactly.

Each case runs ``pipeline_crash_worker.py`` (200 items through three stages, ``stream()``) in a
subprocess and kills it with SIGKILL once it has yielded — so committed — a random number of
results; one random item blocks forever in the last stage, so the run can never finish first.
Then it reruns the same run id to the end and checks: every item whose result had been committed
went through each stage exactly once in all (counted in the append-only side-effect log), the
rerun restored exactly the committed items, and the final results equal those of an
uninterrupted run.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from flowweaver import JSONFileStore, SQLiteStore
from flowweaver._store import pipeline_namespace

WORKER = str(Path(__file__).with_name("pipeline_crash_worker.py"))
N = 200
STAGES = ("parse", "enrich", "pack")
#: Items that can have run a stage without being committed: in a worker (4 + 3 + 2) or waiting
#: in the queue of a later stage (8 + 8).
IN_FLIGHT = 4 + 3 + 2 + 8 + 8

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")


def _worker(
    store: Path, log: Path, kind: str, executor: str, block_at: int = -1
) -> subprocess.Popen[str]:
    args = [sys.executable, WORKER, str(store), str(log), kind, executor]
    if block_at >= 0:
        args.append(str(block_at))
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(proc: subprocess.Popen[str]) -> tuple[list[object], str]:
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    restored: list[object] = []
    results = ""
    for line in out.splitlines():
        if line.startswith("RESTORED "):
            restored = json.loads(line.removeprefix("RESTORED "))
        elif line.startswith("RESULTS "):
            results = line.removeprefix("RESULTS ")
    assert results, out
    return restored, results


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The results of an uninterrupted run, per kind of item."""
    results = {}
    for kind in ("plain", "dict"):
        folder = tmp_path_factory.mktemp(f"reference-{kind}")
        restored, results[kind] = _finish(
            _worker(folder / "state.db", folder / "log", kind, "threads")
        )
        assert restored == []
    return results


def _open(path: Path) -> SQLiteStore | JSONFileStore:
    return SQLiteStore(path) if path.suffix == ".db" else JSONFileStore(path)


def _number(item_id: object) -> int:
    return item_id if isinstance(item_id, int) else int(str(item_id).removeprefix("item-"))


@pytest.mark.parametrize(
    ("seed", "kind", "executor", "suffix"),
    [
        (1, "plain", "threads", ".db"),
        (2, "dict", "threads", ".db"),
        (3, "plain", "async", ".db"),
        (4, "dict", "sequential", ".db"),
        (5, "dict", "threads", ".json"),
        (6, "plain", "sequential", ".json"),
    ],
)
def test_a_killed_pipeline_resumes_without_processing_committed_items_again(
    tmp_path: Path, reference: dict[str, str], seed: int, kind: str, executor: str, suffix: str
) -> None:
    rng = random.Random(seed)
    kill_after = rng.randint(1, N - 40)
    block_at = rng.randrange(N)
    store_path, log = tmp_path / f"state{suffix}", tmp_path / "side-effects.log"

    proc = _worker(store_path, log, kind, executor, block_at)
    assert proc.stdout is not None
    done = 0
    for line in proc.stdout:  # blocking reads: we kill on progress, not after a sleep
        done += line.startswith("DONE ")
        if done >= kill_after:  # reached: only the blocked item can never be done
            break
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    with _open(store_path) as store:
        keys = store.entries(pipeline_namespace("crash-test", "crash"))
    committed = {json.loads(key) for key in keys}
    assert kill_after <= len(committed) < N  # the kill interrupted the run after some commits

    restored, results = _finish(_worker(store_path, log, kind, executor))
    runs = Counter(log.read_text().splitlines())
    assert set(restored) == committed
    twice = {(stage, item) for item in committed for stage in STAGES
             if runs[f"{stage} {_number(item)}"] != 1}  # fmt: skip
    assert twice == set()  # committed: each stage ran once for it, in all
    assert set(runs) == {f"{stage} {i}" for stage in STAGES for i in range(N)}
    # Only items inside the pipeline at the kill ran a stage twice.
    assert sum(runs.values()) - len(STAGES) * N <= len(STAGES) * IN_FLIGHT
    assert results == reference[kind]
    if suffix == ".json":
        leftovers = [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
        assert len(leftovers) <= 1  # at most the write the kill interrupted
    else:
        assert os.stat(store_path).st_mode & 0o777 == 0o600
