"""Timing helpers shared by the benchmark modules."""

from __future__ import annotations

import gc
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable


@dataclass(frozen=True)
class Row:
    """One line of a results table: a measured figure beside its in-run baseline."""

    group: str
    case: str
    ours: float
    baseline: float | None
    unit: str
    target: float | None = None  # the ratio we promise (ours / baseline), if any
    note: str = ""

    @property
    def ratio(self) -> float | None:
        return None if not self.baseline else self.ours / self.baseline

    @property
    def ok(self) -> bool | None:
        ratio = self.ratio
        return None if ratio is None or self.target is None else ratio <= self.target


def best_of(repeat: int, *fns: Callable[[], object]) -> list[float]:
    """Best wall time of each function, running them interleaved ``repeat`` times.

    Interleaving spreads a noisy neighbour over all contenders instead of one of them.
    """
    best = [float("inf")] * len(fns)
    for _ in range(repeat):
        for k, fn in enumerate(fns):
            gc.collect()
            start = time.perf_counter()
            fn()
            best[k] = min(best[k], time.perf_counter() - start)
    return best


def table(rows: list[Row]) -> str:
    """A Markdown table of the rows."""
    lines = [
        "| group | case | flowweaver | baseline | ratio | target | |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        base = "" if r.baseline is None else f"{r.baseline:.3g} {r.unit}"
        ratio = "" if r.ratio is None else f"{r.ratio:.2f}×"
        target = "" if r.target is None else f"≤ {r.target:g}×"
        mark = {True: "ok", False: "MISSED", None: ""}[r.ok]
        note = f" {r.note}" if r.note else ""
        lines.append(
            f"| {r.group} | {r.case} | {r.ours:.3g} {r.unit} | {base} | {ratio} | {target} |"
            f" {mark}{note} |"
        )
    return "\n".join(lines)


#: Appended to the script :func:`peak_rss_mb` runs: print the process's peak RSS in KiB
#: (VmHWM where /proc has it; ru_maxrss elsewhere).
_PRINT_PEAK = """
import resource as _resource, sys as _sys
try:
    with open("/proc/self/status") as _status:
        _kib = next(int(line.split()[1]) for line in _status if line.startswith("VmHWM:"))
except OSError:
    _peak = _resource.getrusage(_resource.RUSAGE_SELF).ru_maxrss
    _kib = _peak // 1024 if _sys.platform == "darwin" else _peak  # bytes on macOS
print(_kib)
"""


def peak_rss_mb(script: str, n: int) -> float:
    """Peak resident memory, in MB, of a fresh interpreter running ``script`` with ``n``
    as its argument."""
    out = subprocess.run(
        [sys.executable, "-c", script + _PRINT_PEAK, str(n)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return int(out.split()[-1]) / 1024
