"""Speed and scale benchmarks of slscale; each ``bench_*.py`` module has a ``main()``.

Run one with ``python -m benchmarks.bench_store`` or all with ``python -m benchmarks``.
Recorded figures are in ``benchmarks/BENCHMARKS.md``.
"""
