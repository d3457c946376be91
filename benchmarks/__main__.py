"""``python -m benchmarks [--quick] [--only SUITE]``: run suites, print a Markdown table."""

from __future__ import annotations

import argparse
import platform
import sys

from . import dask, engine, graph, history, limits, mapping, pipeline, startup, state
from ._harness import table

# Dask last: a cluster leaves threads and memory behind that slow every in-process suite run
# after it (the sequential chain measured 0.72x graphlib after Dask, 0.64x without it).
SUITES = {
    "startup": startup.run,  # fresh processes: first, before the others warm anything
    "engine": engine.run,
    "graph": graph.run,
    "mapping": mapping.run,
    "pipeline": pipeline.run,
    "limits": limits.run,
    "state": state.run,
    "history": history.run,
    "dask": dask.run,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument("--only", choices=sorted(SUITES), action="append", help="suite to run")
    args = parser.parse_args(argv)
    rows = []
    for name in args.only or list(SUITES):
        rows.extend(SUITES[name](args.quick))
    print(f"Python {platform.python_version()} on {platform.machine()}, "
          f"{platform.system()}; quick={args.quick}\n")  # fmt: skip
    print(table(rows))
    missed = [r for r in rows if r.ok is False]
    return 1 if missed and not args.quick else 0


if __name__ == "__main__":
    sys.exit(main())
