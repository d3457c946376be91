"""flowweaver's benchmark suite: every figure beside a baseline measured in the same run.

Run it with ``python -m benchmarks`` (``--quick`` for a smoke run). Machines are noisy, so each
figure is the best of several interleaved repetitions and is reported as a ratio to its
baseline.
"""
