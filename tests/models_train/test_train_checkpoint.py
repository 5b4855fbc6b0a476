"""Checkpoint verification and selection on real files, and the buffered store link against a
real SQLite store that is unreachable for a while."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from train_helpers import tiny_job

from slscale.models.train import train_worker
from slscale.models.train.checkpoint import (
    CheckpointManager,
    verify_checkpoint,
    write_manifest,
)
from slscale.models.train.distributed import DistInfo
from slscale.models.train.report import read_result
from slscale.models.train.telemetry import StoreLink, read_metrics_jsonl
from slscale.spec import RunState
from slscale.store import open_store
from slscale.store.base import Metric

SOLO = DistInfo(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))


def make_checkpoint(root: Path, step: int, payload: bytes = b"weights") -> Path:
    path = root / f"step-{step:09d}"
    (path / "sub").mkdir(parents=True)
    (path / "model.pt").write_bytes(payload * 100)
    (path / "sub" / "optim.pt").write_bytes(payload)
    write_manifest(path, {"step": step, "world_size": 1})
    return path


def test_complete_checkpoint_verifies(tmp_path: Path) -> None:
    path = make_checkpoint(tmp_path, 3)
    assert verify_checkpoint(path) is None
    manifest = json.loads((path / "MANIFEST.json").read_text())
    assert set(manifest["files"]) == {"model.pt", "sub/optim.pt"}


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda p: (p / "model.pt").write_bytes(b"weights" * 50), "bytes"),
        (lambda p: (p / "sub" / "optim.pt").write_bytes(b"WEIGHTS"), "sha256"),
        (lambda p: (p / "sub" / "optim.pt").unlink(), "missing file"),
        (lambda p: (p / "MANIFEST.json").unlink(), "no readable MANIFEST.json"),
        (lambda p: (p / "MANIFEST.json").write_text('{"files": '), "no readable"),
    ],
    ids=["truncated", "flipped", "missing", "no-manifest", "torn-manifest"],
)
def test_damaged_checkpoint_is_detected(tmp_path: Path, damage: Any, reason: str) -> None:
    path = make_checkpoint(tmp_path, 3)
    damage(path)
    problem = verify_checkpoint(path)
    assert problem is not None and reason in problem


def test_newest_valid_checkpoint_is_chosen_and_broken_ones_set_aside(tmp_path: Path) -> None:
    make_checkpoint(tmp_path, 4)
    make_checkpoint(tmp_path, 8)
    broken = make_checkpoint(tmp_path, 12)
    (broken / "model.pt").write_bytes(b"x")
    (tmp_path / ".tmp-step-000000016").mkdir()  # an interrupted save
    manager = CheckpointManager(tmp_path, keep=2, info=SOLO)
    assert manager.latest_valid() == tmp_path / "step-000000008"
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names[0] == ".tmp-step-000000016"
    assert names[1].startswith("corrupt-step-000000012-")
    assert names[2:] == ["step-000000004", "step-000000008"]


def test_no_checkpoint_means_a_fresh_start(tmp_path: Path) -> None:
    assert CheckpointManager(tmp_path / "none", keep=2, info=SOLO).latest_valid() is None


def test_only_the_last_k_checkpoints_are_kept(dist: Any, tmp_path: Path) -> None:
    job = tiny_job(
        tmp_path, run_id="keep", checkpoint_every_steps=3, keep_checkpoints=2, store=None
    )
    result = train_worker(job)
    checkpoints = result.run_dir / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["step-000000021", "step-000000024"]
    assert all(verify_checkpoint(p) is None for p in checkpoints.iterdir())


def blocked_store(tmp_path: Path) -> tuple[Path, Path]:
    """A store target whose folder is (for now) a plain file, so opening it fails."""
    blocker = tmp_path / "db"
    blocker.write_text("not a folder")
    return blocker, blocker / "results.db"


def test_store_link_buffers_while_the_store_is_unreachable(tmp_path: Path) -> None:
    blocker, target = blocked_store(tmp_path)
    link = StoreLink(lambda: open_store(target), "r1", tmp_path / "metrics.jsonl")
    link.register({"tokens": 10})
    link.set_state(RunState.RUNNING, host="here")
    link.log_metrics([Metric("r1", 1, "loss", 4.0, tokens=5), Metric("r1", 2, "loss", 3.0)])
    assert link.flush() is False
    assert link.pending == 3
    assert link.flush() is False  # backing off: no new attempt within a second
    assert [m.step for m in link.pending_metrics()] == [1, 2]
    assert len(read_metrics_jsonl(tmp_path / "metrics.jsonl")) == 2  # kept locally at once

    blocker.unlink()  # the store comes back
    link.log_metrics([Metric("r1", 3, "loss", 2.5)])
    assert link.close(retry_seconds=5) is True
    with open_store(target) as store:
        run = store.get_run("r1")
        assert run is not None and run.state == RunState.RUNNING and run.host == "here"
        assert list(store.metrics_frame()["value"]) == [4.0, 3.0, 2.5]


def test_training_survives_a_store_that_never_answers(dist: Any, tmp_path: Path) -> None:
    _, target = blocked_store(tmp_path)
    job = tiny_job(tmp_path, run_id="lonely", store=str(target), store_retry_seconds=0.2)
    result = train_worker(job)
    assert result.state == RunState.SUCCEEDED
    assert read_result(result.run_dir)["state"] == "SUCCEEDED"
    losses = [k for k in read_metrics_jsonl(result.run_dir / "metrics.jsonl") if k[1] == "loss"]
    assert len(losses) == result.steps == 25


def test_a_child_process_forms_its_own_process_group(dist: Any) -> None:
    # this process made up a single-process rendezvous; a child started with its environment
    # must not try to serve the same port
    import subprocess
    import sys

    code = (
        "from slscale.models.train.distributed import init_distributed; "
        "print(init_distributed('cpu').world_size)"
    )
    child = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert child.returncode == 0, child.stderr[-2000:]
    assert child.stdout.strip().endswith("1")
