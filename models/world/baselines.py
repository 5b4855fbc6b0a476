"""Count-based scorers that calibrate the world's evaluation sets on their text side.

* :class:`NGramScorer` — an add-α n-gram language model. A bigram model sees only adjacent
  words, so it should score near chance (0.5) on the sSC-like and tSC-like sets.
* :class:`TriggerScorer` — scores an ending by the pointwise mutual information between the
  words of the prompt and the words of the ending, counted over the training stories (where
  the last sentence is the ending). It has learned which causes lead to which effects and that
  the ending's object is the cause's, so it scores well above chance.

Both score a pair by comparing the log-likelihood of prompt + positive and prompt + negative
(ties count 0.5), on the text of a manifest's items.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence

from slscale.models.data.manifest import EvalPair

Words = Sequence[str]


class NGramScorer:
    """Add-α smoothed n-gram model over words; sentences of one document are contiguous."""

    def __init__(self, order: int = 2, alpha: float = 0.1) -> None:
        self.order, self.alpha = order, alpha

    def fit(self, documents: Iterable[Words]) -> NGramScorer:
        self.counts_: Counter[tuple[str, ...]] = Counter()
        self.context_counts_: Counter[tuple[str, ...]] = Counter()
        vocab: set[str] = set()
        for doc in documents:
            padded = ["<s>"] * (self.order - 1) + list(doc)
            vocab.update(doc)
            for i in range(self.order - 1, len(padded)):
                context = tuple(padded[i - self.order + 1 : i])
                self.counts_[(*context, padded[i])] += 1
                self.context_counts_[context] += 1
        self.vocab_size_ = len(vocab) + 1
        return self

    def logprob(self, prompt: Words, continuation: Words) -> float:
        """log P(continuation | prompt)."""
        words = ["<s>"] * (self.order - 1) + list(prompt) + list(continuation)
        total = 0.0
        for i in range(len(words) - len(continuation), len(words)):
            context = tuple(words[i - self.order + 1 : i])
            numerator = self.counts_[(*context, words[i])] + self.alpha
            total += math.log(
                numerator / (self.context_counts_[context] + self.alpha * self.vocab_size_)
            )
        return total


class TriggerScorer:
    """Σ over (prompt word, ending word) of PMI(prompt word, ending word), add-α smoothed."""

    def __init__(self, alpha: float = 0.5) -> None:
        self.alpha = alpha

    def fit(self, stories: Iterable[tuple[Words, Words]]) -> TriggerScorer:
        """``stories``: (prompt words, ending words) of training stories."""
        self.pairs_: Counter[tuple[str, str]] = Counter()
        self.prompt_: Counter[str] = Counter()
        self.ending_: Counter[str] = Counter()
        self.n_ = 0
        for prompt, ending in stories:
            self.n_ += 1
            self.prompt_.update(set(prompt))
            self.ending_.update(set(ending))
            self.pairs_.update((u, w) for u in set(prompt) for w in set(ending))
        return self

    def logprob(self, prompt: Words, continuation: Words) -> float:
        a, n = self.alpha, self.n_
        score = 0.0
        for u in set(prompt):
            for w in continuation:
                joint = (self.pairs_[(u, w)] + a) / (self.prompt_[u] + 2 * a)
                score += math.log(joint / ((self.ending_[w] + a) / (n + 2 * a)))
        return score


def pair_accuracy(scorer: NGramScorer | TriggerScorer, pairs: Iterable[EvalPair]) -> float:
    """Share of pairs whose positive scores higher (ties 0.5), on the items' text."""
    results = []
    for pair in pairs:
        prompt = [] if pair.prompt is None else _text(pair.prompt.text)
        good = scorer.logprob(prompt, _text(pair.positive.text))
        bad = scorer.logprob(prompt, _text(pair.negative.text))
        results.append(1.0 if good > bad else 0.5 if good == bad else 0.0)
    return sum(results) / len(results)


def _text(text: str | None) -> list[str]:
    if text is None:
        raise ValueError("the count-based scorers need text items (use a *_tt manifest)")
    return text.split()
