"""Shared fixtures: a small generated world and tiny saved TextLM checkpoints."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from models_data_helpers import bpe_tokenizer, tiny_config

from slscale.models.world.generate import WorldConfig, generate_world


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small world (about 30k text words, 30k real and 15k synthetic speech words)."""
    out = tmp_path_factory.mktemp("world")
    generate_world(out, WorldConfig(seed=7, words=30_000, eval_pairs=600))
    return out


@pytest.fixture
def make_checkpoint(tmp_path: Path) -> Callable[..., Path]:
    """Save a randomly initialised tiny TextLM (model + tokenizer) and return its folder."""

    def make(family: str = "llama", pad: str | None = "eos", name: str = "textlm") -> Path:
        from transformers import AutoModelForCausalLM

        tokenizer = bpe_tokenizer(pad)
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(tiny_config(family, len(tokenizer)))
        folder = tmp_path / f"{name}-{family}"
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        return folder

    return make
