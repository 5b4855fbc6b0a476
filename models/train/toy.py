"""Picklable factories of small real models and synthetic data, for tests, benchmarks and
examples of the trainer (they travel to spawned workers, so they are module-level dataclasses).
"""

from __future__ import annotations

import dataclasses

import torch

from slscale.models.train.token_source import MarkovSourceConfig, MarkovTokenSource
from slscale.spec import Architecture


@dataclasses.dataclass(frozen=True, kw_only=True)
class ToyModel:
    """A from-scratch transformers model of a family (llama | qwen2) and a small shape."""

    family: str = "llama"
    num_layers: int = 2
    hidden_size: int = 32
    num_heads: int = 4
    num_kv_heads: int = 2
    intermediate_size: int = 64
    vocab_size: int = 64
    max_positions: int = 512

    def __call__(self) -> torch.nn.Module:
        from transformers import AutoModelForCausalLM

        from slscale.models.families import hf_config

        arch = Architecture(
            num_layers=self.num_layers,
            hidden_size=self.hidden_size,
            num_heads=self.num_heads,
            num_kv_heads=self.num_kv_heads,
            intermediate_size=self.intermediate_size,
            vocab_size=self.vocab_size,
        )
        config = hf_config(self.family, arch, max_position_embeddings=self.max_positions)
        model: torch.nn.Module = AutoModelForCausalLM.from_config(config)
        return model


@dataclasses.dataclass(frozen=True, kw_only=True)
class MarkovData:
    """Factory of :class:`MarkovTokenSource` shards: ``(shard, num_shards) -> BatchSource``."""

    config: MarkovSourceConfig = dataclasses.field(default_factory=MarkovSourceConfig)
    seed: int = 0
    split: str = "train"

    def __call__(self, shard: int, num_shards: int) -> MarkovTokenSource:
        if self.split != "train":  # held-out data: one stream, which the trainer shares out
            shard, num_shards = 0, 1
        return MarkovTokenSource(
            self.config, seed=self.seed, shard=shard, num_shards=num_shards, split=self.split
        )
