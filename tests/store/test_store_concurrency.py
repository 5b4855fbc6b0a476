"""Several real processes writing to one store at once (both backends)."""

from __future__ import annotations

import multiprocessing as mp
from typing import Any

import pandas as pd

from slscale.store import Metric, open_store

N_PROCESSES = 4
STEPS = 1500
BATCH_ROWS = 250  # small batches: the writers' transactions interleave many times


def write_metrics(target: str, worker: int, barrier: Any, results: Any) -> None:
    """One writer: its own run's curve, plus a shared run's keys that every writer also
    writes (in a different batch order), plus a claim on a run that all of them want."""
    store = open_store(target)
    own = [Metric(f"own-{worker}", s, "loss", worker + s / STEPS, tokens=s) for s in range(STEPS)]
    shared = [Metric("shared", s, n, float(worker)) for s in range(STEPS // 3) for n in "ab"]
    shared = shared[::-1] if worker % 2 else shared
    rows = [*own, *shared]
    barrier.wait()
    claimed = store.claim("contested", f"driver-{worker}", 600)
    for start in range(0, len(rows), BATCH_ROWS):
        store.log_metrics(rows[start : start + BATCH_ROWS])
    store.close()
    results.put((worker, claimed))


def open_and_register(target: str, worker: int, barrier: Any, results: Any) -> None:
    """Open a store nobody has created yet and register overlapping run ids, all at once."""
    barrier.wait()
    with open_store(target) as store:
        ids = [f"run-{i:02d}" for i in range(worker * 5, worker * 5 + 10)]
        results.put(store.register({run_id: {"worker": worker} for run_id in ids}))


def test_simultaneous_first_opens_and_registers(store_target: str) -> None:
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(N_PROCESSES), ctx.Queue()
    procs = [
        ctx.Process(target=open_and_register, args=(store_target, w, barrier, results))
        for w in range(N_PROCESSES)
    ]
    for p in procs:
        p.start()
    reported = [run_id for _ in procs for run_id in results.get(timeout=120)]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    expected = [f"run-{i:02d}" for i in range(N_PROCESSES * 5 + 5)]
    assert sorted(reported) == expected  # each id reported new by exactly one process
    with open_store(store_target) as store:
        assert [r.run_id for r in store.list_runs()] == expected


def test_concurrent_writers_keep_every_key_exactly_once(store_target: str, make_spec) -> None:
    with open_store(store_target) as store:
        run_ids = ["shared", "contested", *(f"own-{w}" for w in range(N_PROCESSES))]
        store.register({run_id: make_spec() for run_id in run_ids})
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(N_PROCESSES), ctx.Queue()
    procs = [
        ctx.Process(target=write_metrics, args=(store_target, w, barrier, results))
        for w in range(N_PROCESSES)
    ]
    for p in procs:
        p.start()
    outcomes = dict(results.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert sum(outcomes.values()) == 1  # exactly one driver got the lease

    with open_store(store_target) as store:
        frame = store.metrics_frame()
        winner = next(w for w, won in outcomes.items() if won)
        contested = store.get_run("contested")
        assert contested is not None and contested.lease_owner == f"driver-{winner}"
    keys = frame[["run_id", "step", "name"]]
    assert not keys.duplicated().any()
    assert len(frame) == N_PROCESSES * STEPS + 2 * (STEPS // 3)
    for w in range(N_PROCESSES):
        own = frame[frame["run_id"] == f"own-{w}"]
        assert own["step"].tolist() == list(range(STEPS))
        expected = pd.Series([w + s / STEPS for s in range(STEPS)], name="value")
        pd.testing.assert_series_equal(own["value"].reset_index(drop=True), expected)
    shared = frame[frame["run_id"] == "shared"]
    assert set(shared["value"]) <= {float(w) for w in range(N_PROCESSES)}
    assert sorted(set(zip(shared["step"], shared["name"], strict=True))) == [
        (s, n) for s in range(STEPS // 3) for n in "ab"
    ]
