"""The contract between data streams and the trainer.

A :class:`BatchSource` yields packed batches and can save and restore its exact position, so
that a resumed run sees the same batches as an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol

import torch


@dataclasses.dataclass(frozen=True)
class Batch:
    """One packed batch of ``batch_size`` sequences of ``context_length`` tokens."""

    input_ids: torch.Tensor
    """int64 [batch, context_length]."""
    labels: torch.Tensor
    """int64 [batch, context_length]; -100 where no loss is taken (padding, document starts)."""
    position_ids: torch.Tensor | None = None
    """int64 [batch, context_length]; restart at 0 at each packed document, or None."""
    tokens_by_stream: dict[str, int] = dataclasses.field(default_factory=dict)
    """Tokens of this batch per stream (text / interleaved / speech), padding excluded."""
    tokens_by_source: dict[str, int] = dataclasses.field(default_factory=dict)
    """Tokens per stream and source ("speech/real", "speech/synthetic", ...), padding excluded."""
    unit_tokens: int = 0
    """Speech-unit tokens in this batch, whatever their stream (the speech-only count)."""

    @property
    def num_tokens(self) -> int:
        """Tokens that count towards the budget (all positions, as SIMS counts)."""
        return int(self.input_ids.numel())


class BatchSource(Protocol):
    """An endless, seeded, resumable source of packed batches."""

    def next_batch(self, batch_size: int, context_length: int) -> Batch: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...
