"""Data-parallel training over two real CPU processes (spawned, gloo), as Ray Train would run
``train_worker`` on two workers."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest
from train_helpers import run_script, script_args, script_result, tiny_job

from slscale.models.train import run_local
from slscale.models.train.checkpoint import verify_checkpoint
from slscale.models.train.report import read_result
from slscale.spec import RunState
from slscale.store import open_store


@pytest.mark.parametrize(
    "stage", [pytest.param(2, id="zero2"), pytest.param(3, id="zero3", marks=pytest.mark.slow)]
)
def test_two_workers_train_to_the_budget(tmp_path: Path, stage: int) -> None:
    job = tiny_job(
        tmp_path, run_id="pair", num_workers=2, zero_stage=stage, checkpoint_every_steps=10
    )
    result = run_local(job)  # spawns two worker processes
    assert result.state == RunState.SUCCEEDED

    record = read_result(tmp_path / "runs" / "pair")
    assert record["runtime"]["world_size"] == 2
    assert record["tokens"] == sum(record["tokens_by_stream"].values()) == 24 * 256 + 100
    with open_store(tmp_path) as store:
        frame = store.metrics_frame(run_ids=["pair"], names=["loss"])
    losses = dict(zip(frame["step"], frame["value"], strict=True))
    assert losses[25] < losses[1] - 0.5

    checkpoint = tmp_path / "runs" / "pair" / "checkpoints" / "step-000000020"
    assert verify_checkpoint(checkpoint) is None
    manifest = json.loads((checkpoint / "MANIFEST.json").read_text())
    assert manifest["world_size"] == 2
    names = set(manifest["files"])
    assert {"trainer_state_rank00000.pt", "trainer_state_rank00001.pt"} <= names
    assert sum("zero_pp_rank_1" in name for name in names) >= 1  # rank 1's optimizer partition


@pytest.mark.usefixtures("dist")
def test_two_workers_train_on_the_global_batches_of_one(tmp_path: Path) -> None:
    """Both workers draw each step from the run's one stream and keep every other sequence:
    two workers see the global batches one worker sees, and give its loss curve up to the
    order of float sums."""
    run_local(tiny_job(tmp_path, run_id="one", zero_stage=2))
    run_local(tiny_job(tmp_path, run_id="two", num_workers=2, zero_stage=2))
    with open_store(tmp_path) as store:
        frame = store.metrics_frame(run_ids=["one", "two"], names=["loss"])
    curves = {
        run: dict(zip(part["step"], part["value"], strict=True))
        for run, part in frame.groupby("run_id")
    }
    assert sorted(curves["two"]) == sorted(curves["one"]) == list(range(1, 26))
    for step, loss in curves["one"].items():
        assert curves["two"][step] == pytest.approx(loss, rel=1e-5)
    one, two = (read_result(tmp_path / "runs" / run) for run in ("one", "two"))
    assert one["tokens_by_stream"] == two["tokens_by_stream"]  # counted once, not per worker


@pytest.mark.slow
def test_two_workers_resume_exactly_after_a_crash(tmp_path: Path) -> None:
    args = script_args(tmp_path, "pair", num_workers=2, zero_stage=2, checkpoint_every_steps=4)
    straight = run_script({**args, "config": {**args["config"], "run_id": "straight"}}, tmp_path)
    assert straight.returncode == 0, straight.stderr[-3000:]
    # each worker draws the whole step (8 sequences) at once: batch 11 is in step 11
    crashed = run_script({**args, "kill_at_batch": 11}, tmp_path)
    assert crashed.returncode != 0 and script_result(crashed.stdout) is None
    resumed = run_script(args, tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert read_result(tmp_path / "runs" / "pair")["resumed_from_steps"] == [8]
    with open_store(tmp_path) as store:
        frame = store.metrics_frame(run_ids=["pair", "straight"], names=["loss"])
    curves = {
        run: dict(zip(part["step"], part["value"], strict=True))
        for run, part in frame.groupby("run_id")
    }
    assert sorted(curves["pair"]) == list(range(1, 26))
    for step, loss in curves["straight"].items():
        assert curves["pair"][step] == pytest.approx(loss, abs=1e-6)


@pytest.mark.slow
def test_sigterm_to_the_launcher_reaches_every_worker(tmp_path: Path) -> None:
    args = script_args(tmp_path, "pair", num_workers=2, zero_stage=2, checkpoint_every_steps=100)
    proc = run_script({**args, "sleep_per_batch": 0.2}, tmp_path, wait=False)
    metrics = tmp_path / "runs" / "pair" / "metrics.jsonl"
    deadline = time.monotonic() + 180
    while not (metrics.exists() and '"step": 2' in metrics.read_text()):
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=180)
    result = script_result(stdout)
    assert result is not None and result["state"] == "PREEMPTED", stderr[-3000:]
    checkpoint = tmp_path / "runs" / "pair" / "checkpoints" / f"step-{result['steps']:09d}"
    assert verify_checkpoint(checkpoint) is None
