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


def rng_state() -> dict[str, Any]:
    """The state of every RNG the run may draw from."""
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
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
    stream_tokens: dict[str, int] = dataclasses.field(default_factory=dict)
    """Tokens this worker consumed, per stream."""
    train_seconds: float = 0.0
    """Wall time spent in training steps (evaluation and checkpoints excluded)."""
    last_loss: float = float("nan")
    """Training loss of the last completed step."""
    resumed_from: list[int] = dataclasses.field(default_factory=list)
    """Steps of the checkpoints this run was resumed from."""

    def add_stream_tokens(self, counts: dict[str, int]) -> None:
        for name, count in counts.items():
            self.stream_tokens[name] = self.stream_tokens.get(name, 0) + int(count)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Progress:
        return cls(**data)
