"""Runs one training in its own process for the trainer tests (crash, signal, multi-worker).

Usage: python train_script.py ARGS.json — ARGS: see ``main``. Prints the TrainResult as JSON.
``kill_at_batch`` makes the process SIGKILL itself when its training source is asked for that
batch (a crash at a known point); ``sleep_per_batch`` slows the source so that a test can signal
the process while it trains. ``shared_validation`` gives every worker the same two named held-out
streams; ``record_forwards`` (a folder) makes each worker append a fingerprint of every
evaluation-mode forward pass's input to ``<folder>/rank<r>.txt``. A ``branch`` in the config is
``{parent, from_tokens}``.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import torch

from slscale.models.data.batching import Batch
from slscale.models.train import TrainConfig, TrainJob, run_local
from slscale.models.train.token_source import MarkovTokenSource
from slscale.models.train.toy import MarkovData, ToyModel
from slscale.spec import Branch, Recipe
from slscale.trackers import TrackerSettings


class _Crashing:
    def __init__(self, inner: MarkovTokenSource, kill_at: int | None, sleep: float) -> None:
        self.inner, self.kill_at, self.sleep, self.count = inner, kill_at, sleep, 0

    def next_batch(self, batch_size: int, context_length: int) -> Batch:
        self.count += 1
        if self.kill_at is not None and self.count == self.kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(self.sleep)
        return self.inner.next_batch(batch_size, context_length)

    def state_dict(self) -> dict[str, Any]:
        return self.inner.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.inner.load_state_dict(state)


@dataclasses.dataclass(frozen=True)
class CrashingData:
    kill_at_batch: int | None
    sleep_per_batch: float

    def __call__(self, shard: int, num_shards: int) -> _Crashing:
        return _Crashing(MarkovData()(shard, num_shards), self.kill_at_batch, self.sleep_per_batch)


SHARED = (("a", 0), ("b", 1))
"""Names and Markov seeds of the shared held-out streams."""


@dataclasses.dataclass(frozen=True)
class SharedValidation:
    """Two named held-out Markov streams ("a", "b"), the same whichever worker asks."""

    def __call__(self, shard: int, num_shards: int) -> dict[str, MarkovTokenSource]:
        return {name: MarkovData(seed=seed, split="validation")(0, 1) for name, seed in SHARED}


def _record_forward(folder: Path, module: torch.nn.Module, args: Any, kwargs: Any) -> None:
    if module.training or torch.is_grad_enabled():
        return
    ids = kwargs["input_ids"].cpu()
    rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
    digest = hashlib.sha256(ids.numpy().tobytes()).hexdigest()[:16]
    with (folder / f"rank{rank}.txt").open("a") as fh:
        fh.write(f"{tuple(ids.shape)} {digest}\n")


@dataclasses.dataclass(frozen=True)
class RecordingModel:
    """A ToyModel that records its evaluation forward passes in ``folder``."""

    model: ToyModel
    folder: str

    def __call__(self) -> torch.nn.Module:
        model = self.model()
        Path(self.folder).mkdir(parents=True, exist_ok=True)
        hook = functools.partial(_record_forward, Path(self.folder))
        model.register_forward_pre_hook(hook, with_kwargs=True)
        return model


def build_job(args: dict[str, Any]) -> TrainJob:
    """The job of ``args`` (see the module docstring)."""
    model: Any = ToyModel(**args.get("model", {}))
    if args.get("record_forwards"):
        model = RecordingModel(model, args["record_forwards"])
    validation: Any = MarkovData(split="validation")
    if args.get("shared_validation"):
        validation = SharedValidation()
    config = dict(args["config"])
    if config.get("trackers"):
        config["trackers"] = TrackerSettings(**config["trackers"])
    if config.get("branch"):
        config["branch"] = Branch(**config["branch"])
    return TrainJob(
        config=TrainConfig(recipe=Recipe(**args.get("recipe", {})), **config),
        model_factory=model,
        train_data=CrashingData(args.get("kill_at_batch"), args.get("sleep_per_batch", 0.0)),
        validation_data=validation,
    )


def main(args: dict[str, Any]) -> None:
    result = run_local(build_job(args))
    print("RESULT " + json.dumps(dataclasses.asdict(result), default=str), flush=True)


if __name__ == "__main__":
    with open(sys.argv[1]) as fh:
        main(json.load(fh))
