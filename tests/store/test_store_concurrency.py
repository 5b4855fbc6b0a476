"""Several real processes using one store at once (both backends).

Each of four spawned processes, released together: opens a store nobody has created yet,
registers runs that overlap the others', claims a run that all of them want, and writes its own
curve plus keys of a shared run that every process writes too, in small interleaving batches.
"""

from __future__ import annotations

import multiprocessing as mp
from typing import Any

import pandas as pd

from slscale.store import Metric, open_store

N_PROCESSES = 4
STEPS = 1200
BATCH_ROWS = 200  # small batches: the writers' transactions interleave many times


def worker_runs(worker: int) -> list[str]:
    """Run ids a worker registers: its own, the shared ones, and ids overlapping its
    neighbour's (``pool-05`` .. ``pool-14`` for worker 1, ...)."""
    pool = [f"pool-{i:02d}" for i in range(worker * 5, worker * 5 + 10)]
    return [f"own-{worker}", "shared", "contested", *pool]


def worker_rows(worker: int) -> list[Metric]:
    own = [Metric(f"own-{worker}", s, "loss", worker + s / STEPS, tokens=s) for s in range(STEPS)]
    shared = [Metric("shared", s, n, float(worker)) for s in range(STEPS // 3) for n in "ab"]
    return [*own, *(shared[::-1] if worker % 2 else shared)]  # opposite key orders


def worker(target: str, worker: int, barrier: Any, results: Any) -> None:
    rows = worker_rows(worker)
    barrier.wait()
    with open_store(target) as store:
        new = store.register({run_id: {"worker": worker} for run_id in worker_runs(worker)})
        claimed = store.claim("contested", f"driver-{worker}", 600)
        for start in range(0, len(rows), BATCH_ROWS):
            store.log_metrics(rows[start : start + BATCH_ROWS])
    results.put((worker, new, claimed))


def run_workers(target: str) -> list[tuple[int, list[str], bool]]:
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(N_PROCESSES), ctx.Queue()
    procs = [
        ctx.Process(target=worker, args=(target, w, barrier, results)) for w in range(N_PROCESSES)
    ]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    return outcomes


def test_concurrent_processes_honour_the_contract(store_target: str) -> None:
    outcomes = run_workers(store_target)

    all_ids = sorted({run_id for w in range(N_PROCESSES) for run_id in worker_runs(w)})
    reported_new = sorted(run_id for _, new, _ in outcomes for run_id in new)
    assert reported_new == all_ids  # each run reported new by exactly one process
    winners = [w for w, _, claimed in outcomes if claimed]
    assert len(winners) == 1  # exactly one driver got the lease

    with open_store(store_target) as store:
        assert [r.run_id for r in store.list_runs()] == all_ids
        contested = store.get_run("contested")
        assert contested is not None and contested.lease_owner == f"driver-{winners[0]}"
        frame = store.metrics_frame()
    assert not frame[["run_id", "step", "name"]].duplicated().any()
    assert len(frame) == N_PROCESSES * STEPS + 2 * (STEPS // 3)
    for w in range(N_PROCESSES):
        own = frame[frame["run_id"] == f"own-{w}"].reset_index(drop=True)
        assert own["step"].tolist() == list(range(STEPS))
        expected = pd.Series([w + s / STEPS for s in range(STEPS)], name="value")
        pd.testing.assert_series_equal(own["value"], expected)
    shared = frame[frame["run_id"] == "shared"]
    assert set(shared["value"]) <= {float(w) for w in range(N_PROCESSES)}
    assert sorted(zip(shared["step"], shared["name"], strict=True)) == [
        (s, n) for s in range(STEPS // 3) for n in "ab"
    ]
