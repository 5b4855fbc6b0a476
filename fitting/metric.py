"""Metric power laws Q(C) = a·C^b (SIMS Fig. 1; Cuervo & Marxer 2024).

``method="best_per_budget"`` (SIMS): per compute budget keep the best run's score, then fit
log Q on log C by least squares. ``method="envelope"`` (Cuervo & Marxer's Q ∝ C^γ): from all
evaluated checkpoints keep those that beat every cheaper checkpoint (the upper envelope; the
lower one for losses) and fit the same line. Intervals come from a case bootstrap over the
fitted points.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, Self

import numpy as np
from numpy.typing import ArrayLike

from slscale.errors import ConfigError, SlscaleError
from slscale.fitting import laws, tables, validation
from slscale.fitting.powerlaw import check_bootstrap, loglog_fit, percentile_ci, resample_counts
from slscale.fitting.results import METRIC, FitResult
from slscale.fitting.tables import FloatArray

Method = Literal["best_per_budget", "envelope"]


class MetricPowerLaw:
    """Fit Q(C) = a·C^b. Learned: ``points_`` (the C and Q fitted), ``params_`` (a, b),
    ``ci_``, ``bootstrap_params_``, ``extrapolation_``, ``result_``."""

    # The law is a straight line in transformed coordinates (:meth:`_line`, :meth:`predict`);
    # a subclass changes the transform, the law's name and which parameter is its slope.
    METHOD = "metric"
    LAW = METRIC
    SLOPE = "b"
    OBJECTIVE = "least squares of log Q on log C"
    POSITIVE = True
    """Values must be > 0 (a power law)."""

    def __init__(
        self,
        *,
        method: Method = "best_per_budget",
        higher_is_better: bool = True,
        n_bootstrap: int = 1000,
        confidence: float = 0.95,
        random_state: int | np.random.Generator | None = None,
        validate: bool = True,
        budget_gap_dex: float = tables.DEFAULT_GAP_DEX,
    ) -> None:
        self.method = method
        """'best_per_budget' (SIMS Fig. 1) or 'envelope' (Cuervo & Marxer)."""
        self.higher_is_better = higher_is_better
        """True for accuracies (sSC, tSC); False for losses."""
        self.n_bootstrap = n_bootstrap
        """Case-bootstrap resamples of the fitted points; 0 skips it."""
        self.confidence = confidence
        """Coverage of the percentile intervals."""
        self.random_state = random_state
        """Seed or Generator for the resampling."""
        self.validate = validate
        """Run the leave-largest-budget-out check."""
        self.budget_gap_dex = budget_gap_dex
        """Gap in log10 FLOPs separating budgets when no budget column is given."""

    def fit(
        self,
        flops: ArrayLike,
        value: ArrayLike,
        *,
        budget: ArrayLike | None = None,
        run_id: ArrayLike | None = None,
        conventions: Mapping[str, Any] | None = None,
        label: str = "",
    ) -> Self:
        """Fit scores ``value`` (> 0 for a power law) of runs or checkpoints trained with ``flops``.

        ``budget`` labels the compute budgets (default: FLOPs grouped); ``run_id`` (envelope
        only) lets the extrapolation check hold out whole runs.
        """
        if self.method not in ("best_per_budget", "envelope"):
            raise ConfigError(f"method = {self.method!r}: use 'best_per_budget' or 'envelope'")
        c = tables.as_column("flops", flops)
        q = tables.as_column("value", value, positive=self.POSITIVE)
        tables.same_length(flops=c, value=q)
        check_bootstrap(self.n_bootstrap)
        labels, _ = tables.budget_labels(c, budget, gap_dex=self.budget_gap_dex)
        keep = self._select(c, q, labels)
        self.points_ = {"flops": c[keep], "value": q[keep]}
        if np.unique(c[keep]).size < 2:
            raise ConfigError(
                f"a metric power law needs points at two or more compute budgets; the "
                f"{self.method} selection left {keep.size} point(s) at one budget"
            )
        self.params_ = {k: float(v) for k, v in self._line(c[keep], q[keep]).items()}
        self._bootstrap()
        self.extrapolation_ = (
            self._extrapolate(c, q, labels, keep, run_id) if self.validate else None
        )
        self.result_ = self._result(c, q, labels, keep, conventions or {}, label)
        return self

    def _select(self, c: FloatArray, q: FloatArray, labels: Any) -> np.ndarray:
        """Indices of the fitted points: best per budget, or the running-best envelope."""
        sign = 1.0 if self.higher_is_better else -1.0
        if self.method == "best_per_budget":
            return np.array(
                [
                    idx[np.argmax(sign * q[idx])]
                    for idx in (np.flatnonzero(labels == k) for k in np.unique(labels))
                ]
            )
        order = np.lexsort((-sign * q, c))  # by compute, best first among ties
        running = np.maximum.accumulate(sign * q[order])
        improves = np.concatenate([[True], sign * q[order][1:] > running[:-1]])
        return np.sort(order[improves])

    def _bootstrap(self) -> None:
        self.bootstrap_params_: dict[str, FloatArray] | None = None
        self.ci_: dict[str, tuple[float, float]] = {}
        if self.n_bootstrap == 0:
            return
        rng = np.random.default_rng(self.random_state)
        c, q = self.points_["flops"], self.points_["value"]
        self.bootstrap_params_ = self._line(c, q, resample_counts(rng, c.size, self.n_bootstrap))
        self.ci_ = percentile_ci(self.bootstrap_params_, self.confidence)

    def _line(self, c: FloatArray, q: FloatArray, weights: Any = None) -> dict[str, Any]:
        """The law's parameters fitted to (C, Q), one set per weight row: log Q on log C."""
        log_a, b = loglog_fit(c, q, weights)
        return {"a": np.exp(log_a), "b": b}

    def _extrapolate(
        self, c: FloatArray, q: FloatArray, labels: Any, keep: np.ndarray, run_id: ArrayLike | None
    ) -> dict[str, Any]:
        """Refit without the largest budget's rows; predict the fitted points among them."""
        try:
            test = self._held_out(c, labels, run_id)
            tested = keep[test[keep]]
            if tested.size == 0:
                raise ConfigError("the held-out rows contribute no fitted point")
            train = type(self)(
                method=self.method,
                higher_is_better=self.higher_is_better,
                n_bootstrap=0,
                validate=False,
                budget_gap_dex=self.budget_gap_dex,
            ).fit(c[~test], q[~test], budget=labels[~test] + 1.0)
        except SlscaleError as exc:
            return validation.skipped(str(exc))
        return validation.report(
            quantity="value",
            predicted=train.predict(c[tested]),
            observed=q[tested],
            n_train=int((~test).sum()),
            held_out_flops=c[tested],
        )

    def _held_out(self, c: FloatArray, labels: Any, run_id: ArrayLike | None) -> np.ndarray:
        """Rows of the largest budget: by budget label, by whole runs, or the top fifth of C."""
        if self.method == "best_per_budget":
            return tables.largest_budget_mask(labels, min_points=1)
        if run_id is not None:
            runs = np.asarray(run_id).astype(str)
            names, index = np.unique(runs, return_inverse=True)
            final = np.array([c[index == k].max() for k in range(names.size)])
            run_labels, _ = tables.budget_labels(final, gap_dex=self.budget_gap_dex)
            return tables.largest_budget_mask(run_labels, min_points=1)[index]
        log_c = np.log10(c)
        return log_c >= log_c.max() - 0.2 * (log_c.max() - log_c.min())

    def predict(self, flops: ArrayLike) -> FloatArray:
        """Q(C) = a·C^b."""
        return laws.metric_law(flops, **self.params_)

    def _result(
        self,
        c: FloatArray,
        q: FloatArray,
        labels: Any,
        keep: np.ndarray,
        conventions: Mapping[str, Any],
        label: str,
    ) -> FitResult:
        return FitResult(
            method=self.METHOD,
            law=self.LAW,
            label=label,
            params=self.params_,
            exponents={self.SLOPE: self.params_[self.SLOPE]},
            ci=self.ci_,
            confidence=self.confidence,
            n_points=int(keep.size),
            data={
                "flops": c,
                "value": q,
                "budget_label": labels,
                "fitted": np.isin(np.arange(c.size), keep),
            },
            conventions={**conventions, "higher_is_better": self.higher_is_better},
            objective={
                "name": self.OBJECTIVE,
                "selection": self.method,
                "bootstrap": {"n_resamples": self.n_bootstrap, "resampling": "fitted points"},
            },
            extrapolation=self.extrapolation_,
            bootstrap=self.bootstrap_params_,
        )
