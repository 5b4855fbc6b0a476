"""Per-token log-likelihoods of many sequences, batched by length.

Unique sequences are sorted by length (longest first) and packed into right-padded batches
under a token budget (padding included), so a batch wastes little on padding and its logits fit
in memory: the budget is capped so that one batch's float32 logits stay under
``logits_bytes``. Log-probabilities come from ``logit[target] - logsumexp(logits)`` (no
vocabulary-sized copy), in float32, returned as float64 arrays. One forward pass serves every
softmax restriction asked for.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

Sequence_ = tuple[int, ...]


class LikelihoodScorer:
    """Scores token sequences under a causal LM (a transformers model)."""

    def __init__(
        self,
        model: torch.nn.Module,
        *,
        pad_id: int = 0,
        max_batch_tokens: int = 16384,
        max_batch_size: int = 256,
        logits_bytes: float = 1 << 30,
    ) -> None:
        self.model = model.eval()
        self.device = next(model.parameters()).device
        self.pad_id = pad_id
        vocab = int(model.get_output_embeddings().weight.shape[0])  # type: ignore[operator]
        self.max_batch_tokens = max(1, min(max_batch_tokens, int(logits_bytes // (4 * vocab))))
        self.max_batch_size = max_batch_size
        self.forward_passes = 0

    def batches(self, sequences: Sequence[Sequence_]) -> list[list[int]]:
        """Indices of ``sequences`` grouped into batches, longest sequences first."""
        order = sorted(range(len(sequences)), key=lambda i: -len(sequences[i]))
        batches: list[list[int]] = []
        for i in order:
            current = batches[-1] if batches else None
            width = len(sequences[current[0]]) if current else 0  # the first is the longest
            if (
                current is not None
                and len(current) < self.max_batch_size
                and (len(current) + 1) * width <= self.max_batch_tokens
            ):
                current.append(i)
            else:
                batches.append([i])
        return batches

    def token_logprobs(
        self,
        sequences: Sequence[Sequence_],
        token_sets: Mapping[str, torch.Tensor | None],
    ) -> dict[str, list[np.ndarray]]:
        """For each named softmax (None: the full vocabulary; else the allowed token ids), per
        sequence: ``log p(ids[t] | ids[:t])`` for ``t = 1 … len - 1``; NaN where the target is
        outside the allowed set."""
        out: dict[str, list[np.ndarray]] = {k: [np.empty(0)] * len(sequences) for k in token_sets}
        lookups = {k: self._lookup(v) for k, v in token_sets.items()}
        for batch in self.batches(sequences):
            logits, targets, lengths = self._forward([sequences[i] for i in batch])
            for name, allowed in token_sets.items():
                scores = _target_logprobs(logits, targets, allowed, lookups[name])
                for row, i in enumerate(batch):
                    out[name][i] = scores[row, : lengths[row] - 1].double().cpu().numpy()
        return out

    def _lookup(self, allowed: torch.Tensor | None) -> torch.Tensor | None:
        """Vocabulary id -> position in ``allowed`` (-1 if absent)."""
        if allowed is None:
            return None
        vocab = int(self.model.get_output_embeddings().weight.shape[0])  # type: ignore[operator]
        table = torch.full((vocab,), -1, dtype=torch.long)
        table[allowed.long()] = torch.arange(len(allowed))
        return table.to(self.device)

    @torch.no_grad()
    def _forward(self, seqs: list[Sequence_]) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for row, seq in enumerate(seqs):
            ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
            mask[row, : len(seq)] = 1
        ids, mask = ids.to(self.device), mask.to(self.device)
        logits = self.model(input_ids=ids, attention_mask=mask).logits
        self.forward_passes += 1
        return logits[:, :-1].float(), ids[:, 1:], [len(s) for s in seqs]


def _target_logprobs(
    logits: torch.Tensor,
    targets: torch.Tensor,
    allowed: torch.Tensor | None,
    lookup: torch.Tensor | None,
) -> torch.Tensor:
    if allowed is None or lookup is None:
        picked = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
        return picked - torch.logsumexp(logits, dim=-1)
    sub = logits[..., allowed.to(logits.device).long()]
    where = lookup[targets]
    picked = sub.gather(-1, where.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    scores = picked - torch.logsumexp(sub, dim=-1)
    return torch.where(where >= 0, scores, torch.full_like(scores, float("nan")))
