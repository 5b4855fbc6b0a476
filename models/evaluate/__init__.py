"""Likelihood evaluation: pair accuracy (sSC, tSC, sBLIMP, sWUGGY and their cross-modal and
multi-speaker variants) under recorded scoring conventions, batched by length."""

from slscale.models.evaluate.conventions import CUERVO_MARXER, SLAMKIT, Convention
from slscale.models.evaluate.generate import generate
from slscale.models.evaluate.pairs import PairScores, score_pairs
from slscale.models.evaluate.runner import SuiteScore, evaluate_suite, load_checkpoint
from slscale.models.evaluate.scoring import LikelihoodScorer
from slscale.models.evaluate.suite import ManifestRef, find_manifests

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
    "generate",
    "load_checkpoint",
    "score_pairs",
]
