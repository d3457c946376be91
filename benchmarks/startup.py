"""Startup benchmarks: what ``import flowweaver`` costs a fresh process.

* **Import**: ``import flowweaver`` timed inside a fresh interpreter (so the interpreter's own
  start-up is not counted), best of several processes. Target: under 25 ms.
* **Everything**: the same, then every public name touched — what the import cost before
  the event-loop executor, pipelines, dashboards, file stores and the process and Dask
  executors loaded on first use. The ratio of the two is the saving.
* **asyncio**: a threaded workflow run in the fresh process must leave ``asyncio`` out of
  ``sys.modules``; the row's note says whether it did, beside what ``import asyncio`` alone
  costs (the largest module the lazy loading keeps out).
"""

from __future__ import annotations

import subprocess
import sys

from ._harness import Row

#: ``import flowweaver`` must take less than this many milliseconds.
IMPORT_BUDGET_MS = 25.0

_TIMED = "import time\nt = time.perf_counter()\n{body}\nprint(time.perf_counter() - t)\n"
_IMPORT = "import flowweaver"
_EVERYTHING = "import flowweaver\nfor name in flowweaver.__all__:\n    getattr(flowweaver, name)"
_ASYNCIO = "import asyncio"
_THREADED = (
    "import sys, flowweaver as fw\n"
    "wf = fw.Workflow('w')\n"
    "wf.add_task(fw.Task('a', lambda: 1))\n"
    "wf.add_task(fw.Task('b', lambda a: a + 1), depends_on=['a'])\n"
    "wf.execute(executor=fw.ThreadedExecutor(2))\n"
    "print('asyncio' in sys.modules)\n"
)


def _seconds(body: str) -> float:
    out = subprocess.run(
        [sys.executable, "-c", _TIMED.format(body=body)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return float(out.stdout)


def run(quick: bool) -> list[Row]:
    repeat = 3 if quick else 15
    best = {body: float("inf") for body in (_IMPORT, _EVERYTHING, _ASYNCIO)}
    for _ in range(repeat):  # interleaved: a noisy neighbour spreads over all three
        for body, sofar in best.items():
            best[body] = min(sofar, _seconds(body))
    ours, everything, asyncio_ms = (best[b] * 1e3 for b in (_IMPORT, _EVERYTHING, _ASYNCIO))
    leaked = subprocess.run(
        [sys.executable, "-c", _THREADED], capture_output=True, text=True, check=True, timeout=120
    ).stdout.strip()
    no_asyncio = "never imported" if leaked == "False" else "IMPORTED"
    return [
        Row(
            "startup", "import flowweaver", ours, IMPORT_BUDGET_MS, "ms", 1.0, "vs the 25 ms budget"
        ),
        Row(
            "startup",
            "import flowweaver vs every name loaded",
            ours,
            everything,
            "ms",
            None,
            f"threaded run: asyncio {no_asyncio} (import asyncio alone: {asyncio_ms:.3g} ms)",
        ),
    ]
