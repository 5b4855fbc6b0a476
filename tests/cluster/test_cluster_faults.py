"""Faults of a sweep's surroundings: the results store (PostgreSQL) goes away mid-sweep and
comes back; a run's checkpoint folder cannot be written (found before training starts).

The outage here is shorter than the driver's lease renewal period (``lease_seconds / 4``), so
it tests the trainer's side (its rows buffered and written after the outage); the driver's own
store calls meeting an outage are tested in test_cluster_store_outage.py.

A damaged (truncated) checkpoint is skipped for the previous one: tested with the trainer in
tests/models_train/test_train_checkpoint.py (test_damaged_checkpoint_is_detected,
test_newest_valid_checkpoint_is_chosen_and_broken_ones_set_aside)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from sweep_run_helpers import run_sweep, specs_of, wait_for, write_grid

from slscale.identity import run_id
from slscale.spec import RunState
from slscale.store import open_store
from slscale.sweep.scheduler.runners import MarkovJob, TrainerRun

STEPS = 300
"""Room for both runs to log 10 more steps after the later one reaches step 5: their starts can
be seconds apart on a loaded machine (one worker still importing torch), and a 60-step run was
seen to finish first."""
RUNTIME = {
    "log_every_steps": 1,
    "export_model": False,
    "device": "cpu",
    "peak_flops_per_device": 183e9,
}


def logged_steps(workdir: Path, rid: str) -> list[int]:
    """Steps of the run's loss in its local metrics.jsonl (written whether or not the store is
    reachable)."""
    path = workdir / "runs" / rid / "metrics.jsonl"
    if not path.exists():
        return []
    rows = (json.loads(line) for line in path.read_text().splitlines() if line.strip())
    return [r["step"] for r in rows if r["name"] == "loss"]


@pytest.mark.slow
@pytest.mark.postgres
def test_a_store_outage_mid_sweep_loses_nothing(ray_eight_cpus, outage_server, tmp_path):
    grid = write_grid(tmp_path / "grid.yaml", seeds=[1, 2], steps=[STEPS])
    ids = [run_id(s) for s in specs_of(grid)]
    workdir = tmp_path / "w"
    during: dict[str, list[int]] = {}

    def outage() -> None:
        wait_for(lambda: all(len(logged_steps(workdir, r)) >= 5 for r in ids), 120, "step 5")
        outage_server.stop()
        before = {r: len(logged_steps(workdir, r)) for r in ids}
        # Training goes on without the store: each run logs 10 more steps locally.
        wait_for(
            lambda: all(len(logged_steps(workdir, r)) >= before[r] + 10 for r in ids),
            120,
            "10 steps logged while the store is down",
        )
        during.update({r: [before[r], len(logged_steps(workdir, r))] for r in ids})
        time.sleep(2.0)
        outage_server.start()

    thread = threading.Thread(target=outage)
    thread.start()
    run_fn = TrainerRun(job_builder=MarkovJob(), runtime=RUNTIME)
    report, events = run_sweep(
        workdir, grid, run_fn, ray_eight_cpus, store=outage_server.url, lease_seconds=240.0
    )
    thread.join()
    assert report.ok, events.lines
    assert len(during) == 2 and all(b < a for b, a in during.values())

    with open_store(outage_server.url) as store:
        runs = {r.run_id: r for r in store.list_runs()}
        frame = store.metrics_frame(names=["loss"])
    for rid in ids:
        # The run trained through the outage (one attempt) and its buffered rows reached the
        # store: every step once, with the values logged locally.
        assert runs[rid].state == RunState.SUCCEEDED and runs[rid].attempts == 1
        mine = frame[frame["run_id"] == rid]
        missing = set(range(1, STEPS + 1)) - set(mine["step"].astype(int))
        assert not missing, (rid, sorted(missing), during)
        local = {}
        path = workdir / "runs" / rid / "metrics.jsonl"
        for line in path.read_text().splitlines():
            row = json.loads(line)
            if row["name"] == "loss":
                local[row["step"]] = row["value"]
        assert dict(zip(mine["step"].astype(int), mine["value"], strict=True)) == local


def test_an_unwritable_checkpoint_folder_fails_the_run_with_its_path(ray_eight_cpus, tmp_path):
    """The run's checkpoint folder cannot be created (a file is in its way; as root, file
    modes would not stop the writes): the run ends FAILED, and its reason names the path."""
    grid = write_grid(tmp_path / "grid.yaml", seeds=[3], steps=[12])
    (rid,) = [run_id(s) for s in specs_of(grid)]
    workdir = tmp_path / "w"
    blocker = workdir / "runs" / rid / "checkpoints"
    blocker.parent.mkdir(parents=True)
    blocker.write_text("not a folder")
    run_fn = TrainerRun(job_builder=MarkovJob(), runtime={**RUNTIME, "checkpoint_every_steps": 4})
    report, _ = run_sweep(workdir, grid, run_fn, ray_eight_cpus, max_retries=0)
    assert report.states[rid] == RunState.FAILED
    with open_store(workdir) as store:
        record = store.get_run(rid)
    assert record is not None and record.state == RunState.FAILED
    first_line = (record.error or "").splitlines()[0]
    assert first_line.startswith(f"SlscaleError: cannot write checkpoints to {blocker}: "), (
        first_line
    )
    # Found before training, not at the first checkpoint (step 4): no step was logged.
    assert logged_steps(workdir, rid) == []
