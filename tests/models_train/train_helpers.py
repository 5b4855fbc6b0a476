"""Helpers of the trainer tests: tiny real models (transformers Llama/Qwen2) on a seeded
Markov-chain batch source, in this process or in a fresh one (train_script.py); and the run
files of ``slscale train`` on a generated world (the fixtures in conftest.py train them)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from slscale.models.train import TrainConfig, TrainJob
from slscale.models.train.toy import MarkovData, ToyModel
from slscale.spec import Recipe

SCRIPT = Path(__file__).with_name("train_script.py")
_RENDEZVOUS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")

TINY_RECIPE = {
    "global_batch_size": 8,
    "context_length": 32,
    "lr": 3e-3,
    "lr_min": 3e-4,
    "warmup_fraction": 0.1,
}
"""256 tokens per step; a tiny model learns the Markov chains within ~20 steps at this rate."""

RUN_YAML = """\
family: llama
size: mini-25k
modality: {modality}
units_only_vocab: {units_only}
tokens: {tokens}
mix: {mix}
recipe: {{context_length: 64, global_batch_size: 16, lr: 0.003, lr_min: 0.0003}}
"""
"""A RunSpec file for ``slscale train`` on a generated world; fill it in with one of these:"""
TEXTLESS = {
    "modality": "textless",
    "units_only": "true",
    "tokens": 2048,
    "mix": "{speech_share: 1.0}",
}
INTERLEAVED = {
    "modality": "interleaved",
    "units_only": "false",
    "tokens": 9000,
    "mix": "{text_share: 0.4, interleaved_share: 0.3, speech_share: 0.3}",
}


def tiny_job(workdir: Path, run_id: str = "tiny", family: str = "llama", **config: Any) -> TrainJob:
    """A ~20k-parameter model trained on ~24 steps of 256 tokens (plus a partial step)."""
    recipe = Recipe(**{**TINY_RECIPE, **config.pop("recipe", {})})
    settings: dict[str, Any] = {
        "tokens": 24 * 256 + 100,
        "micro_batch_size": 4,
        "log_every_steps": 1,
        "store": str(workdir),
        **config,
    }
    return TrainJob(
        config=TrainConfig(run_id=run_id, workdir=str(workdir), recipe=recipe, **settings),
        model_factory=ToyModel(family=family),
        train_data=MarkovData(),
        validation_data=MarkovData(split="validation"),
    )


def run_script(args: dict[str, Any], tmp_path: Path, *, wait: bool = True) -> Any:
    """Start ``train_script.py`` with ``args`` in a fresh process (one thread per process)."""
    args_file = tmp_path / f"args-{args['config']['run_id']}-{os.urandom(4).hex()}.json"
    args_file.write_text(json.dumps(args))
    # a fresh process rendezvouses on its own: drop this process group's address, if any
    env = {k: v for k, v in os.environ.items() if k not in _RENDEZVOUS}
    env.update(OMP_NUM_THREADS="1", DS_ACCELERATOR="cpu")
    command = [sys.executable, str(SCRIPT), str(args_file)]
    if not wait:
        return subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


def script_result(stdout: str) -> dict[str, Any] | None:
    """The TrainResult a ``train_script.py`` run printed, or None."""
    for line in stdout.splitlines():
        if line.startswith("RESULT "):
            result: dict[str, Any] = json.loads(line[len("RESULT ") :])
            return result
    return None


def script_args(workdir: Path, run_id: str, **config: Any) -> dict[str, Any]:
    """Arguments of a tiny ``train_script.py`` run (the same shape as :func:`tiny_job`)."""
    return {
        "config": {
            "run_id": run_id,
            "workdir": str(workdir),
            "tokens": 24 * 256 + 100,
            "micro_batch_size": 4,
            "log_every_steps": 1,
            "store": str(workdir),
            **config,
        },
        "recipe": dict(TINY_RECIPE),
    }
