"""A trainer attempt that a newer attempt supersedes writes nothing more to the run: no
checkpoint, no metric, no state, no result (real DeepSpeed engine, real SQLite store)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import torch
from train_helpers import tiny_job

from slscale import fence
from slscale.models.train import train_worker
from slscale.models.train.checkpoint import CheckpointManager
from slscale.models.train.distributed import DistInfo
from slscale.models.train.report import RESULT_FILE
from slscale.models.train.telemetry import read_metrics_jsonl
from slscale.models.train.toy import MarkovData
from slscale.store import open_store

pytestmark = pytest.mark.usefixtures("dist")
SOLO = DistInfo(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))


class MarkingSource:
    """Training batches that, when the batches of step ``at`` are fetched, mark the run folder
    as attempt ``newer``'s (as a retry started elsewhere does)."""

    def __init__(self, source: Any, run_dir: Path, at: int, newer: int, per_step: int) -> None:
        self.source, self.run_dir, self.newer = source, run_dir, newer
        self.calls, self.mark_at = 0, (at - 1) * per_step

    def next_batch(self, batch_size: int, context_length: int) -> Any:
        if self.calls == self.mark_at:
            fence.mark(self.run_dir, self.newer)
        self.calls += 1
        return self.source.next_batch(batch_size, context_length)

    def state_dict(self) -> dict[str, Any]:
        return self.source.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.source.load_state_dict(state)


def fenced_job(workdir: Path, at: int | None, **config: Any) -> Any:
    job = tiny_job(workdir, attempt=1, checkpoint_every_steps=2, **config)
    if at is None:
        return job
    run_dir = job.config.run_dir

    def data(shard: int, num_shards: int) -> MarkingSource:
        # one draw per step: the trainer draws each step's 8 sequences at once
        return MarkingSource(MarkovData()(shard, num_shards), run_dir, at, newer=2, per_step=1)

    return dataclasses.replace(job, train_data=data)


def steps_in_store(workdir: Path, run_id: str) -> list[int]:
    with open_store(workdir) as store:
        frame = store.metrics_frame(run_ids=[run_id], names=["loss"])
    return sorted(int(s) for s in frame["step"])


def published(run_dir: Path) -> list[str]:
    return [p.name for p in CheckpointManager(run_dir / "checkpoints", 2, SOLO).complete()]


def test_a_newer_attempt_mid_run_stops_this_one_before_its_next_write(tmp_path):
    job = fenced_job(tmp_path, at=5)
    run_dir = job.config.run_dir
    fence.mark(run_dir, 1)
    with pytest.raises(fence.Superseded, match="attempt 1 was superseded by attempt 2"):
        train_worker(job)
    # Steps 1-4 were logged and checkpointed (every 2); step 5 found the newer attempt before
    # logging, so neither the store nor metrics.jsonl has it, and no checkpoint came after 4.
    assert steps_in_store(tmp_path, "tiny") == [1, 2, 3, 4]
    jsonl = read_metrics_jsonl(run_dir / "metrics.jsonl")
    assert max(step for step, _ in jsonl) == 4
    assert published(run_dir) == ["step-000000004", "step-000000002"]
    assert not (run_dir / RESULT_FILE).exists()
    with open_store(tmp_path) as store:
        record = store.get_run("tiny")
    assert record is not None
    assert record.state == "RUNNING" and record.error is None  # the newer attempt's to set


def test_an_attempt_already_superseded_writes_nothing(tmp_path):
    job = fenced_job(tmp_path, at=None)
    fence.mark(job.config.run_dir, 3)
    with pytest.raises(fence.Superseded, match="attempt 1 was superseded by attempt 3"):
        train_worker(job)
    assert not (job.config.run_dir / "checkpoints").exists()
    assert not (job.config.run_dir / "metrics.jsonl").exists()
    assert not (tmp_path / "results.db").exists()  # not even registered


def test_a_newer_attempt_during_a_save_leaves_that_checkpoint_unpublished(tmp_path, monkeypatch):
    job = fenced_job(tmp_path, at=None)
    run_dir = job.config.run_dir
    save = CheckpointManager.save

    def save_marked(self: Any, engine: Any, step: int, *args: Any, **kwargs: Any) -> Any:
        check = kwargs["before_publish"]

        def marked() -> None:
            if step == 4:  # the newer attempt starts while step 4's files are being written
                fence.mark(run_dir, 2)
            check()

        return save(self, engine, step, *args, **{**kwargs, "before_publish": marked})

    monkeypatch.setattr(CheckpointManager, "save", save_marked)
    with pytest.raises(fence.Superseded):
        train_worker(job)
    assert published(run_dir) == ["step-000000002"]
    assert (run_dir / "checkpoints" / ".tmp-step-000000004").is_dir()  # never renamed


def test_a_run_outside_a_sweep_ignores_markers(tmp_path):
    job = tiny_job(tmp_path, checkpoint_every_steps=2)  # attempt None
    fence.mark(job.config.run_dir, 7)
    result = train_worker(job)
    assert result.state == "SUCCEEDED"
    assert steps_in_store(tmp_path, "tiny") == list(range(1, result.steps + 1))
