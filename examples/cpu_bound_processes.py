"""CPU-bound work on the process executor, beside the same DAG on threads.

Run it with ``python examples/cpu_bound_processes.py [workers]``. Four independent tasks each
count primes by trial division (pure Python: the GIL lets threads take turns, processes run
in parallel), then a fan-in task adds them up. The same DAG runs on threads and on processes,
twice each; the script prints the second (warm) run's times and their ratio, so starting the
worker processes is not what is measured.

Task functions are defined at module level and the entry point is guarded, because worker
processes import this file to find them. The module-level ``primes`` DAG is what
``flowweaver run examples/cpu_bound_processes.py --executor process`` runs.
"""

from __future__ import annotations

import os
import sys
import time

from flowweaver import DAG, ProcessExecutor, ThreadedExecutor, task

#: Numbers per chunk. ``PRIMES_SPAN`` in the environment makes it smaller for a quick try
#: (worker processes inherit the environment, so they agree with the parent).
SPAN = int(os.environ.get("PRIMES_SPAN", "120000"))


def count_primes(start: int, stop: int) -> int:
    count = 0
    for n in range(max(start, 2), stop):
        if all(n % d for d in range(2, int(n**0.5) + 1)):
            count += 1
    return count


@task
def chunk_0() -> int:
    return count_primes(0, SPAN)


@task
def chunk_1() -> int:
    return count_primes(SPAN, 2 * SPAN)


@task
def chunk_2() -> int:
    return count_primes(2 * SPAN, 3 * SPAN)


@task
def chunk_3() -> int:
    return count_primes(3 * SPAN, 4 * SPAN)


@task
def total(a: int, b: int, c: int, d: int) -> int:  # fan-in: upstream results in declared order
    return a + b + c + d


def build() -> DAG:
    return DAG("primes", edges=[([chunk_0, chunk_1, chunk_2, chunk_3], total)])


#: Building a DAG runs nothing, so it may live at module level: the command line finds it
#: (``flowweaver run examples/cpu_bound_processes.py --executor process``).
primes = build()


def main(argv: list[str]) -> int:
    workers = int(argv[1]) if len(argv) > 1 else min(4, os.cpu_count() or 1)
    timings = {}
    results = {}
    for label, executor in (
        ("threads", ThreadedExecutor(max_workers=workers)),
        ("processes", ProcessExecutor(max_workers=workers)),
    ):
        with executor:
            build().run(executor=executor)  # warm-up: starts the workers
            start = time.perf_counter()
            results[label] = build().run(executor=executor)["total"]
            timings[label] = time.perf_counter() - start
        print(f"{label:<9} {results[label]} primes below {4 * SPAN:,} in {timings[label]:.2f} s")
    assert results["threads"] == results["processes"]
    print(f"processes took {timings['processes'] / timings['threads']:.2f}x the time of threads "
          f"with {workers} workers on {os.cpu_count()} CPUs")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
