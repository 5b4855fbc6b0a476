"""Runs one training in its own process for the trainer tests (crash, signal, multi-worker).

Usage: python train_script.py ARGS.json — ARGS: see ``main``. Prints the TrainResult as JSON.
``kill_at_batch`` makes the process SIGKILL itself when its training source is asked for that
batch (a crash at a known point); ``sleep_per_batch`` slows the source so that a test can signal
the process while it trains.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import sys
import time
from typing import Any

from slscale.models.data.batching import Batch
from slscale.models.train import TrainConfig, TrainJob, run_local
from slscale.models.train.token_source import MarkovTokenSource
from slscale.models.train.toy import MarkovData, ToyModel
from slscale.spec import Recipe


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


def main(args: dict[str, Any]) -> None:
    recipe = Recipe(**args.get("recipe", {}))
    config = TrainConfig(recipe=recipe, **args["config"])
    job = TrainJob(
        config=config,
        model_factory=ToyModel(**args.get("model", {})),
        train_data=CrashingData(args.get("kill_at_batch"), args.get("sleep_per_batch", 0.0)),
        validation_data=MarkovData(split="validation"),
    )
    result = run_local(job)
    print("RESULT " + json.dumps(dataclasses.asdict(result), default=str), flush=True)


if __name__ == "__main__":
    with open(sys.argv[1]) as fh:
        main(json.load(fh))
