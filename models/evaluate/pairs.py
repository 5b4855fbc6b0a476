"""Pair accuracy by model likelihood: the positive wins when its NLL is lower (a tie counts
0.5), under one or several scoring conventions computed from the same forward passes.

A pair's two candidates are scored in one packed row (their shared prompt computed once); two
candidates that encode to the same tokens follow the same path there, so they tie exactly.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

import numpy as np
import torch

from slscale.errors import SlscaleError
from slscale.models.data.manifest import EvalPair
from slscale.models.evaluate.conventions import Convention
from slscale.models.evaluate.encoding import Encoded, encode_pair
from slscale.models.evaluate.scoring import LikelihoodScorer
from slscale.models.vocab import SpeechTextVocab


@dataclasses.dataclass(frozen=True)
class PairScores:
    """The NLL of both candidates of every pair under one convention."""

    convention: Convention
    ids: tuple[str, ...]
    positive_nll: np.ndarray
    negative_nll: np.ndarray

    @property
    def outcomes(self) -> np.ndarray:
        """1 where the positive wins, 0 where it loses, 0.5 on a tie."""
        return np.where(
            self.positive_nll < self.negative_nll,
            1.0,
            np.where(self.positive_nll == self.negative_nll, 0.5, 0.0),
        )

    @property
    def accuracy(self) -> float:
        return float(self.outcomes.mean()) if len(self.ids) else float("nan")

    @property
    def margin(self) -> float:
        """Mean log-likelihood margin, positive minus negative (``negative_nll -
        positive_nll``), in the convention's unit: nats per scored token for a mean
        convention, nats per candidate for a summed one. Unlike the accuracy it moves smoothly
        while a model is still near chance (DataDecide, arXiv 2504.11393, §4)."""
        diff = self.negative_nll - self.positive_nll
        return float(diff.mean()) if len(self.ids) else float("nan")

    @property
    def n_items(self) -> int:
        return len(self.ids)


def softmax_tokens(vocab: SpeechTextVocab, softmax: str) -> torch.Tensor | None:
    """Token ids a restricted softmax is normalised over (None: the full vocabulary)."""
    if softmax == "speech":
        return torch.arange(vocab.unit_offset, vocab.unit_offset + vocab.num_units)
    if softmax == "text":
        if vocab.text_vocab_size == 0:
            raise SlscaleError("softmax=text: this vocabulary has no text tokens")
        return torch.arange(vocab.text_vocab_size)
    return None


def score_pairs(
    scorer: LikelihoodScorer,
    vocab: SpeechTextVocab,
    pairs: Iterable[EvalPair],
    conventions: Sequence[Convention],
    *,
    share_prompts: bool = True,
) -> list[PairScores]:
    """One :class:`PairScores` per convention, in the order given. ``share_prompts``: pack a
    pair's candidates in one row so their common prompt is computed once (the scores are
    those of each candidate alone either way)."""
    pairs = list(pairs)
    candidates = [encode_pair(pair, vocab) for pair in pairs]
    groups: list[tuple[tuple[int, ...], ...]]
    if share_prompts:
        groups = [(pos.ids, neg.ids) for pos, neg in candidates]
    else:
        groups = [(c.ids,) for both in candidates for c in both]
    sets = {c.softmax: softmax_tokens(vocab, c.softmax) for c in conventions}
    logprobs = scorer.token_logprobs(groups, sets)
    out = []
    for convention in conventions:
        per_candidate = [a for group in logprobs[convention.softmax] for a in group]
        nll = np.array(
            [
                _nll(per_candidate[k], c, convention, pairs[k // 2])
                for k, c in enumerate(c for both in candidates for c in both)
            ]
        )
        out.append(PairScores(convention, tuple(p.id for p in pairs), nll[0::2], nll[1::2]))
    return out


def _nll(logprobs: np.ndarray, cand: Encoded, convention: Convention, pair: EvalPair) -> float:
    # logprobs[t - 1] scores token t; the continuation starts at token cand.continuation_start
    span = logprobs if convention.span == "sequence" else logprobs[cand.continuation_start - 1 :]
    span = span[~np.isnan(span)]
    if span.size == 0:
        raise SlscaleError(
            f"pair {pair.id!r}: convention {convention.name} scores none of its tokens "
            f"(a {convention.softmax}-only softmax on a candidate without {convention.softmax} "
            "tokens in its span)"
        )
    total = -float(span.sum())
    return total / span.size if convention.reduction == "mean" else total
