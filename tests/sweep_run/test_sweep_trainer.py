"""The scheduler running the real DeepSpeed trainer (CPU, gloo) on a local Ray cluster."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import psutil
import pytest
import yaml
from sweep_run_helpers import (
    curve,
    records,
    run_sweep,
    run_sweep_during,
    specs_of,
    wait_for,
    write_grid,
)

from slscale.cli import main as slscale_cli
from slscale.identity import run_id
from slscale.models.world.generate import WorldConfig, generate_world
from slscale.spec import RunState
from slscale.sweep.scheduler.runners import MarkovJob, TrainerRun

sys.path.insert(0, str(Path(__file__).parents[1]))
from tracker_files import tensorboard_scalars

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
    """`slscale sweep launch --data`: the trainer of `slscale train` on a generated world."""
    world = tmp_path / "world"
    generate_world(world, WorldConfig(words=20_000, eval_pairs=20))
    grid = tmp_path / "grid.yaml"
    grid.write_text(
        yaml.safe_dump(
            {
                "name": "world-mini",
                "base": {
                    "family": "llama",
                    "size": "mini-25k",
                    "tokens": 12 * 4 * 64,
                    "recipe": {
                        "global_batch_size": 4,
                        "context_length": 64,
                        "lr": 3e-3,
                        "lr_min": 3e-4,
                        "warmup_fraction": 0.1,
                    },
                },
                "axes": {
                    "arm": [
                        {"modality": "textless", "units_only_vocab": True},
                        {
                            "modality": "interleaved",
                            "mix": {
                                "text_share": 0.3,
                                "interleaved_share": 0.4,
                                "speech_share": 0.3,
                            },
                        },
                    ],
                    "seed": [0, 1, 2],
                },
            }
        )
    )
    workdir = tmp_path / "w"
    argv = [
        "sweep",
        "launch",
        str(grid),
        "--workdir",
        str(workdir),
        "--data",
        str(world),
        "--address",
        ray_address,
        "--log-every",
        "1",
        "--tensorboard",
        str(tmp_path / "tb"),
        "--quiet",
    ]
    assert slscale_cli(argv) == 0
    runs = records(workdir)
    assert len(runs) == 6
    for rid, record in runs.items():
        assert record.state == RunState.SUCCEEDED and record.attempts == 1
        assert record.summary["tokens"] == 12 * 4 * 64 and record.summary["steps"] == 12
        assert record.summary["val_loss"] > 0 and record.summary["n_params"] > 0
        losses = curve(workdir, rid)
        assert sorted(losses) == list(range(1, 13))
        assert losses[12] < losses[1]  # it learned something
        assert (workdir / "runs" / rid / "model" / "config.json").exists()
        # the Ray workers mirrored each run to its TensorBoard folder (32-bit floats there)
        assert tensorboard_scalars(tmp_path / "tb" / rid)["loss"] == pytest.approx(losses, 1e-6)
    assert {spec["modality"] for spec in (r.spec for r in runs.values())} == {
        "textless",
        "interleaved",
    }


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

    report, events = run_sweep_during(kill_mid_run, workdir, grid, run_fn, ray_address)
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
