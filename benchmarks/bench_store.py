"""Results store at scale: 1,000,000 metric rows from 4 writer processes into one SQLite file.

Goals: writes ≥ 100,000 rows/s (all four processes together, wall clock from the common start
to the last commit) and ``metrics_frame()`` of all rows in ≤ 3 s; every (run, step, name) key
present exactly once with its value. Baselines in the same run: the naive way of logging, one
``log_metrics`` call (one transaction) per row, on a small sample; and ``pandas.read_sql_query``
of the same million rows.

    python -m benchmarks.bench_store [--rows 1000000] [--processes 4] [--batch-rows 25000]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from slscale.store import Metric, open_store

RUNS_PER_PROCESS = 25
NAMES = ("loss", "lr")
NAIVE_ROWS = 2_000


def value_of(run: int, step: int, name: str) -> float:
    """The value logged for a key, so that the read-back can be checked row by row."""
    return run + step * 1e-6 + (0.5 if name == "lr" else 0.0)


def writer_rows(worker: int, rows: int) -> list[Metric]:
    """``rows`` metric rows of the worker's own runs (its 25 runs × 2 names × steps)."""
    steps = rows // (RUNS_PER_PROCESS * len(NAMES))
    first = worker * RUNS_PER_PROCESS
    return [
        Metric(f"run-{r:03d}", s, n, value_of(r, s, n), tokens=s * 4096, flops=s * 1e12)
        for r in range(first, first + RUNS_PER_PROCESS)
        for s in range(steps)
        for n in NAMES
    ]


def writer(target: str, worker: int, rows: int, batch: int, barrier: Any, out: Any) -> None:
    store = open_store(target)
    metrics = writer_rows(worker, rows)
    barrier.wait()
    start = time.time()
    for i in range(0, len(metrics), batch):
        store.log_metrics(metrics[i : i + batch])
    out.put((worker, start, time.time(), len(metrics)))
    store.close()


def parallel_write(target: str, processes: int, rows: int, batch: int) -> tuple[float, int]:
    """Seconds from the common start to the last commit, and rows written."""
    ctx = mp.get_context("spawn")
    barrier, out = ctx.Barrier(processes), ctx.Queue()
    per = rows // processes
    procs = [
        ctx.Process(target=writer, args=(target, w, per, batch, barrier, out))
        for w in range(processes)
    ]
    for p in procs:
        p.start()
    results = [out.get(timeout=600) for _ in procs]
    for p in procs:
        p.join()
        if p.exitcode != 0:
            raise RuntimeError(f"writer process exited with {p.exitcode}")
    start = min(r[1] for r in results)
    end = max(r[2] for r in results)
    return end - start, sum(r[3] for r in results)


def verify(frame: pd.DataFrame, processes: int, rows: int) -> None:
    """Every key exactly once, with the value its writer logged."""
    steps = rows // processes // (RUNS_PER_PROCESS * len(NAMES))
    expected = processes * RUNS_PER_PROCESS * steps * len(NAMES)
    if len(frame) != expected:
        raise AssertionError(f"{len(frame)} rows read back, {expected} written")
    if frame.duplicated(["run_id", "step", "name"]).any():
        raise AssertionError("duplicated (run_id, step, name) keys")
    run = frame["run_id"].str.slice(4).astype(int).to_numpy()
    want = run + frame["step"].to_numpy() * 1e-6 + np.where(frame["name"] == "lr", 0.5, 0.0)
    if not np.array_equal(want, frame["value"].to_numpy()):
        raise AssertionError("values differ from what was logged")
    per_run = frame.groupby("run_id").size()
    if len(per_run) != processes * RUNS_PER_PROCESS or set(per_run) != {steps * len(NAMES)}:
        raise AssertionError("a run lost rows")


def naive_rate(folder: Path) -> float:
    """Rows/s of one ``log_metrics`` call (one transaction) per row."""
    with open_store(folder / "naive.db") as store:
        store.register({"run-000": {}})
        sample = [Metric("run-000", s, "loss", 1.0, tokens=s) for s in range(NAIVE_ROWS)]
        start = time.perf_counter()
        for row in sample:
            store.log_metrics([row])
        return NAIVE_ROWS / (time.perf_counter() - start)


def read_sql_seconds(path: Path) -> float:
    engine = sa.create_engine(f"sqlite:///{path}")
    start = time.perf_counter()
    frame = pd.read_sql_query("SELECT run_id, step, tokens, flops, name, value FROM metrics "
                              "ORDER BY run_id, step, name", engine)  # fmt: skip
    seconds = time.perf_counter() - start
    engine.dispose()
    assert len(frame) > 0
    return seconds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_store")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--batch-rows", type=int, default=25_000)
    args = parser.parse_args([] if argv is None else argv)
    with tempfile.TemporaryDirectory(prefix="bench-store-") as tmp:
        folder = Path(tmp)
        path = folder / "results.db"
        with open_store(path) as store:
            n_runs = args.processes * RUNS_PER_PROCESS
            store.register({f"run-{r:03d}": {"family": "llama"} for r in range(n_runs)})
        seconds, rows = parallel_write(str(path), args.processes, args.rows, args.batch_rows)
        with open_store(path) as store:
            start = time.perf_counter()
            frame = store.metrics_frame()
            load = time.perf_counter() - start
        verify(frame, args.processes, args.rows)
        del frame
        naive = naive_rate(folder)
        baseline_load = read_sql_seconds(path)
    rate = rows / seconds
    print(f"{rows:,} rows, {args.processes} writer processes, batches of {args.batch_rows:,}; "
          "every key read back once with its value\n")  # fmt: skip
    print("| measure | slscale | goal | baseline | ratio |")
    print("|---|---|---|---|---|")
    print(f"| write rate (rows/s) | {rate:,.0f} | ≥ 100,000 | {naive:,.0f} (one row per "
          f"transaction) | {rate / naive:.0f}× |")  # fmt: skip
    print(f"| load all rows (s) | {load:.2f} | ≤ 3 | {baseline_load:.2f} (pandas.read_sql_query) "
          f"| {baseline_load / load:.1f}× |")  # fmt: skip


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
