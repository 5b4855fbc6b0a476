"""Token budget → optimizer steps → per-worker micro-batches.

A run trains on exactly ``tokens`` tokens (every position of every packed sequence counts, as
SIMS counts). With ``T = global_batch_size × context_length`` tokens per step:

* ``tokens // T`` full steps of ``global_batch_size`` sequences of ``context_length`` tokens;
* if ``tokens % T = R > 0``, one last, partial step carrying exactly ``R`` tokens:
  ``R // context_length`` full sequences and, if ``R % context_length > 0``, one shorter
  sequence of the remaining tokens.

The learning-rate schedule has ``ceil(tokens / T)`` steps, so its length equals the budget.
Sequences of a step are dealt to workers round-robin and each worker cuts its share into
micro-batches of at most ``micro_batch_size`` sequences of one length. Every worker runs the
same number of micro-batches per step (ZeRO-2/3 reduce gradients at every backward, so the
collectives must line up); a worker with fewer real micro-batches runs empty ones that carry no
loss. The loss is the token mean over the whole global step, so the update does not depend on
how the step is split (see :mod:`slscale.models.train.loop`).
"""

from __future__ import annotations

import dataclasses
import math

from slscale.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class MicroBatch:
    """Shape of one micro-batch: ``num_sequences`` × ``length`` tokens (0 × 0: an empty one)."""

    num_sequences: int
    length: int

    @property
    def is_empty(self) -> bool:
        return self.num_sequences == 0

    @property
    def tokens(self) -> int:
        return self.num_sequences * self.length


@dataclasses.dataclass(frozen=True, kw_only=True)
class TokenBudget:
    """How a token budget maps onto optimizer steps and micro-batches."""

    tokens: int
    """The run's token budget D."""
    global_batch_size: int
    """Sequences per full optimizer step, all workers together."""
    context_length: int
    """Tokens per full sequence."""
    num_workers: int = 1
    """Data-parallel workers."""
    micro_batch_size: int | None = None
    """Most sequences per forward pass on one worker; None: the worker's whole share."""

    def __post_init__(self) -> None:
        for name in ("tokens", "global_batch_size", "context_length", "num_workers"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ConfigError(f"field '{name}' = {value!r}: must be a positive integer")
        if self.global_batch_size % self.num_workers:
            raise ConfigError(
                f"field 'recipe.global_batch_size' = {self.global_batch_size}: must be a "
                f"multiple of the number of workers ({self.num_workers})"
            )
        if self.micro_batch_size is not None and self.micro_batch_size <= 0:
            raise ConfigError(
                f"field 'micro_batch_size' = {self.micro_batch_size!r}: must be positive"
            )

    @property
    def tokens_per_step(self) -> int:
        return self.global_batch_size * self.context_length

    @property
    def full_steps(self) -> int:
        return self.tokens // self.tokens_per_step

    @property
    def remainder_tokens(self) -> int:
        """Tokens of the last, partial step (0 if the budget is a whole number of steps)."""
        return self.tokens % self.tokens_per_step

    @property
    def total_steps(self) -> int:
        """Optimizer steps of the run, and the length of its learning-rate schedule."""
        return math.ceil(self.tokens / self.tokens_per_step)

    @property
    def local_batch_size(self) -> int:
        return self.global_batch_size // self.num_workers

    @property
    def resolved_micro_batch_size(self) -> int:
        return self.micro_batch_size or self.local_batch_size

    def step_sequence_lengths(self, step: int) -> list[int]:
        """Lengths of the sequences of global step ``step`` (0-based)."""
        if not 0 <= step < self.total_steps:
            raise IndexError(f"step {step} outside [0, {self.total_steps})")
        if step < self.full_steps:
            return [self.context_length] * self.global_batch_size
        full, rest = divmod(self.remainder_tokens, self.context_length)
        return [self.context_length] * full + ([rest] if rest else [])

    def step_tokens(self, step: int) -> int:
        return sum(self.step_sequence_lengths(step))

    def tokens_before(self, step: int) -> int:
        """Tokens consumed by steps ``0 .. step-1``."""
        return min(step * self.tokens_per_step, self.tokens)

    def worker_micro_batches(self, step: int, rank: int) -> list[MicroBatch]:
        """The micro-batches worker ``rank`` runs at ``step``, padded with empty ones so that
        every worker runs the same number."""
        lengths = self.step_sequence_lengths(step)
        per_rank = [self._cut(lengths[r :: self.num_workers]) for r in range(self.num_workers)]
        count = max(len(m) for m in per_rank)
        mine = per_rank[rank]
        return mine + [MicroBatch(0, 0)] * (count - len(mine))

    def _cut(self, lengths: list[int]) -> list[MicroBatch]:
        """Consecutive runs of equal length, cut into chunks of at most the micro-batch size."""
        micro = self.resolved_micro_batch_size
        out: list[MicroBatch] = []
        i = 0
        while i < len(lengths):
            j = i
            while j < len(lengths) and lengths[j] == lengths[i] and j - i < micro:
                j += 1
            out.append(MicroBatch(j - i, lengths[i]))
            i = j
        return out
