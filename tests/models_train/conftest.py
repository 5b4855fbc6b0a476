"""Fixtures of the trainer and evaluation tests (helpers live in train_helpers.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from train_helpers import INTERLEAVED, RUN_YAML, TEXTLESS


@pytest.fixture(scope="session")
def dist() -> Any:
    """This test process's (single-worker) process group, initialised once and never destroyed."""
    os.environ.setdefault("DS_ACCELERATOR", "cpu")
    from slscale.models.train.distributed import init_distributed

    return init_distributed("cpu")


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Train and score on one thread: the test process shares the cores with other processes,
    and several multi-threaded processes on the same cores run many times slower. The thread
    count of the session is restored after each test."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated miniature world: 20k words of each corpus, 24 pairs per evaluation set."""
    from slscale.models.world.generate import WorldConfig, generate_world

    out = tmp_path_factory.mktemp("world")
    generate_world(out, WorldConfig(words=20_000, eval_pairs=24))
    return out


@pytest.fixture(scope="session")
def interleaved_run(dist: Any, tiny_world: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """(workdir, exit status) of ``slscale train`` of a mini-25k interleaved run on the tiny
    world: 9 steps of 16 x 64 tokens, a few seconds."""
    workdir = tmp_path_factory.mktemp("study")
    return workdir, train_cli(workdir, tiny_world, INTERLEAVED, "--log-every", "3")


@pytest.fixture(scope="session")
def textless_run(dist: Any, tiny_world: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """(workdir, exit status) of ``slscale train`` of a mini-25k textless run with the
    units-only vocabulary on the tiny world: 2048 tokens, about a second."""
    workdir = tmp_path_factory.mktemp("textless")
    return workdir, train_cli(workdir, tiny_world, TEXTLESS)


def train_cli(workdir: Path, world: Path, fields: dict[str, Any], *options: str) -> int:
    """``slscale train`` of ``RUN_YAML`` filled with ``fields``, in this process."""
    from slscale.cli import main

    run_file = workdir / "run.yaml"
    run_file.write_text(RUN_YAML.format(**fields))
    argv = ["train", str(run_file), "--workdir", str(workdir), "--data", str(world)]
    return main([*argv, "--micro-batch-size", "8", *options])
