"""Why worker pools beat batch-by-batch: the batch-API story of the AntFlow README, measured.

Run it with ``python examples/batch_api.py`` (a few seconds; ``--help`` for the options).

Each batch goes through four calls to a simulated batch API (latencies are ``asyncio.sleep``):
upload it, check its status until the API has processed it, download the results, save them.
One batch is *stuck*: the API takes several times longer over it than over the others. Some
uploads and downloads fail once with a 503 and are retried; one batch's results are missing
for good, so it fails after its retries. What happens to each batch — latencies, failures —
is drawn up front from ``--seed``, so both runs below meet exactly the same batches.

1. **batch-by-batch**: ``asyncio.gather`` over groups of ``--group`` batches, each batch doing
   its four calls; a group starts when the previous one has finished *entirely*. The stuck
   batch holds up the other batches' slots of its group, and the next group waits.
2. **worker pools**: a flowweaver :class:`Pipeline` of four stages (Upload, Check, Download,
   ``--group`` workers each; Save, half that). A worker takes the next batch the moment it is
   free, so the stuck batch occupies one Check worker while the others go on.

At most ``--group`` batches are processed by the API at once in both runs (the API starts on a
batch at its first status check, and there are ``--group`` Check workers), so the difference
is scheduling alone. The script prints both makespans and their ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flowweaver import Pipeline, Stage, StatusTracker, TaskEvent

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

ATTEMPTS = 3  # per call, in both runs


@dataclass(frozen=True)
class BatchPlan:
    """What will happen to one batch (seconds are before ``--scale``)."""

    name: str
    upload: float
    processing: float
    download: float
    save: float
    upload_503s: int = 0
    download_503s: int = 0
    results_missing: bool = False


def plan_batches(count: int, seed: int) -> list[BatchPlan]:
    rng = random.Random(seed)
    stuck = rng.randrange(max(1, count // 2))  # early on: its group has work after it
    missing = (stuck + 1 + rng.randrange(count - 1)) % count if count > 1 else -1
    return [
        BatchPlan(
            name=f"batch-{i:03d}",
            upload=rng.uniform(0.02, 0.06),
            processing=1.0 if i == stuck else rng.uniform(0.10, 0.30),
            download=rng.uniform(0.02, 0.05),
            save=rng.uniform(0.01, 0.03),
            upload_503s=int(rng.random() < 0.15),
            download_503s=int(rng.random() < 0.10),
            results_missing=i == missing,
        )
        for i in range(count)
    ]


class ServiceUnavailable(ConnectionError):
    """A transient failure: worth retrying."""


@dataclass
class FakeBatchAPI:
    """The remote service, simulated. One instance per run: it keeps what was uploaded."""

    plans: dict[str, BatchPlan]
    scale: float
    failures_left: Counter[tuple[str, str]] = field(default_factory=Counter)
    done_at: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for plan in self.plans.values():
            self.failures_left["upload", plan.name] = plan.upload_503s
            self.failures_left["download", plan.name] = plan.download_503s

    async def _call(self, seconds: float) -> None:
        await asyncio.sleep(seconds * self.scale)

    def _maybe_fail(self, call: str, name: str) -> None:
        if self.failures_left[call, name] > 0:
            self.failures_left[call, name] -= 1
            raise ServiceUnavailable(f"{call} {name}: 503 service unavailable")

    async def upload_batch(self, name: str) -> str:
        await self._call(self.plans[name].upload)
        self._maybe_fail("upload", name)
        return name  # the file id

    async def check_status(self, file_id: str) -> str:
        """Start the batch job (on the first check) and poll until it is done."""
        loop = asyncio.get_running_loop()
        done_at = self.done_at.setdefault(
            file_id, loop.time() + self.plans[file_id].processing * self.scale
        )
        while loop.time() < done_at:
            await self._call(0.02)  # poll again shortly
        return f"results/{file_id}.jsonl"

    async def download_results(self, url: str) -> list[str]:
        name = url.removeprefix("results/").removesuffix(".jsonl")
        await self._call(self.plans[name].download)
        if self.plans[name].results_missing:
            raise FileNotFoundError(f"{url}: results expired")
        self._maybe_fail("download", name)
        return [f"{name}:row{i}" for i in range(100)]

    async def save_to_db(self, rows: list[str]) -> int:
        await self._call(self.plans[rows[0].split(":")[0]].save)
        return len(rows)


@dataclass
class Outcome:
    seconds: float = 0.0
    saved: int = 0
    failed: list[str] = field(default_factory=list)
    retries: int = 0
    idle_slot_seconds: float = 0.0


async def batch_by_batch(api: FakeBatchAPI, names: list[str], group: int, wait: float) -> Outcome:
    """The baseline: groups of ``group`` batches with asyncio.gather, one group at a time."""
    outcome = Outcome()

    async def retried(call: Callable[[Any], Awaitable[Any]], arg: Any) -> Any:
        for attempt in range(1, ATTEMPTS + 1):
            try:
                return await call(arg)
            except Exception:
                if attempt == ATTEMPTS:
                    raise
                outcome.retries += 1
                await asyncio.sleep(wait)
        raise AssertionError("unreachable")

    async def one(name: str) -> float:
        file_id = await retried(api.upload_batch, name)
        url = await retried(api.check_status, file_id)
        rows = await retried(api.download_results, url)
        await retried(api.save_to_db, rows)
        return time.perf_counter()

    start = time.perf_counter()
    for first in range(0, len(names), group):
        chunk = names[first : first + group]
        ends = await asyncio.gather(*(one(name) for name in chunk), return_exceptions=True)
        group_end = time.perf_counter()
        for name, end in zip(chunk, ends, strict=True):
            if isinstance(end, BaseException):
                outcome.failed.append(name)
                end = group_end  # noqa: PLW2901  # a failed batch's slot idles from its failure too
            else:
                outcome.saved += 1
            outcome.idle_slot_seconds += group_end - end
    outcome.seconds = time.perf_counter() - start
    return outcome


async def worker_pools(
    api: FakeBatchAPI, names: list[str], group: int, wait: float, dashboard: str
) -> Outcome:
    """The same batches through a four-stage Pipeline: each stage a pool of workers."""
    outcome = Outcome()

    def count_retry(event: TaskEvent) -> None:
        outcome.retries += 1

    def stage(name: str, workers: int, task: Callable[[Any], Awaitable[Any]]) -> Stage:
        return Stage(
            name=name,
            workers=workers,
            tasks=[task],
            retry="per_task",
            task_attempts=ATTEMPTS,
            task_wait_seconds=wait,
        )

    pipeline = Pipeline(
        stages=[
            stage("Upload", group, api.upload_batch),
            stage("Check", group, api.check_status),
            stage("Download", group, api.download_results),
            stage("Save", max(1, group // 2), api.save_to_db),
        ],
        status_tracker=StatusTracker(on_task_retry=count_retry),
    )
    items = [{"id": name, "value": name} for name in names]
    start = time.perf_counter()
    if dashboard == "progress":
        results = await pipeline.run(items, progress=True)
    elif dashboard == "none":
        results = await pipeline.run(items)
    else:
        results = await pipeline.run(items, dashboard=dashboard)  # type: ignore[arg-type]
    outcome.seconds = time.perf_counter() - start
    outcome.saved = len(results)
    outcome.failed = [str(f.item_id) for f in pipeline.get_error_summary().failed_items]
    return outcome


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=40, help="how many batches (default 40)")
    parser.add_argument("--group", type=int, default=10, help="batches at once (default 10)")
    parser.add_argument(
        "--scale", type=float, default=1.0, help="multiply every latency (default 1.0)"
    )
    parser.add_argument("--seed", type=int, default=7, help="what happens to each batch")
    parser.add_argument(
        "--dashboard",
        choices=["none", "progress", "compact", "detailed", "full"],
        default="detailed",
        help="what the pipeline run shows on stderr (default detailed)",
    )
    args = parser.parse_args(argv)
    if args.batches < 2 or args.group < 1 or args.scale <= 0:
        parser.error("--batches must be >= 2, --group >= 1 and --scale > 0")
    return args


async def main(argv: list[str]) -> int:
    args = parse_args(argv)
    # Failures are summed up below: keep flowweaver's per-item warnings (which go to stderr
    # when logging is not configured) out of the live display.
    logging.getLogger("flowweaver.pipeline").setLevel(logging.ERROR)
    plans = plan_batches(args.batches, args.seed)
    by_name = {plan.name: plan for plan in plans}
    names = [plan.name for plan in plans]
    stuck = max(plans, key=lambda plan: plan.processing)
    wait = 0.02 * args.scale
    print(
        f"{args.batches} batches: upload -> check (poll until processed) -> download -> save; "
        f"{stuck.name} is stuck ({stuck.processing * args.scale:.2f} s of processing, the "
        f"others {0.10 * args.scale:.2f}-{0.30 * args.scale:.2f} s); at most {args.group} "
        "batches processing at once either way"
    )
    print(f"running batch-by-batch (asyncio.gather, groups of {args.group}) ...", flush=True)
    base = await batch_by_batch(FakeBatchAPI(by_name, args.scale), names, args.group, wait)
    print("running worker pools (flowweaver Pipeline) ...", flush=True)
    pools = await worker_pools(
        FakeBatchAPI(by_name, args.scale), names, args.group, wait, args.dashboard
    )
    saves = max(1, args.group // 2)
    for label, outcome in (
        (f"batch-by-batch (asyncio.gather, groups of {args.group})", base),
        (
            f"worker pools (Pipeline: Upload {args.group}, Check {args.group}, "
            f"Download {args.group}, Save {saves})",
            pools,
        ),
    ):
        print(
            f"{label}: {outcome.seconds:.2f} s, {outcome.saved} saved, "
            f"{len(outcome.failed)} failed ({', '.join(sorted(outcome.failed)) or 'none'}), "
            f"{outcome.retries} retries"
        )
    print(
        f"batch-by-batch left slots idle for {base.idle_slot_seconds:.2f} slot-seconds, "
        "waiting for the slowest batch of their group"
    )
    print(f"worker pools finished {base.seconds / pools.seconds:.2f}x faster")
    return 0 if sorted(base.failed) == sorted(pools.failed) else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
