"""Startup benchmarks: what ``import flowweaver`` and a first workflow cost a fresh process.

Every figure is a median over fresh interpreters, started clean (``-I -S``: no site-packages
and no ``.pth`` hooks — an editable install's finder imports ``re``, ``pathlib`` and more before
the program starts, which would hide their cost) with ``os`` imported first, as ``site`` does
at every normal start-up, and with the package's bytecode compiled first, as an installer
does. The interpreter's own start-up is measured beside it in the same run, so the machine's
speed is visible. The figures are the CPU time the process spent (``time.process_time``),
which is what the wall clock reads on an idle machine and, unlike it, hardly moves when other
processes share the cores; each note gives the wall-clock median too:

* **Import**: ``import flowweaver`` timed inside the process. Target: under 25 ms. Its note
  gives the interpreter's own start-up (``python -c pass``, wall clock) and what a shell sees:
  ``python -c "import flowweaver"`` minus ``python -c pass``.
* **Everything**: the same, then every public name touched — what the import would cost if
  the event-loop executor, pipelines, dashboards, stores, logging and the process and Dask
  executors did not load on first use.
* **First run**: the import plus a first 10-task workflow on ``ThreadedExecutor`` (a chain of
  ten), inside the process — what a script's first run costs before its own work. Its note
  says whether ``asyncio`` stayed out of ``sys.modules`` (it must), beside what ``import
  asyncio`` alone costs.
"""

from __future__ import annotations

import compileall
import pathlib
import statistics
import subprocess
import sys
import time

import flowweaver

from ._harness import Row

#: ``import flowweaver`` must take less than this many milliseconds.
IMPORT_BUDGET_MS = 25.0

_ROOT = str(pathlib.Path(flowweaver.__file__).resolve().parent.parent)
#: A clean interpreter: no site-packages, no environment variables, no current directory.
_CLEAN = (sys.executable, "-I", "-S")
_PRELUDE = f"import os, sys\nsys.path.insert(0, {_ROOT!r})\nimport time\n"
_TIMED = (
    _PRELUDE + "c, w = time.process_time(), time.perf_counter()\n{body}\n"
    "print(time.process_time() - c, time.perf_counter() - w)\n"
)
_IMPORT = "import flowweaver"
_EVERYTHING = "import flowweaver\nfor name in flowweaver.__all__:\n    getattr(flowweaver, name)"
_ASYNCIO = "import asyncio"
_FIRST_RUN = (
    "import flowweaver as fw\n"
    "wf = fw.Workflow('first')\n"
    "wf.add_task(fw.Task('t0', lambda: 0))\n"
    "for i in range(1, 10):\n"
    "    wf.add_task(fw.Task(f't{i}', lambda x: x + 1), depends_on=[f't{i - 1}'])\n"
    "assert wf.execute(executor=fw.ThreadedExecutor(2)).result('t9') == 9"
)
_LEAKED = _PRELUDE + _FIRST_RUN + "\nprint('asyncio' in sys.modules)\n"


def _seconds(body: str) -> tuple[float, float]:
    """CPU and wall seconds that ``body`` took in a fresh clean interpreter."""
    out = subprocess.run(
        [*_CLEAN, "-c", _TIMED.format(body=body)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    cpu, wall = out.stdout.split()
    return float(cpu), float(wall)


def _process_seconds(code: str) -> float:
    start = time.perf_counter()
    subprocess.run([*_CLEAN, "-c", code], check=True, timeout=120)
    return time.perf_counter() - start


def run(quick: bool) -> list[Row]:
    compileall.compile_dir(pathlib.Path(_ROOT) / "flowweaver", quiet=1)  # as an installer does
    repeat = 5 if quick else 25
    timed: dict[str, list[tuple[float, float]]] = {
        b: [] for b in (_IMPORT, _EVERYTHING, _FIRST_RUN, _ASYNCIO)
    }
    processes: dict[str, list[float]] = {"pass": [], _IMPORT: []}
    import_code = _PRELUDE + _IMPORT
    for _ in range(repeat):  # interleaved: a noisy neighbour spreads over all of them
        for body, times in timed.items():
            times.append(_seconds(body))
        processes["pass"].append(_process_seconds("pass"))
        processes[_IMPORT].append(_process_seconds(import_code))
    ms = {body: statistics.median(c for c, _ in times) * 1e3 for body, times in timed.items()}
    wall = {body: statistics.median(w for _, w in times) * 1e3 for body, times in timed.items()}
    bare = statistics.median(processes["pass"]) * 1e3
    shell = statistics.median(processes[_IMPORT]) * 1e3 - bare
    leaked = subprocess.run(
        [*_CLEAN, "-c", _LEAKED], capture_output=True, text=True, check=True, timeout=120
    ).stdout.strip()
    no_asyncio = "never imported" if leaked == "False" else "IMPORTED"
    return [
        Row(
            "startup",
            "import flowweaver (median of fresh processes)",
            ms[_IMPORT],
            IMPORT_BUDGET_MS,
            "ms",
            1.0,
            f"CPU time, vs the 25 ms budget; wall clock {wall[_IMPORT]:.3g} ms beside "
            f"python -c pass {bare:.3g} ms; python -c 'import flowweaver' {shell:.3g} ms more",
        ),
        Row(
            "startup",
            "import flowweaver vs every name loaded",
            ms[_IMPORT],
            ms[_EVERYTHING],
            "ms",
            None,
        ),
        Row(
            "startup",
            "import + a first 10-task threaded workflow",
            ms[_FIRST_RUN],
            None,
            "ms",
            None,
            f"CPU time (wall clock {wall[_FIRST_RUN]:.3g} ms); asyncio {no_asyncio} "
            f"(import asyncio alone: {ms[_ASYNCIO]:.3g} ms)",
        ),
    ]
