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
from ray import cloudpickle
from sweep_run_helpers import (
    LosesDataOnFirstAttempt,
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
from slscale.sweep.scheduler.driver import NOT_RETRIED
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


def _world_with_a_bad_row(folder):
    """A generated world whose SlamKit features file has unit 731 (of 500) on its line 3."""
    generate_world(folder, WorldConfig(words=20_000, eval_pairs=20))
    features = folder / "speech" / "real" / "train.jsonl"
    lines = features.read_text().splitlines()
    row = json.loads(lines[2])
    row["units"][0] = 731
    lines[2] = json.dumps(row)
    features.write_text("\n".join(lines) + "\n")
    return features


@pytest.mark.parametrize("workers", [1, pytest.param(2, marks=pytest.mark.slow)])
def test_a_bad_data_row_fails_the_run_at_its_first_attempt(ray_address, tmp_path, capsys, workers):
    """Every attempt would read the same bad row: the run ends FAILED after one attempt (of
    three allowed), its error naming the file and line, as a one-process run and as a Ray
    Train worker group."""
    features = _world_with_a_bad_row(tmp_path / "world")
    grid = tmp_path / "grid.yaml"
    recipe = {"global_batch_size": 4, "context_length": 64, "lr": 3e-3, "lr_min": 3e-4}
    base = {"family": "llama", "size": "mini-25k", "tokens": 4 * 4 * 64, "recipe": recipe}
    base |= {"modality": "textless", "units_only_vocab": True}
    grid.write_text(yaml.safe_dump({"name": "bad-row", "base": base, "axes": {"seed": [0]}}))
    workdir = tmp_path / "w"
    argv = ["sweep", "launch", str(grid), "--workdir", str(workdir), "--data"]
    argv += [str(tmp_path / "world"), "--address", ray_address, "--max-retries", "2"]
    argv += ["--workers-per-run", str(workers), "--quiet"]
    assert slscale_cli(argv) == 1
    (rid, record), *others = records(workdir).items()
    assert not others
    assert record.state == RunState.FAILED and record.attempts == 1
    assert record.summary["failures"] == 1
    error = record.error.splitlines()
    assert error[0] == (
        f"DataError: {features}:3: unit 731 is outside [0, 500); the units must come from a "
        "500-cluster tokenizer (set num_units to match it)"
    )
    assert error[-1] == NOT_RETRIED
    assert curve(workdir, rid) == {}  # found before the first step

    capsys.readouterr()
    assert slscale_cli(["sweep", "status", "--workdir", str(workdir), "--json"]) == 0
    (shown,) = json.loads(capsys.readouterr().out)
    assert shown["state"] == "FAILED" and shown["attempts"] == 1
    assert shown["error"].startswith(f"DataError: {features}:3: unit 731")


def test_a_transient_error_is_still_retried(ray_address, tmp_path):
    """A connection reset while the first attempt opens its data is retried; the second
    attempt trains the whole run."""
    grid = write_grid(tmp_path / "grid.yaml", seeds=[5], steps=[6])
    (spec,) = specs_of(grid)
    rid, workdir = run_id(spec), tmp_path / "w"
    run_fn = TrainerRun(job_builder=LosesDataOnFirstAttempt(), runtime=RUNTIME)
    helpers = sys.modules[LosesDataOnFirstAttempt.__module__]
    cloudpickle.register_pickle_by_value(helpers)  # Ray's workers cannot import the tests
    try:
        report, events = run_sweep(workdir, grid, run_fn, ray_address, max_retries=2)
    finally:
        cloudpickle.unregister_pickle_by_value(helpers)
    assert report.ok
    record = records(workdir)[rid]
    assert record.state == RunState.SUCCEEDED and record.attempts == 2
    assert record.summary["failures"] == 1 and record.summary["tokens"] == spec.tokens
    retried = [m for r, m in events.lines if r == rid and "retry 1 of 2" in m]
    assert len(retried) == 1 and "ConnectionResetError" in retried[0]
    assert sorted(curve(workdir, rid)) == list(range(1, 7))


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
