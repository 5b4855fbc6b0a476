"""Load on the store: two sweep drivers launched at once on one store (SQLite file or
PostgreSQL server), eight runs training at the same time and logging every step. No run is
executed twice and every (run, step, metric) is stored exactly once with its value."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from sweep_run_helpers import executions, specs_of, write_grid

from slscale.identity import run_id
from slscale.spec import RunState, spec_to_dict
from slscale.store import open_store
from slscale.sweep.scheduler.runners import RESULT_FILE, SyntheticRun

RUNS, STEPS = 8, 30


def driver(grid: Path, workdir: Path, store: str, address: str) -> subprocess.Popen[str]:
    command = [
        sys.executable, "-m", "slscale.cli", "sweep", "launch", str(grid),
        "--workdir", str(workdir), "--store", store, "--address", address,
        "--max-concurrent", "4", "--lease-seconds", "20",
        "--run-fn", "slscale.sweep.scheduler.runners:SyntheticRun",
        "--run-fn-kwargs", json.dumps({"step_seconds": 0.1}),
    ]  # fmt: skip
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def peak_concurrency(workdir: Path, run_ids: Any) -> int:
    """Most runs training at one moment: each run spans from its start (executions.jsonl) to
    the writing of its result.json."""
    spans = [
        (executions(workdir, r)[0]["time"], (workdir / "runs" / r / RESULT_FILE).stat().st_mtime)
        for r in run_ids
    ]
    return max(sum(s <= start < e for s, e in spans) for start, _ in spans)


def reference_rows(tmp_path: Path, specs: dict[str, Any]) -> dict[tuple[str, int, str], float]:
    """Every (run, step, metric) -> value of the same runs trained one by one, uninterrupted."""
    reference = tmp_path / "reference"
    with open_store(reference) as store:
        store.register({rid: spec_to_dict(s) for rid, s in specs.items()})
    for rid, spec in specs.items():
        SyntheticRun()(spec_to_dict(spec), rid, str(reference), str(reference), 1)
    return stored_rows(str(reference))


def stored_rows(store_url: str) -> dict[tuple[str, int, str], float]:
    with open_store(store_url) as store:
        frame = store.metrics_frame()
    keys = list(zip(frame["run_id"], frame["step"].astype(int), frame["name"], strict=True))
    assert len(keys) == len(set(keys)), "a (run, step, metric) is stored twice"
    return dict(zip(keys, frame["value"], strict=True))


def test_two_drivers_and_eight_concurrent_runs_store_each_step_once(
    ray_eight_cpus, store_url, tmp_path
):
    grid = write_grid(tmp_path / "grid.yaml", seeds=list(range(RUNS)), steps=[STEPS])
    specs = {run_id(s): s for s in specs_of(grid)}
    workdir = tmp_path / "w"
    drivers = [driver(grid, workdir, store_url, ray_eight_cpus) for _ in range(2)]
    outputs = [d.communicate(timeout=240)[0] for d in drivers]
    assert [d.returncode for d in drivers] == [0, 0], outputs

    # Each run was started by exactly one driver, once.
    started = [{r for r in specs if f"{r}: attempt 1 started" in out} for out in outputs]
    assert started[0] | started[1] == set(specs) and not started[0] & started[1], outputs
    with open_store(store_url) as store:
        runs = {r.run_id: r for r in store.list_runs()}
    assert {runs[r].state for r in specs} == {RunState.SUCCEEDED}
    assert {runs[r].attempts for r in specs} == {1}
    assert all(len(executions(workdir, r)) == 1 for r in specs)
    # The runs overlapped: at some moment at least 6 of them were training at once.
    assert peak_concurrency(workdir, specs) >= 6

    rows = stored_rows(store_url)
    assert len(rows) == RUNS * STEPS * 2  # loss and attempt, every step of every run
    assert rows == reference_rows(tmp_path, specs)
