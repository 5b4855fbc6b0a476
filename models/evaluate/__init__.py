"""Likelihood evaluation: pair accuracy (sSC, tSC, sBLIMP, sWUGGY and their cross-modal and
multi-speaker variants) under recorded scoring conventions, batched by length.

The names below load their module on first use, so that reading the suite's benchmark and
variant names (``slscale.models.evaluate.suite``) or the conventions does not import torch.
``slscale.models.evaluate.generate.generate`` is imported from its module: it shares the
module's name, so as a lazy package attribute it would be the module once that is imported.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from slscale.models.evaluate.conventions import CUERVO_MARXER, SLAMKIT, Convention
    from slscale.models.evaluate.pairs import PairScores, score_pairs
    from slscale.models.evaluate.runner import SuiteScore, evaluate_suite, load_checkpoint
    from slscale.models.evaluate.scoring import LikelihoodScorer
    from slscale.models.evaluate.suite import ManifestRef, find_manifests

_MODULES = {
    "CUERVO_MARXER": "conventions",
    "SLAMKIT": "conventions",
    "Convention": "conventions",
    "PairScores": "pairs",
    "score_pairs": "pairs",
    "SuiteScore": "runner",
    "evaluate_suite": "runner",
    "load_checkpoint": "runner",
    "LikelihoodScorer": "scoring",
    "ManifestRef": "suite",
    "find_manifests": "suite",
}

__all__ = [
    "CUERVO_MARXER",
    "SLAMKIT",
    "Convention",
    "LikelihoodScorer",
    "ManifestRef",
    "PairScores",
    "SuiteScore",
    "evaluate_suite",
    "find_manifests",
    "load_checkpoint",
    "score_pairs",
]


def __getattr__(name: str) -> Any:
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
