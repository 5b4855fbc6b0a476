"""The sequences of a step: drawn in order from the run's one stream, dealt out to the workers.

A run reads one stream of packed sequences (its training source for shard 0 of 1), whatever
its number of workers W. Every worker draws the whole global step from that stream — the same
sequences in the same order, since every worker's source starts at the same position — and
keeps sequence ``i`` when ``i mod W`` is its rank, which is how the token budget deals
sequences out (:meth:`~slscale.models.train.budget.TokenBudget.worker_micro_batches`). So the
global batches, and the data position a checkpoint records, do not depend on W: a run resumed
on another number of workers goes on with the batches it would have seen, and a run gives the
same curve on 1 or W workers up to the order of float sums. The price is that each worker packs
the whole global batch, W times the packing work of one shard (the packing is a small part of
a step next to the forward and backward passes).

Worker 0 alone counts the drawn tokens (per stream, per source, units), so that the counts
summed over workers are those of the global batches.
"""

from __future__ import annotations

import itertools

import torch

from slscale.errors import SlscaleError
from slscale.models.data.batching import Batch, BatchSource
from slscale.models.train.budget import TokenBudget


def draw_step(source: BatchSource, lengths: list[int], where: str) -> list[tuple[Batch, int]]:
    """The global step's sequences, in order, as (batch drawn, row): one draw per run of equal
    lengths (the full sequences, then the shorter last one of a partial step)."""
    rows: list[tuple[Batch, int]] = []
    for length, run in itertools.groupby(lengths):
        count = len(list(run))
        batch = source.next_batch(count, length)
        if tuple(batch.input_ids.shape) != (count, length):
            raise SlscaleError(
                f"{where}: the batch source returned input_ids of shape "
                f"{tuple(batch.input_ids.shape)}, asked for {(count, length)}"
            )
        rows += [(batch, i) for i in range(count)]
    return rows


def drawn_batches(rows: list[tuple[Batch, int]]) -> list[Batch]:
    """The distinct batches behind ``rows``, in order (what worker 0 counts)."""
    seen: dict[int, Batch] = {}
    for batch, _ in rows:
        seen.setdefault(id(batch), batch)
    return list(seen.values())


def worker_batches(
    rows: list[tuple[Batch, int]], budget: TokenBudget, step: int, rank: int
) -> list[Batch | None]:
    """Worker ``rank``'s micro-batches of ``step`` from the step's ``rows`` (None for an empty
    micro-batch, which only keeps the workers' collectives aligned)."""
    mine = iter(rows[rank :: budget.num_workers])
    out: list[Batch | None] = []
    for micro in budget.worker_micro_batches(step, rank):
        if micro.is_empty:
            out.append(None)
            continue
        out.append(_stack([next(mine) for _ in range(micro.num_sequences)]))
    return out


def _stack(rows: list[tuple[Batch, int]]) -> Batch:
    """One batch of the given rows (all of one length); token counts are left to worker 0."""

    def pick(name: str) -> torch.Tensor:
        return torch.stack([getattr(batch, name)[i] for batch, i in rows])

    positions = rows[0][0].position_ids is not None
    return Batch(
        input_ids=pick("input_ids"),
        labels=pick("labels"),
        position_ids=pick("position_ids") if positions else None,
    )
