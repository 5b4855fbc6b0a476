"""The trainer's own resumable state: position in the budget, data position and RNG.

Together with DeepSpeed's checkpoint (model, optimizer, LR scheduler) it is everything a
resumed run needs to continue exactly where the interrupted one was.
"""

from __future__ import annotations

import dataclasses
import random
from typing import Any

import numpy as np
import torch

from slscale.models.data.batching import Batch

UNITS = "units"
"""Key of the speech-unit token count in :attr:`Progress.token_counts`."""


def rng_state() -> dict[str, Any]:
    """The state of every RNG the run may draw from, as plain values and tensors only (so that a
    checkpoint reads it back with ``torch.load(weights_only=True)``)."""
    numpy = np.random.get_state(legacy=False)
    state: dict[str, Any] = {
        "python": random.getstate(),  # (version, tuple of ints, gauss_next float or None)
        "numpy": {
            "bit_generator": str(numpy["bit_generator"]),
            "key": torch.from_numpy(numpy["state"]["key"].astype(np.int64)),
            "pos": int(numpy["state"]["pos"]),
            "has_gauss": int(numpy["has_gauss"]),
            "gauss": float(numpy["gauss"]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore the RNGs to :func:`rng_state`'s ``state``."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    numpy = state["numpy"]
    np.random.set_state(
        {
            "bit_generator": numpy["bit_generator"],
            "state": {"key": numpy["key"].numpy().astype(np.uint32), "pos": numpy["pos"]},
            "has_gauss": numpy["has_gauss"],
            "gauss": numpy["gauss"],
        }
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@dataclasses.dataclass
class Progress:
    """Where a worker stands in its run (mutable; saved with every checkpoint)."""

    step: int = 0
    """Optimizer steps completed."""
    token_counts: dict[str, int] = dataclasses.field(default_factory=dict)
    """Tokens this worker consumed per stream ("speech"), per stream and source
    ("speech/real") and, under "units", speech-unit tokens whatever their stream."""
    train_seconds: float = 0.0
    """Wall time spent in training steps (evaluation and checkpoints excluded)."""
    last_loss: float = float("nan")
    """Training loss of the last completed step."""
    resumed_from: list[int] = dataclasses.field(default_factory=list)
    """Steps of the checkpoints this run was resumed from."""
    start_step: int = 0
    """The step this run started from: a WSD ladder's branch starts at its branch point, with
    its trunk's progress (steps, token counts) up to there; every other run at 0."""

    def count(self, batch: Batch) -> None:
        """Add a batch's tokens per stream, per source and of units."""
        counts = {**batch.tokens_by_stream, **batch.tokens_by_source}
        if batch.unit_tokens:
            counts[UNITS] = batch.unit_tokens
        for name, count in counts.items():
            self.token_counts[name] = self.token_counts.get(name, 0) + int(count)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Progress:
        return cls(**data)


def split_counts(counts: dict[str, int]) -> dict[str, dict[str, int]]:
    """{"by_stream": ..., "by_source": ..., "units": {...}} of a token-count dict."""
    return {
        "by_stream": {k: v for k, v in counts.items() if "/" not in k and k != UNITS},
        "by_source": {k: v for k, v in counts.items() if "/" in k},
        "units": {k: v for k, v in counts.items() if k == UNITS},
    }
