"""A seeded, resumable source of packed batches drawn from fixed Markov chains.

Each stream ("speech", "text", ...) owns a disjoint range of token ids and a first-order Markov
chain over it in which every token has a few likely successors, so a model can learn it and its
loss falls well below ``ln(vocab_size)``. Documents of random length are drawn stream by stream
(by token share), and packed into rows: a document that does not fit continues in the next
row; the first token of each document carries no loss (label -100) and positions restart at 0
at each document and each row. The chains depend only on ``seed`` (one "language" for every
shard and split); the document draws depend on ``(seed, split, shard)``.

It implements :class:`~slscale.models.data.batching.BatchSource` for trainer tests and
benchmarks that must not depend on a corpus; ``state_dict`` captures the exact position.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from slscale.errors import ConfigError
from slscale.models.data.batching import Batch

_CHAIN_KEY = 0x5EED
_SPLITS = {"train": 0, "validation": 1}


@dataclasses.dataclass(frozen=True, kw_only=True)
class MarkovSourceConfig:
    """Shape of the synthetic language."""

    vocab_size: int = 64
    """Token ids used are ``first_token_id .. vocab_size - 1``, split evenly between streams."""
    stream_shares: Mapping[str, float] = dataclasses.field(
        default_factory=lambda: {"speech": 0.5, "text": 0.5}
    )
    """Stream name -> share of documents drawn from it."""
    successors: int = 3
    """Likely successors per token (the chain's branching)."""
    min_document_tokens: int = 8
    max_document_tokens: int = 96
    first_token_id: int = 0
    """Ids below this are left unused (e.g. special tokens of a real vocabulary)."""

    def __post_init__(self) -> None:
        usable = self.vocab_size - self.first_token_id
        if not self.stream_shares or usable < 2 * len(self.stream_shares):
            raise ConfigError(
                f"field 'vocab_size' = {self.vocab_size}: too small for "
                f"{len(self.stream_shares)} streams starting at id {self.first_token_id}"
            )
        if not 1 <= self.successors <= usable // len(self.stream_shares):
            raise ConfigError(f"field 'successors' = {self.successors}: out of range")
        if not 2 <= self.min_document_tokens <= self.max_document_tokens:
            raise ConfigError(
                f"field 'min_document_tokens' = {self.min_document_tokens}: must be in "
                f"[2, max_document_tokens={self.max_document_tokens}]"
            )


class MarkovTokenSource:
    """Endless packed batches from :class:`MarkovSourceConfig`'s chains (a ``BatchSource``)."""

    def __init__(
        self,
        config: MarkovSourceConfig,
        *,
        seed: int = 0,
        shard: int = 0,
        num_shards: int = 1,
        split: str = "train",
    ) -> None:
        if split not in _SPLITS:
            raise ConfigError(f"split {split!r}: must be one of {', '.join(_SPLITS)}")
        if not 0 <= shard < num_shards:
            raise ConfigError(f"shard {shard}: must be in [0, num_shards={num_shards})")
        self.config = config
        self._streams = list(config.stream_shares)
        shares = np.array([config.stream_shares[s] for s in self._streams], dtype=np.float64)
        self._stream_cdf = np.cumsum(shares / shares.sum())
        self._ranges, self._next, self._next_cdf = _build_chains(config, seed)
        seq = np.random.SeedSequence([seed, _SPLITS[split], shard, num_shards])
        self._rng = np.random.Generator(np.random.PCG64(seq))
        self._pending: list[int] = []
        self._pending_stream = ""

    def next_batch(self, batch_size: int, context_length: int) -> Batch:
        ids = np.empty((batch_size, context_length), dtype=np.int64)
        labels = np.empty_like(ids)
        positions = np.empty_like(ids)
        counts = dict.fromkeys(self._streams, 0)
        for row in range(batch_size):
            col = 0
            while col < context_length:
                if not self._pending:
                    self._new_document()
                    start = True
                else:
                    start = False
                take = min(len(self._pending), context_length - col)
                ids[row, col : col + take] = self._pending[:take]
                labels[row, col : col + take] = self._pending[:take]
                if start:
                    labels[row, col] = -100
                positions[row, col : col + take] = np.arange(take)
                counts[self._pending_stream] += take
                del self._pending[:take]
                col += take
        return Batch(
            input_ids=torch.from_numpy(ids),
            labels=torch.from_numpy(labels),
            position_ids=torch.from_numpy(positions),
            tokens_by_stream=counts,
        )

    def state_dict(self) -> dict[str, Any]:
        return {
            "rng": self._rng.bit_generator.state,
            "pending": list(self._pending),
            "pending_stream": self._pending_stream,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._rng.bit_generator.state = state["rng"]
        self._pending = list(state["pending"])
        self._pending_stream = str(state["pending_stream"])

    def _new_document(self) -> None:
        cfg = self.config
        stream = int(np.searchsorted(self._stream_cdf, self._rng.random(), side="right"))
        stream = min(stream, len(self._streams) - 1)
        length = int(self._rng.integers(cfg.min_document_tokens, cfg.max_document_tokens + 1))
        low, high = self._ranges[stream]
        draws = self._rng.random(length)
        token = int(self._rng.integers(low, high))
        tokens = [token]
        for u in draws[1:]:
            choice = int(np.searchsorted(self._next_cdf[token], u, side="right"))
            token = int(self._next[token, min(choice, cfg.successors - 1)])
            tokens.append(token)
        self._pending = tokens
        self._pending_stream = self._streams[stream]


def _build_chains(
    config: MarkovSourceConfig, seed: int
) -> tuple[list[tuple[int, int]], np.ndarray, np.ndarray]:
    """Per stream its id range; per token its successors and their cumulative probabilities."""
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, _CHAIN_KEY])))
    n_streams = len(config.stream_shares)
    width = (config.vocab_size - config.first_token_id) // n_streams
    ranges = [
        (config.first_token_id + i * width, config.first_token_id + (i + 1) * width)
        for i in range(n_streams)
    ]
    successors = np.zeros((config.vocab_size, config.successors), dtype=np.int64)
    cdf = np.ones((config.vocab_size, config.successors), dtype=np.float64)
    for low, high in ranges:
        for token in range(low, high):
            successors[token] = rng.choice(np.arange(low, high), config.successors, replace=False)
            weights = rng.dirichlet(np.full(config.successors, 2.0))
            cdf[token] = np.cumsum(weights)
    return ranges, successors, cdf
