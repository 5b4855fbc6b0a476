"""Runs mirrored to W&B (offline mode) and TensorBoard: the curves read back with the trackers'
own formats equal the store's, a run killed and resumed continues the same tracker run, and a
tracker that cannot start never stops the run."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from train_helpers import run_script, script_args, tiny_job

from slscale.models.train import train_worker
from slscale.spec import RunState
from slscale.store import open_store
from slscale.trackers import TrackerSettings, wandb_run_id

sys.path.insert(0, str(Path(__file__).parents[1]))
from tracker_files import tensorboard_scalars, wandb_runs

TB_FLOAT = 1e-6
"""TensorBoard keeps scalars as 32-bit floats: values agree with the store to float32."""


def store_curves(workdir: Path, run_id: str) -> dict[str, dict[int, float]]:
    with open_store(workdir) as store:
        frame = store.metrics_frame(run_ids=[run_id])
    return {
        str(name): dict(zip(part["step"].astype(int), part["value"].astype(float), strict=True))
        for name, part in frame.groupby("name")
    }


def wandb_history(folder: Path) -> tuple[set[str], dict[str, dict[int, float]]]:
    """The W&B ids of the offline files and their merged curves (later attempts win)."""
    ids, curves = set(), {}
    for run in wandb_runs(folder):
        if not run.run_id:  # the file of a process killed before W&B wrote its records
            assert not run.history
            continue
        ids.add(run.run_id)
        for step, values in run.history.items():
            for name, value in values.items():
                curves.setdefault(name, {})[step] = float(value)
    return ids, curves


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    # a W&B run in this process starts a service and names it here; training processes of
    # their own must start their own
    monkeypatch.delenv("WANDB_SERVICE", raising=False)


def test_a_run_mirrored_to_both_trackers_reads_back_as_the_store(
    dist: Any, tmp_path: Path, offline: None
) -> None:
    settings = TrackerSettings(
        wandb_project="slscale-test",
        wandb_tags=("tiny", "ci"),
        wandb_dir=str(tmp_path / "wb"),
        tensorboard_dir=str(tmp_path / "tb"),
    )
    job = tiny_job(tmp_path, "mirrored", eval_every_steps=8, trackers=settings)
    assert train_worker(job).state == RunState.SUCCEEDED
    store = store_curves(tmp_path, "mirrored")
    assert {"loss", "lr", "tokens", "flops_6nd", "mfu", "val_loss"} <= set(store)

    ids, history = wandb_history(tmp_path / "wb")
    assert ids == {wandb_run_id("mirrored")}
    assert history == store  # every metric, every step, the same float
    (run,) = wandb_runs(tmp_path / "wb")
    assert run.name == "mirrored" and run.group == tmp_path.name and run.tags == ["tiny", "ci"]
    assert run.config["N"] > 0 and run.config["D"] == job.config.tokens
    assert run.config["flops_6nd"] == 6.0 * run.config["N"] * run.config["D"]
    assert run.config["resources.num_workers"] == 1 and run.config["seed"] == 0
    assert run.summary["state"] == "SUCCEEDED"
    assert run.summary["loss"] == pytest.approx(store["loss"][max(store["loss"])], rel=1e-12)

    board = tensorboard_scalars(tmp_path / "tb" / "mirrored")
    for name, curve in store.items():
        assert board[name] == pytest.approx(curve, rel=TB_FLOAT), name
    assert board["summary/loss"][0] == pytest.approx(run.summary["loss"], rel=TB_FLOAT)


def test_a_killed_run_resumes_into_the_same_tracker_runs(tmp_path: Path, offline: None) -> None:
    trackers = {
        "wandb_project": "slscale-test",
        "wandb_dir": str(tmp_path / "wb"),
        "tensorboard_dir": str(tmp_path / "tb"),
    }
    args = script_args(tmp_path, "killed", checkpoint_every_steps=4, trackers=trackers)
    crashed = run_script({**args, "kill_at_batch": 11}, tmp_path)  # in step 11
    assert crashed.returncode == -9, crashed.stderr[-3000:]
    done = run_script(args, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]

    store = store_curves(tmp_path, "killed")
    assert sorted(store["loss"]) == list(range(1, 26))
    ids, _ = wandb_history(tmp_path / "wb")
    assert ids == {wandb_run_id("killed")}  # every attempt's file belongs to one W&B run
    # Whatever the killed process's W&B service had written (nothing, some steps), the resumed
    # attempt logged steps 1-8 again from the run's metrics.jsonl and trained 9-25 itself:
    # its file alone holds the store's whole curve, value for value.
    resumed = [run for run in wandb_runs(tmp_path / "wb") if run.summary.get("state")]
    assert len(resumed) == 1 and resumed[0].summary["state"] == "SUCCEEDED"
    got: dict[str, dict[int, float]] = {}
    for step, values in resumed[0].history.items():
        for name, value in values.items():
            got.setdefault(name, {})[step] = float(value)
    assert got == store
    # steps 9 and 10 were logged by both attempts: TensorBoard keeps the resumed ones only
    board = tensorboard_scalars(tmp_path / "tb" / "killed")
    assert board["loss"] == pytest.approx(store["loss"], rel=TB_FLOAT)


def test_a_tracker_that_cannot_start_never_stops_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """W&B online without a login (and no network), TensorBoard into a path that is a file: one
    warning each, and the run trains to the end with its whole curve in the store."""
    monkeypatch.setenv("WANDB_MODE", "online")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_SERVICE", raising=False)
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    blocker = tmp_path / "tb-is-a-file"
    blocker.write_text("")
    trackers = {
        "wandb_project": "slscale-test",
        "wandb_dir": str(tmp_path / "wb"),
        "tensorboard_dir": str(blocker),
    }
    done = run_script(script_args(tmp_path, "untracked", trackers=trackers), tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    warnings = [line for line in done.stderr.splitlines() if " mirror cannot start " in line]
    assert len(warnings) == 2, done.stderr[-3000:]  # once per tracker, not once per step
    assert any(w.startswith("wandb mirror cannot start for run untracked") for w in warnings)
    assert any(w.startswith("tensorboard mirror cannot start for run untracked") for w in warnings)
    assert sorted(store_curves(tmp_path, "untracked")["loss"]) == list(range(1, 26))
