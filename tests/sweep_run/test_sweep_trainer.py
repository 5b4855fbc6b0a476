"""The scheduler running the real DeepSpeed trainer (CPU, gloo) on a local Ray cluster."""

from __future__ import annotations

import json
import os
import signal
import threading

import psutil
import pytest
from sweep_run_helpers import curve, records, run_sweep, specs_of, wait_for, write_grid

from slscale.identity import run_id
from slscale.spec import RunState
from slscale.sweep.scheduler.runners import MarkovJob, TrainerRun

pytestmark = pytest.mark.timeout(300)

RUNTIME = {
    "log_every_steps": 1,
    "export_model": False,
    "device": "cpu",
    "peak_flops_per_device": 183e9,  # STACK.md's measured fp32 peak: no measuring per run
}


def trainer(**runtime):
    return TrainerRun(job_builder=MarkovJob(), runtime={**RUNTIME, **runtime})


def test_a_six_run_miniature_grid_trains_to_completion(ray_address, tmp_path):
    grid = write_grid(tmp_path / "grid.yaml", seeds=[0, 1, 2], steps=[6, 12])
    workdir = tmp_path / "w"
    report, _ = run_sweep(workdir, grid, trainer(), ray_address)
    assert report.ok
    runs = records(workdir)
    for spec in specs_of(grid):
        rid = run_id(spec)
        steps = spec.tokens // (4 * 32)
        record = runs[rid]
        assert record.state == RunState.SUCCEEDED and record.attempts == 1
        assert record.summary["tokens"] == spec.tokens and record.summary["steps"] == steps
        assert record.summary["val_loss"] > 0 and record.summary["n_params"] > 0
        losses = curve(workdir, rid)
        assert sorted(losses) == list(range(1, steps + 1))
        assert losses[steps] < losses[1]  # it learned something
        assert (workdir / "runs" / rid / "result.json").exists()


def _worker_of(rid):
    """The Ray worker process running run ``rid`` (its title is ray::slscale-run:<run id>)."""
    for proc in psutil.process_iter(["cmdline"]):
        if (proc.info["cmdline"] or [""])[0].startswith(f"ray::slscale-run:{rid}"):
            return proc.pid
    return None


@pytest.mark.slow
def test_a_killed_trainer_resumes_and_matches_an_uninterrupted_run(ray_address, tmp_path):
    grid = write_grid(tmp_path / "grid.yaml", seeds=[3], steps=[120])
    (spec,) = specs_of(grid)
    rid, workdir = run_id(spec), tmp_path / "w"
    run_fn = trainer(checkpoint_every_steps=10)

    def kill_mid_run():
        wait_for(lambda: (workdir / "runs" / rid).exists(), 120, "the run to start")
        wait_for(lambda: len(curve(workdir, rid)) >= 35, 120, "step 35")
        os.kill(_worker_of(rid), signal.SIGKILL)

    killer = threading.Thread(target=kill_mid_run)
    killer.start()
    report, events = run_sweep(workdir, grid, run_fn, ray_address)
    killer.join()
    assert report.ok
    record = records(workdir)[rid]
    assert record.attempts == 2 and record.summary["preemptions"] == 1
    assert any("WorkerCrashedError" in m for _, m in events.lines)

    reference = tmp_path / "reference"
    run_sweep(reference, grid, run_fn, ray_address)
    resumed, uninterrupted = curve(workdir, rid), curve(reference, rid)
    assert sorted(resumed) == list(range(1, 121))
    # Same data order, RNG state and optimizer state after the resume: the same numbers.
    assert resumed == uninterrupted


@pytest.mark.slow
def test_a_two_worker_run_trains_as_a_ray_train_worker_group(ray_address, tmp_path):
    grid = write_grid(tmp_path / "grid.yaml", seeds=[4], steps=[8])
    (spec,) = specs_of(grid)
    rid, workdir = run_id(spec), tmp_path / "w"
    report, _ = run_sweep(workdir, grid, trainer(zero_stage=2), ray_address, workers_per_run=2)
    assert report.ok
    result = json.loads((workdir / "runs" / rid / "result.json").read_text())
    assert result["runtime"]["world_size"] == 2 and result["runtime"]["zero_stage"] == 2
    assert sorted(curve(workdir, rid)) == list(range(1, 9))
    assert records(workdir)[rid].summary["tokens"] == spec.tokens
