"""Evaluate a checkpoint on a suite of pair manifests and record the scores.

A checkpoint is a folder written by the trainer's export (or :func:`~slscale.models.build.
save_model`): transformers weights plus ``slscale_vocab.json``, and ``slscale_model.json``
naming the run and step the scores belong to.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from slscale.errors import SlscaleError
from slscale.models.data.manifest import EvalPair, read_manifest
from slscale.models.evaluate.conventions import Convention
from slscale.models.evaluate.pairs import score_pairs
from slscale.models.evaluate.scoring import LikelihoodScorer
from slscale.models.evaluate.suite import ManifestRef
from slscale.models.vocab import SpeechTextVocab
from slscale.store.base import EvalResult

_MODEL_HINT = "pass a model folder slscale saved (a run's <workdir>/runs/<run_id>/model)"


@dataclasses.dataclass(frozen=True)
class SuiteScore:
    """The accuracy of one benchmark variant under one convention."""

    benchmark: str
    variant: str
    convention: str
    accuracy: float
    n_items: int
    seconds: float
    margin: float = float("nan")
    """Mean log-likelihood margin, positive minus negative (see :attr:`PairScores.margin`)."""

    def to_eval_result(self, run_id: str, step: int) -> EvalResult:
        return EvalResult(
            run_id=run_id,
            step=step,
            benchmark=self.benchmark,
            variant=self.variant,
            value=self.accuracy,
            n_items=self.n_items,
            convention=self.convention,
            margin=self.margin,
        )


def load_checkpoint(path: Path, device: str = "auto") -> tuple[Any, SpeechTextVocab]:
    """(model in eval mode on ``device``, its vocabulary); bf16 weights on GPU. A folder that
    is missing, or that slscale did not save, is a :class:`SlscaleError` naming it."""
    from slscale.models.build import load_model

    path = Path(path)
    if not path.is_dir():
        raise SlscaleError(f"model folder {path} does not exist; {_MODEL_HINT}")
    try:
        model, vocab = load_model(path)
    except SlscaleError:
        raise
    except (OSError, ValueError) as exc:  # transformers: no config.json or no weights
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SlscaleError(f"{path}: cannot load the model ({reason}); {_MODEL_HINT}") from None
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    model = model.to(device, dtype=torch.bfloat16 if device.startswith("cuda") else torch.float32)
    return model.eval(), vocab


def applicable(conventions: Sequence[Convention], pairs: Sequence[EvalPair]) -> list[Convention]:
    """The conventions that apply to a set: a one-modality softmax only where every
    continuation is in that modality (a speech-only softmax says nothing of S→T)."""
    modalities = {p.positive.modality for p in pairs} | {p.negative.modality for p in pairs}
    return [c for c in conventions if c.softmax == "full" or modalities == {c.softmax}]


def evaluate_suite(
    model: Any,
    vocab: SpeechTextVocab,
    manifests: Sequence[ManifestRef],
    conventions: Sequence[Convention],
    *,
    max_batch_tokens: int | None = None,
) -> list[SuiteScore]:
    """Score every manifest under every convention that applies to it (one set of forward
    passes per manifest)."""
    scorer = LikelihoodScorer(model, pad_id=vocab.pad_token_id, max_batch_tokens=max_batch_tokens)
    scores = []
    for ref in manifests:
        start = time.perf_counter()
        pairs = list(read_manifest(ref.path, vocab.num_units))
        results = score_pairs(scorer, vocab, pairs, applicable(conventions, pairs))
        seconds = time.perf_counter() - start
        scores += [
            SuiteScore(
                ref.benchmark,
                ref.variant,
                r.convention.name,
                r.accuracy,
                r.n_items,
                seconds,
                margin=r.margin,
            )
            for r in results
        ]
    return scores
