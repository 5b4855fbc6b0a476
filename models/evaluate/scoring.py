"""Per-token log-likelihoods of candidate sequences, with shared prefixes computed once.

The candidates of one pair share their prompt. They are packed into one row as a token trie:
each distinct prefix appears once, every token attends only to its ancestors (a 4-D attention
mask) and sits at its depth (position ids), so a token's logits are exactly those of its own
candidate sequence run alone, and the prompt is computed once instead of once per candidate
(identical candidates become one path, hence exact ties). Rows are sorted by length and packed
into right-padded batches under a token budget, capped so that a batch's float32 logits stay
under ``logits_bytes``. The LM head runs only at the positions that predict a candidate token;
log-probabilities are ``logit[target] - logsumexp(logits)``; one forward pass serves every
softmax restriction.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np
import torch

Tokens = tuple[int, ...]


@dataclasses.dataclass(frozen=True)
class PackedRow:
    """A trie of candidate sequences laid out as one row."""

    ids: list[int]
    parents: list[int]
    """Index of each token's parent in the row (-1 for a root)."""
    depths: list[int]
    paths: list[list[int]]
    """Per candidate, the row indices of its tokens in order."""

    @classmethod
    def of(cls, candidates: Sequence[Tokens]) -> PackedRow:
        ids: list[int] = []
        parents: list[int] = []
        depths: list[int] = []
        children: dict[tuple[int, int], int] = {}
        paths = []
        for cand in candidates:
            node, path = -1, []
            for depth, token in enumerate(cand):
                key = (node, token)
                if key not in children:
                    children[key] = len(ids)
                    ids.append(token)
                    parents.append(node)
                    depths.append(depth)
                node = children[key]
                path.append(node)
            paths.append(path)
        return cls(ids, parents, depths, paths)

    def ancestors(self, width: int) -> np.ndarray:
        """[width, width] bool: token i may attend to token j (j is i or an ancestor of i);
        padding attends to itself only."""
        allowed = np.eye(width, dtype=bool)
        for i, parent in enumerate(self.parents):
            if parent >= 0:
                allowed[i] |= allowed[parent]
        return allowed


class LikelihoodScorer:
    """Scores candidate sequences under a causal LM (a transformers model)."""

    def __init__(
        self,
        model: torch.nn.Module,
        *,
        pad_id: int = 0,
        max_batch_tokens: int | None = None,
        max_batch_size: int = 256,
        logits_bytes: float = 1 << 30,
    ) -> None:
        self.model = model.eval()
        self.device = next(model.parameters()).device
        self.pad_id = pad_id
        self.vocab_size = int(model.get_output_embeddings().weight.shape[0])  # type: ignore[operator]
        if max_batch_tokens is None:  # CPU caches favour small batches; GPUs large ones
            max_batch_tokens = 4096 if self.device.type == "cpu" else 65536
        self.max_batch_tokens = max(
            1, min(max_batch_tokens, int(logits_bytes // (4 * self.vocab_size)))
        )
        self.max_batch_size = max_batch_size
        self.forward_passes = 0

    def batches(self, lengths: Sequence[int]) -> list[list[int]]:
        """Indices of rows of these lengths grouped into batches, longest rows first."""
        order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
        batches: list[list[int]] = []
        for i in order:
            current = batches[-1] if batches else None
            width = lengths[current[0]] if current else 0  # the first row is the longest
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
        groups: Sequence[Sequence[Tokens]],
        token_sets: Mapping[str, torch.Tensor | None],
    ) -> dict[str, list[list[np.ndarray]]]:
        """For each named softmax (None: the full vocabulary; else the allowed token ids), per
        group, per candidate: ``log p(c[t] | c[:t])`` for ``t = 1 … len(c) - 1``; NaN where the
        target is outside the allowed set. The candidates of a group share one row."""
        rows = [PackedRow.of(g) for g in groups]
        out: dict[str, list[list[np.ndarray]]] = {k: [[] for _ in rows] for k in token_sets}
        lookups = {k: self._lookup(v) for k, v in token_sets.items()}
        for batch in self.batches([len(r.ids) for r in rows]):
            where, targets, spans = _predictions([rows[i] for i in batch])
            owners = [i for i in batch for _ in rows[i].paths]
            picked = self._forward([rows[i] for i in batch], where.to(self.device)).float()
            target_ids = torch.as_tensor(targets, device=picked.device)
            for name, allowed in token_sets.items():
                scores = _target_logprobs(picked, target_ids, allowed, lookups[name])
                values = scores.double().cpu().numpy()
                for (start, stop), i in zip(spans, owners, strict=True):
                    out[name][i].append(values[start:stop])
        return out

    def _lookup(self, allowed: torch.Tensor | None) -> torch.Tensor | None:
        """Vocabulary id -> position in ``allowed`` (-1 if absent)."""
        if allowed is None:
            return None
        table = torch.full((self.vocab_size,), -1, dtype=torch.long)
        table[allowed.long()] = torch.arange(len(allowed))
        return table.to(self.device)

    @torch.no_grad()
    def _forward(self, rows: list[PackedRow], where: torch.Tensor) -> torch.Tensor:
        """Logits at the (row, position) pairs ``where`` of a padded batch of ``rows``."""
        width = max(len(r.ids) for r in rows)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        positions = torch.zeros((len(rows), width), dtype=torch.long)
        allowed = np.zeros((len(rows), 1, width, width), dtype=bool)
        for k, row in enumerate(rows):
            ids[k, : len(row.ids)] = torch.tensor(row.ids)
            positions[k, : len(row.ids)] = torch.tensor(row.depths)
            allowed[k, 0] = row.ancestors(width)
        dtype = next(self.model.parameters()).dtype
        mask = torch.zeros(allowed.shape, dtype=dtype)
        mask.masked_fill_(torch.from_numpy(~allowed), torch.finfo(dtype).min)
        inputs = {
            "input_ids": ids.to(self.device),
            "position_ids": positions.to(self.device),
            "attention_mask": mask.to(self.device),
        }
        self.forward_passes += 1
        head = self.model.get_output_embeddings()  # type: ignore[operator]
        decoder = getattr(self.model, "get_decoder", None)
        if decoder is None or head is None:
            return self.model(**inputs).logits[where[:, 0], where[:, 1]]
        # the LM head only where a prediction is scored (transformers CausalLM layout)
        hidden = decoder()(**inputs).last_hidden_state
        logits: torch.Tensor = head(hidden[where[:, 0], where[:, 1]])
        return logits


def _predictions(rows: list[PackedRow]) -> tuple[torch.Tensor, list[int], list[tuple[int, int]]]:
    """(batch row and position of every prediction, its target id, per candidate its
    (start, stop) in the prediction list)."""
    where: list[tuple[int, int]] = []
    targets: list[int] = []
    spans = []
    for k, row in enumerate(rows):
        for path in row.paths:
            start = len(where)
            where += [(k, path[t - 1]) for t in range(1, len(path))]
            targets += [row.ids[path[t]] for t in range(1, len(path))]
            spans.append((start, len(where)))
    return torch.tensor(where, dtype=torch.long).reshape(-1, 2), targets, spans


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
