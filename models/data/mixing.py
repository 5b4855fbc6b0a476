"""Mix streams by token share and pack them into batches (a resumable ``BatchSource``).

Shares are shares of *tokens*, measured on the data as it is consumed, not sample ratios
tuned by hand (SlamKit's 0.202/0.543/0.254 were chosen to give roughly equal tokens). Before
each document, the stream whose token count lags its target most — ``share·total − count`` —
supplies it ("largest deficit first"), and inside a stream the same rule picks the source
(real or synthetic speech, by ``DataMix.synthetic_share``). The achieved shares thus differ
from the targets by at most one document's tokens, whatever the documents' lengths.

Packing: documents are laid end to end in rows of ``context_length``; a document that does not
fit continues in the next row. The first token of each document has label -100 (its
prediction would cross a document boundary) and positions restart at 0 at each document and
each row. Rows are padded (pad id, label -100) only when a one-pass source runs out. The
source does not build an attention mask: with flash-attention's packed-sequence path the
restarting positions keep documents apart; with eager/SDPA attention a document can attend to
the previous one in its row (the usual packing trade-off; only the loss is masked).

Each source visits its documents in a permutation seeded by ``(seed, source, epoch)``, taking
every ``num_shards``-th one from ``shard`` for data-parallel workers. ``state_dict`` holds the
cursors, counters and the unfinished document, so a resumed source yields identical batches.
"""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from slscale.errors import ConfigError
from slscale.models.data.batching import Batch
from slscale.models.data.streams import DocumentSource


@dataclasses.dataclass(frozen=True, eq=False)
class Component:
    """One source of documents inside a stream."""

    stream: str
    """text | interleaved | speech."""
    source: str
    """Where the documents come from inside the stream (e.g. real | synthetic)."""
    docs: DocumentSource
    """The documents."""
    share: float = 1.0
    """Token share of this source within its stream."""

    @property
    def key(self) -> str:
        return f"{self.stream}/{self.source}"


