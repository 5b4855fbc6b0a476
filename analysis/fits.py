"""The fits a study's figures draw: the one module of slscale.analysis that calls fitting.

For every arm of the scaling runs it fits Approach 3 (parametric loss), Approach 2 (IsoFLOP
parabolas), Approach 1 (training-curve envelope) and the metric laws Q(C) = a·C^b of sSC and
tSC on the best run per budget (SIMS Fig. 1), and the margin laws of the same benchmarks'
log-likelihood margins. A fit the data cannot support is recorded with
the reason instead. The result is a :class:`~slscale.analysis.fitset.StudyFits`; plot
functions only ever receive its FitResults.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any

import numpy as np

from slscale.analysis.fitset import KINDS, METRICS, FitEntry, StudyFits, fit_name, load_references
from slscale.analysis.study import Study
from slscale.errors import ConfigError, SlscaleError
from slscale.fitting import (
    EnvelopeFit,
    FitResult,
    IsoFlopFit,
    MarginLaw,
    MetricPowerLaw,
    ParametricLossFit,
    inputs,
)
from slscale.fitting.sources import Table

CONVENTIONS = {
    "n_params": "total (column 'n_params', embeddings included)",
    "flops": "6ND (run summary 'flops_6nd')",
}
"""What the study's columns hold (:mod:`slscale.analysis.study` builds them from the store), in
the words FitResults record; more precise than what the column names alone would say."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class FitSettings:
    """How the figure fits are made."""

    n_bootstrap: int = 1000
    """Bootstrap resamples of every fit (intervals and bands); 0: none."""
    seed: int = 0
    """Seed of every bootstrap (the same seed gives the same fits and figures)."""
    confidence: float = 0.95
    """Coverage of intervals and bands."""
    huber_delta: float = 1e-3
    """Approach 3's Huber δ (Hoffmann, Epoch: 1e-3; Cuervo & Marxer: 0.03)."""

    def __post_init__(self) -> None:
        checks = (
            ("n_bootstrap", self.n_bootstrap >= 0, "must be ≥ 0 (0: no intervals)"),
            ("seed", self.seed >= 0, "must be ≥ 0"),
            ("confidence", 0 < self.confidence < 1, "must be in (0, 1), e.g. 0.95"),
            ("huber_delta", self.huber_delta > 0, "must be > 0, e.g. 1e-3"),
        )
        for name, ok, hint in checks:
            if not ok:
                raise ConfigError(f"field '{name}' = {getattr(self, name)!r}: {hint}")


# -- fitting ------------------------------------------------------------------------------
def fit_study(study: Study, settings: FitSettings | None = None) -> StudyFits:
    """Fit every law the study's scaling runs support, per arm."""
    settings = settings or FitSettings()
    entries: list[FitEntry] = []
    skipped: dict[str, str] = {}
    jobs = [(kind, arm, "") for arm in study.arms for kind in KINDS[:3]]
    jobs += [(k, arm, metric) for k in KINDS[3:] for arm in study.arms for metric in METRICS]
    for kind, arm, benchmark in jobs:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # caveats are kept in FitResult.warnings
                result = _FITTERS[kind](study, arm, benchmark, settings)
        except SlscaleError as exc:
            skipped[fit_name(kind, arm, benchmark)] = str(exc)
            continue
        entries.append(FitEntry(kind=kind, arm=arm, benchmark=benchmark, result=result))
    return StudyFits(entries=tuple(entries), skipped=skipped, references=load_references())


def _common(settings: FitSettings) -> dict[str, Any]:
    return {
        "n_bootstrap": settings.n_bootstrap,
        "confidence": settings.confidence,
        "random_state": settings.seed,
    }


def _conventions(study: Study, what: str) -> dict[str, Any]:
    return {
        **CONVENTIONS,
        "tokens": "tokens trained on (run summary)",
        "loss": what,
        "source": study.source,
    }


def _loss_points(study: Study, arm: str) -> inputs.LossPoints:
    """The arm's final losses as fit points, through the adapter ``slscale fit`` uses."""
    rows = inputs.Rows(table=Table(frame=study.scaling_runs(arm), source=study.source), store=None)
    return inputs.loss_points(
        rows, params_col="n_params", loss_col="loss", tokens_col="tokens", flops_col="flops"
    )


def _approach3(study: Study, arm: str, _b: str, settings: FitSettings) -> FitResult:
    p = _loss_points(study, arm)
    fit = ParametricLossFit(huber_delta=settings.huber_delta, **_common(settings))
    fit.fit(
        p.n,
        p.tokens,
        p.loss,
        flops=p.flops,
        conventions=_conventions(study, "final training loss"),
        label=arm,
    )
    return fit.result_


def _approach2(study: Study, arm: str, _b: str, settings: FitSettings) -> FitResult:
    p = _loss_points(study, arm)
    fit = IsoFlopFit(**_common(settings))
    fit.fit(
        p.n,
        p.tokens,
        p.loss,
        flops=p.flops,
        conventions=_conventions(study, "final training loss"),
        label=arm,
    )
    return fit.result_


def _approach1(study: Study, arm: str, _b: str, settings: FitSettings) -> FitResult:
    curves = study.arm_curves(arm)
    if curves.empty:
        raise ConfigError(f"arm '{arm}': no training-loss curves logged in {study.source}")
    fit = EnvelopeFit(**_common(settings))
    fit.fit(
        curves["run_id"],
        curves["n_params"],
        curves["flops"],
        curves["loss"],
        tokens=curves["tokens"],
        label=arm,
        conventions=_conventions(study, "training loss along each run"),
    )
    return fit.result_


def _metric(study: Study, arm: str, benchmark: str, settings: FitSettings) -> FitResult:
    scores = study.arm_scores(arm, benchmark)
    if scores.empty:
        raise ConfigError(f"arm '{arm}': no {benchmark} scores in {study.source}")
    fit = MetricPowerLaw(method="best_per_budget", **_common(settings))
    return _score_law(fit, scores, "value", f"{benchmark} accuracy as a fraction", study, arm)


def _margin(study: Study, arm: str, benchmark: str, settings: FitSettings) -> FitResult:
    scores = study.arm_scores(arm, benchmark)
    if "margin" in scores:
        scores = scores[np.isfinite(scores["margin"].astype(float))]
    if scores.empty or "margin" not in scores:
        raise ConfigError(
            f"arm '{arm}': no {benchmark} log-likelihood margins in {study.source} (scores "
            "written before margins were stored; re-run `slscale eval` to add them)"
        )
    fit = MarginLaw(method="best_per_budget", **_common(settings))
    what = f"{benchmark} mean log-likelihood margin, correct minus wrong"
    return _score_law(fit, scores, "margin", what, study, arm)


def _score_law(
    fit: MetricPowerLaw, scores: Any, column: str, what: str, study: Study, arm: str
) -> FitResult:
    """Fit a law of one score column on the best run per budget; keep each point's N and run."""
    benchmark = str(scores["benchmark"].iloc[0])
    conventions = {
        **CONVENTIONS,
        "metric": what,
        "convention": ", ".join(sorted(set(scores["convention"].astype(str)))),
        "source": study.source,
    }
    fit.fit(scores["flops"], scores[column], conventions=conventions, label=f"{arm} {benchmark}")
    return dataclasses.replace(
        fit.result_,
        data={
            **fit.result_.data,
            "n_params": scores["n_params"].to_numpy(),
            "run_id": scores["run_id"].astype(str).tolist(),
        },
    )


_FITTERS = {
    "approach3": _approach3,
    "approach2": _approach2,
    "approach1": _approach1,
    "metric": _metric,
    "margin": _margin,
}
