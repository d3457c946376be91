"""An ETL workflow: extract orders, clean them, enrich from a flaky "API", aggregate, report.

Run it with ``python examples/etl_workflow.py [sequential|threaded|async]``. It generates its own
input (a CSV in a temporary folder), so it needs nothing but flowweaver.

What it shows:

* parameters named after upstream tasks receive their results (``clean(extract)``);
* independent branches run at the same time on the threaded and async executors, and a task
  starts the moment its own inputs are ready;
* a flaky task is retried with back-off, and ``on_retry`` reports it;
* ``progress=True`` draws a progress line on standard error;
* the run record (``WorkflowRun``) holds every status, result, attempt count and timing.
"""

from __future__ import annotations

import csv
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from flowweaver import (
    AsyncExecutor,
    SequentialExecutor,
    Task,
    ThreadedExecutor,
    Workflow,
)

if TYPE_CHECKING:
    from collections.abc import Callable

REGIONS = ("north", "south", "east", "west")


def write_orders(path: Path, count: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["order_id", "region", "amount", "customer"])
        for order_id in range(count):
            amount = "" if rng.random() < 0.03 else f"{rng.uniform(5, 500):.2f}"
            writer.writerow([order_id, rng.choice(REGIONS), amount, f"c{rng.randrange(200)}"])


def build(source: Path, retried: list[str]) -> Workflow:
    def extract() -> list[dict[str, str]]:
        with source.open(newline="") as f:
            return list(csv.DictReader(f))

    def clean(extract: list[dict[str, str]]) -> list[dict[str, object]]:
        return [{**row, "amount": float(row["amount"])} for row in extract if row["amount"]]

    attempts = {"n": 0}

    def customer_tiers(extract: list[dict[str, str]]) -> dict[str, str]:
        time.sleep(0.05)  # a slow lookup service...
        attempts["n"] += 1
        if attempts["n"] < 3:  # ...that fails twice before it answers
            raise ConnectionError("tier service unavailable")
        customers = {row["customer"] for row in extract}
        return {c: ("gold" if int(c[1:]) % 7 == 0 else "standard") for c in customers}

    def fx_rates() -> dict[str, float]:
        time.sleep(0.05)  # another remote call, independent of the first
        return {"north": 1.0, "south": 0.9, "east": 1.1, "west": 1.05}

    def enrich(
        clean: list[dict[str, object]], customer_tiers: dict[str, str], fx_rates: dict[str, float]
    ) -> list[dict[str, object]]:
        return [
            {
                **row,
                "tier": customer_tiers[str(row["customer"])],
                "amount_eur": round(float(row["amount"]) * fx_rates[str(row["region"])], 2),  # type: ignore[arg-type]
            }
            for row in clean
        ]

    def revenue_by_region(enrich: list[dict[str, object]]) -> dict[str, float]:
        totals: dict[str, float] = {}
        for row in enrich:
            region = str(row["region"])
            totals[region] = round(totals.get(region, 0.0) + float(row["amount_eur"]), 2)  # type: ignore[arg-type]
        return dict(sorted(totals.items()))

    def gold_share(enrich: list[dict[str, object]]) -> float:
        gold = sum(1 for row in enrich if row["tier"] == "gold")
        return round(gold / len(enrich), 3)

    def report(revenue_by_region: dict[str, float], gold_share: float) -> str:
        rows = revenue_by_region.items()
        lines = [f"  {region:<6} {amount:>12,.2f} EUR" for region, amount in rows]
        return "\n".join([*lines, f"  gold customers: {gold_share:.1%} of orders"])

    def on_retry(name: str, attempt: int) -> None:
        retried.append(f"{name}: retry #{attempt}")

    wf = Workflow("orders ETL")
    wf.add_task(Task(name="extract", fn=extract))
    wf.add_task(Task(name="fx_rates", fn=fx_rates))
    wf.add_task(Task(name="clean", fn=clean), depends_on=["extract"])
    wf.add_task(
        Task(name="customer_tiers", fn=customer_tiers, retries=3, delay=0.05, backoff=2.0,
             timeout=5.0, on_retry=on_retry),
        depends_on=["extract"],
    )  # fmt: skip
    wf.add_task(
        Task(name="enrich", fn=enrich),
        depends_on=["clean", "customer_tiers", "fx_rates"],
    )
    wf.add_task(Task(name="revenue_by_region", fn=revenue_by_region),
                depends_on=["enrich"])  # fmt: skip
    wf.add_task(Task(name="gold_share", fn=gold_share),
                depends_on=["enrich"])  # fmt: skip
    wf.add_task(Task(name="report", fn=report),
                depends_on=["revenue_by_region", "gold_share"])  # fmt: skip
    return wf


def main(argv: list[str]) -> int:
    choice = argv[1] if len(argv) > 1 else "threaded"
    executors: dict[str, Callable[[], SequentialExecutor | ThreadedExecutor | AsyncExecutor]] = {
        "sequential": SequentialExecutor,
        "threaded": lambda: ThreadedExecutor(max_workers=4),
        "async": AsyncExecutor,
    }
    if choice not in executors:
        print(f"usage: {argv[0]} [{'|'.join(executors)}]", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "orders.csv"
        write_orders(source, 5_000)
        retried: list[str] = []
        workflow = build(source, retried)
        print(f"Plan: {[[t.name for t in layer] for layer in workflow.get_execution_plan()]}")
        print(f"Running {workflow.name!r} on {choice}:")
        run = workflow.execute(executors[choice](), progress=True)
    print(f"Retries: {', '.join(retried) or 'none'}")
    print("\nRevenue by region:")
    print(run.result("report"))
    stats = run.stats()
    print(
        f"\n{stats['completed']}/{stats['total_tasks']} tasks completed, "
        f"{stats['retries']} retries, {stats['total_time_seconds']:.2f} s"
    )
    for name in run.statuses:
        duration = run.duration(name) or 0.0
        print(f"  {name:<18} {run.status(name).value:<10} attempts={run.attempts(name)} "
              f"{duration * 1000:7.1f} ms")  # fmt: skip
    return 0 if run.ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