class MixedBatchSource:
    """Packed batches from several streams at fixed token shares (see module docstring)."""

    def __init__(
        self,
        components: list[Component],
        stream_shares: Mapping[str, float],
        *,
        seed: int,
        pad_id: int,
        unit_range: tuple[int, int],
        shard: int = 0,
        num_shards: int = 1,
        shuffle: bool = True,
        max_epochs: int | None = None,
        fixed_draw: bool = False,
    ) -> None:
        self._parts = [c for c in components if c.share > 0 and stream_shares.get(c.stream, 0) > 0]
        self._stream_shares = {s: float(v) for s, v in stream_shares.items() if v > 0}
        _check_parts(self._parts, self._stream_shares, num_shards)
        self._seed, self._pad_id, self._unit_range = seed, pad_id, unit_range
        self._shard, self._num_shards, self._shuffle = shard, num_shards, shuffle
        self._max_epochs, self._fixed_draw = max_epochs, fixed_draw
        self._counts = {c.key: 0 for c in self._parts}
        self._cursors = {c.key: [0, 0] for c in self._parts}  # [epoch, position]
        self._pending = np.zeros(0, dtype=np.int32)
        self._pending_key = ""
        self._unit_tokens = 0
        self._orders: dict[str, tuple[int, np.ndarray]] = {}  # per source: its current epoch

    # ------------------------------------------------------------------ BatchSource

    def next_batch(self, batch_size: int, context_length: int) -> Batch:
        ids = np.full((batch_size, context_length), self._pad_id, dtype=np.int64)
        labels = np.full_like(ids, -100)
        positions = np.zeros_like(ids)
        by_source = dict.fromkeys(self._counts, 0)
        for row in range(batch_size):
            self._fill_row(ids[row], labels[row], positions[row], by_source)
        units = int(((ids >= self._unit_range[0]) & (ids < self._unit_range[1])).sum())
        self._unit_tokens += units
        return Batch(
            input_ids=torch.from_numpy(ids),
            labels=torch.from_numpy(labels),
            position_ids=torch.from_numpy(positions),
            tokens_by_stream=_by_stream(by_source),
            tokens_by_source=by_source,
            unit_tokens=units,
        )

    def state_dict(self) -> dict[str, Any]:
        return {
            "counts": dict(self._counts),
            "cursors": {k: list(v) for k, v in self._cursors.items()},
            "pending": self._pending.tolist(),
            "pending_key": self._pending_key,
            "unit_tokens": self._unit_tokens,
            "shard": [self._shard, self._num_shards],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if set(state["counts"]) != set(self._counts):
            raise ConfigError(
                f"data state has sources {sorted(state['counts'])}, this run has "
                f"{sorted(self._counts)}: the data mix changed since it was saved"
            )
        if list(state["shard"]) != [self._shard, self._num_shards]:
            raise ConfigError(
                f"data state was saved by shard {state['shard'][0]} of {state['shard'][1]}, "
                f"this is shard {self._shard} of {self._num_shards}: resume with the same "
                "number of data-parallel workers"
            )
        self._counts = {k: int(v) for k, v in state["counts"].items()}
        self._cursors = {k: [int(e), int(p)] for k, (e, p) in state["cursors"].items()}
        self._pending = np.asarray(state["pending"], dtype=np.int32)
        self._pending_key = str(state["pending_key"])
        self._unit_tokens = int(state["unit_tokens"])

    # ------------------------------------------------------------------ reporting

    def tokens_consumed(self) -> dict[str, int]:
        """Tokens handed out so far, padding excluded: per stream, per source and in units."""
        return {**_by_stream(self._counts), **self._counts, "units": self._unit_tokens}

    @property
    def exhausted(self) -> bool:
        """True once a source with ``max_epochs`` has handed out all its documents."""
        return not self._pending.size and self._pick() is None

    # ------------------------------------------------------------------ internals

    def _fill_row(
        self, ids: np.ndarray, labels: np.ndarray, positions: np.ndarray, by_source: dict[str, int]
    ) -> None:
        col = 0
        while col < len(ids):
            start = not self._pending.size
            if start and not self._next_document():
                return
            take = min(len(self._pending), len(ids) - col)
            ids[col : col + take] = labels[col : col + take] = self._pending[:take]
            if start:
                labels[col] = -100
            positions[col : col + take] = np.arange(take)
            self._counts[self._pending_key] += take
            by_source[self._pending_key] += take
            self._pending = self._pending[take:]
            col += take

    def _next_document(self) -> bool:
        part = self._pick()
        if part is None:
            return False
        epoch, position = self._cursors[part.key]
        order = self._order(part, epoch)
        self._pending = part.docs.document(int(order[position]), 0 if self._fixed_draw else epoch)
        self._pending_key = part.key
        self._cursors[part.key] = (
            [epoch + 1, 0] if position + 1 == len(order) else [epoch, position + 1]
        )
        return True

    def _pick(self) -> Component | None:
        live = [
            c
            for c in self._parts
            if self._max_epochs is None or self._cursors[c.key][0] < self._max_epochs
        ]
        if not live:
            return None
        streams = dict.fromkeys(c.stream for c in live)  # in the parts' order: ties go first
        by_stream = _by_stream(self._counts)
        stream = _largest_deficit({s: self._stream_shares[s] for s in streams}, by_stream)
        inside = [c for c in live if c.stream == stream]
        key = _largest_deficit({c.key: c.share for c in inside}, self._counts)
        return next(c for c in inside if c.key == key)

    def _order(self, part: Component, epoch: int) -> np.ndarray:
        cached = self._orders.get(part.key)
        if cached is None or cached[0] != epoch:
            n = len(part.docs)
            rng = np.random.default_rng([self._seed, zlib.crc32(part.key.encode()), epoch])
            full = rng.permutation(n) if self._shuffle else np.arange(n)
            cached = (epoch, full[self._shard :: self._num_shards])
            self._orders[part.key] = cached
        return cached[1]


def _largest_deficit(shares: Mapping[str, float], counts: Mapping[str, int]) -> str:
    """The key whose count lags ``share × total`` most (shares renormalised; ties: first)."""
    norm = sum(shares.values())
    total = sum(counts.get(k, 0) for k in shares)
    return max(shares, key=lambda k: shares[k] / norm * total - counts.get(k, 0))


def _by_stream(counts: Mapping[str, int]) -> dict[str, int]:
    out: dict[str, int] = {}
    for key, value in counts.items():
        stream = key.split("/", 1)[0]
        out[stream] = out.get(stream, 0) + value
    return out


def _check_parts(parts: list[Component], shares: Mapping[str, float], num_shards: int) -> None:
    for stream in shares:
        if not any(c.stream == stream for c in parts):
            raise ConfigError(
                f"mix gives stream '{stream}' a share of {shares[stream]} but no "
                "data was found for it"
            )
    for c in parts:
        if len(c.docs) < num_shards:
            raise ConfigError(
                f"source '{c.key}' has {len(c.docs)} documents, fewer than the "
                f"{num_shards} data-parallel shards"
            )
