"""Two checkouts of flowweaver, alternated: does a change cost the runs that do not use it?

``python -m benchmarks.against OLD NEW [--rounds 7]`` runs the same probe in a fresh
interpreter on checkout ``OLD``, then on ``NEW``, ``--rounds`` times, alternating (so the
machine's drift falls on both), and prints each round's ratio NEW ÷ OLD and their range.
The probe measures process CPU time (less sensitive to other processes on a shared machine
than wall time), best of 7 repetitions:

* a 20,000-task workflow with no limits, priorities or retry conditions (chains of four), per
  task, on the sequential and on the threaded executor (4 workers);
* one uncontended ``with limiter:`` (acquire + release) of a slot-only limiter and of one
  with a slot and a rate window.

Issue 16's acceptance: a workflow with none of its features is as fast as before, and a
limiter costs under 2 µs per uncontended acquisition.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from pathlib import Path

FIGURES = ("sequential µs/task", "threaded µs/task", "slot µs/pair", "slot+window µs/pair")

PROBE = r"""
import sys, time
sys.path.insert(0, sys.argv[1])
import flowweaver
from flowweaver import Limiter, SequentialExecutor, Task, ThreadedExecutor, Workflow
assert flowweaver.__file__.startswith(sys.argv[1]), flowweaver.__file__
N, PAIRS = 20_000, 100_000

def build():
    wf = Workflow("w")
    wf.add_task(Task(name="t0", fn=lambda: 0))
    for k in range(1, N):
        wf.add_task(Task(name=f"t{k}", fn=lambda: k), depends_on=[f"t{k - 1}"] if k % 4 else [])
    return wf

def best(fn, repeat=7):
    times = []
    for _ in range(repeat):
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return min(times)

def pairs(limiter):
    for _ in range(PAIRS):
        with limiter:
            pass

wf = build()
seq = best(lambda: SequentialExecutor().execute(wf)) / N
with ThreadedExecutor(max_workers=4) as threads:
    thr = best(lambda: threads.execute(wf)) / N
slot = best(lambda: pairs(Limiter(concurrency=5))) / PAIRS
both = best(lambda: pairs(Limiter(concurrency=5, rate=1e9, per=1.0))) / PAIRS
print(*(f"{x * 1e6:.4f}" for x in (seq, thr, slot, both)))
"""


def probe(checkout: Path) -> list[float]:
    """The four figures of one fresh interpreter on ``checkout``."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(checkout.resolve())],
        capture_output=True, text=True, check=True, timeout=600,
    )  # fmt: skip
    return [float(x) for x in done.stdout.split()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.against", description=__doc__)
    parser.add_argument("old", type=Path, help="the checkout before the change")
    parser.add_argument("new", type=Path, help="the checkout with it")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args(argv)
    ratios: list[list[float]] = [[] for _ in FIGURES]
    news: list[list[float]] = [[] for _ in FIGURES]
    for k in range(args.rounds):
        old, new = probe(args.old), probe(args.new)
        print(
            f"round {k + 1}: "
            + ", ".join(f"{n:.3g} / {o:.3g}" for n, o in zip(new, old, strict=True))
        )
        for i, (n, o) in enumerate(zip(new, old, strict=True)):
            ratios[i].append(n / o)
            news[i].append(n)
    print("| figure | new (range) | new ÷ old, per round: range (median) |")
    print("|---|---:|---:|")
    for name, rs, ns in zip(FIGURES, ratios, news, strict=True):
        print(
            f"| {name} | {min(ns):.3g}–{max(ns):.3g} | {min(rs):.2f}–{max(rs):.2f}× "
            f"({statistics.median(rs):.2f}×) |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
