"""Approach 2: IsoFLOP profiles → N_opt(C) ∝ C^a, D_opt(C) ∝ C^b [Hoffmann et al. 2022, §3.2].

Per compute budget a parabola of loss in log N (and one in log D) gives that budget's
optimum (see :mod:`slscale.fitting.isoflop`); straight lines through log N_opt and log D_opt
against log C give the exponents. A bootstrap resamples runs within each budget, refits every
parabola and both lines, and gives intervals for a, b and every budget's optimum. Budgets
whose optimum sits near the edge of the sampled sizes, or whose sizes span too little, bias
Approach 2 [Czech et al. 2026]: they raise :class:`SamplingWarning` and are listed in the
result's ``warnings``.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any, Self

import numpy as np
from numpy.typing import ArrayLike

from slscale.compute import flops_6nd
from slscale.errors import ConfigError
from slscale.fitting import isoflop, laws, tables, validation
from slscale.fitting.powerlaw import check_bootstrap, loglog_fit, percentile_ci, stratified_counts
from slscale.fitting.results import ALLOCATION, FitResult
from slscale.fitting.tables import FloatArray


class SamplingWarning(UserWarning):
    """An IsoFLOP budget is sampled in a way that biases Approach 2."""


class IsoFlopFit:
    """Approach 2 estimator. Learned: ``budgets_`` (per-budget rows), ``params_`` (k_N, a,
    k_D, b), ``exponents_``, ``ci_``, ``bootstrap_params_``, ``warnings_``,
    ``extrapolation_``, ``result_``."""

    def __init__(
        self,
        *,
        n_bootstrap: int = 1000,
        confidence: float = 0.95,
        random_state: int | np.random.Generator | None = None,
        min_points: int = 3,
        centre_margin: float = 0.25,
        min_span_dex: float = 0.5,
        validate: bool = True,
        budget_gap_dex: float = tables.DEFAULT_GAP_DEX,
    ) -> None:
        self.n_bootstrap = n_bootstrap
        """Resamples of runs within each budget; 0 skips the bootstrap."""
        self.confidence = confidence
        """Coverage of the percentile intervals."""
        self.random_state = random_state
        """Seed or Generator for the resampling."""
        self.min_points = min_points
        """Budgets with fewer distinct model sizes are left out (a parabola needs 3)."""
        self.centre_margin = centre_margin
        """Warn when the optimum lies in the outer ``centre_margin`` of the sampled range."""
        self.min_span_dex = min_span_dex
        """Warn when a budget's sizes span fewer decades than this."""
        self.validate = validate
        """Run the leave-largest-budget-out check."""
        self.budget_gap_dex = budget_gap_dex
        """Gap in log10 FLOPs separating budgets when no budget column is given."""

    def fit(
        self,
        n_params: ArrayLike,
        tokens: ArrayLike,
        loss: ArrayLike,
        *,
        budget: ArrayLike | None = None,
        flops: ArrayLike | None = None,
        conventions: Mapping[str, Any] | None = None,
        label: str = "",
    ) -> Self:
        """Fit IsoFLOP points (N, D, final loss), grouped by ``budget`` (or by FLOPs)."""
        n, d, y = (
            tables.as_column(k, v)
            for k, v in (("n_params", n_params), ("tokens", tokens), ("loss", loss))
        )
        tables.same_length(n_params=n, tokens=d, loss=y)
        c = flops_6nd(n, d) if flops is None else tables.as_column("flops", flops)
        labels, budgets = tables.budget_labels(c, budget, gap_dex=self.budget_gap_dex)
        check_bootstrap(self.n_bootstrap)
        self.warnings_: list[str] = []
        rows = self._budget_rows(np.log(n), np.log(d), y, labels, budgets)
        used = [r for r in rows if r["used"]]
        if len(used) < 2:
            raise ConfigError(
                f"Approach 2 needs at least two compute budgets with a parabola minimum and "
                f"≥ {self.min_points} model sizes; found {len(used)} of {len(rows)} budgets"
            )
        self.budgets_ = rows
        self._lines(used)
        self._bootstrap(np.log(n), np.log(d), y, labels, rows)
        self.extrapolation_ = self._extrapolate(used) if self.validate else None
        self.result_ = self._result(n, d, y, c, labels, budgets, conventions or {}, label)
        for message in self.warnings_:
            warnings.warn(message, SamplingWarning, stacklevel=2)
        return self

    # -- per budget -------------------------------------------------------------------------
    def _budget_rows(
        self, log_n: FloatArray, log_d: FloatArray, y: FloatArray, labels: Any, budgets: FloatArray
    ) -> list[dict[str, Any]]:
        rows = []
        for k, idx in enumerate(isoflop.group_rows(labels)):
            row: dict[str, Any] = {"budget": float(budgets[k]), "n_points": int(idx.size)}
            if np.unique(log_n[idx]).size < max(self.min_points, 3):
                row["used"] = False
                self._warn(row, f"fewer than {max(self.min_points, 3)} model sizes; left out")
            else:
                row.update(self._vertex_row(log_n[idx], log_d[idx], y[idx]))
                row["used"] = bool(np.isfinite(row["n_opt"]) and np.isfinite(row["d_opt"]))
                self._diagnose(row)
            rows.append(row)
        return rows

    def _vertex_row(self, u: FloatArray, v: FloatArray, y: FloatArray) -> dict[str, Any]:
        vn, vd = isoflop.fit_vertices(u, y), isoflop.fit_vertices(v, y)
        dn = isoflop.sampling_diagnostics(u, float(vn.log_opt))
        dd = isoflop.sampling_diagnostics(v, float(vd.log_opt))
        return {
            "n_opt": float(np.exp(vn.log_opt)),
            "d_opt": float(np.exp(vd.log_opt)),
            "loss_opt": float(vn.loss_opt),
            "curvature_n": float(vn.curvature),
            "curvature_d": float(vd.curvature),
            "n_opt_se_log": isoflop.vertex_standard_error(u, y),
            "d_opt_se_log": isoflop.vertex_standard_error(v, y),
            "position_n": dn["position"],
            "position_d": dd["position"],
            "span_dex_n": dn["span_dex"],
            "span_dex_d": dd["span_dex"],
        }

    def _diagnose(self, row: dict[str, Any]) -> None:
        if not row["used"]:
            self._warn(row, "the parabola has no minimum (loss not convex in log N); left out")
            return
        for axis in ("n", "d"):
            pos, span = row[f"position_{axis}"], row[f"span_dex_{axis}"]
            name = "N" if axis == "n" else "D"
            if not 0.0 <= pos <= 1.0:
                self._warn(row, f"optimum {name} lies outside the sampled range (at {pos:.2f})")
            elif min(pos, 1 - pos) < self.centre_margin:
                self._warn(row, f"optimum {name} is off-centre (at {pos:.2f} of the range)")
            if span < self.min_span_dex:
                self._warn(row, f"sampled {name} spans only {span:.2f} decades")

    def _warn(self, row: dict[str, Any], message: str) -> None:
        row.setdefault("warnings", []).append(message)
        self.warnings_.append(
            f"budget C={row['budget']:.3g}: {message} — Approach 2 is biased there; "
            "sample sizes centred on the optimum over ≥ 1 decade"
        )

    # -- the two lines ----------------------------------------------------------------------
    def _lines(self, used: list[dict[str, Any]]) -> None:
        c = np.array([r["budget"] for r in used])
        log_kn, a = loglog_fit(c, np.array([r["n_opt"] for r in used]))
        log_kd, b = loglog_fit(c, np.array([r["d_opt"] for r in used]))
        self.params_ = {
            "k_N": float(np.exp(log_kn)),
            "a": float(a),
            "k_D": float(np.exp(log_kd)),
            "b": float(b),
        }
        self.exponents_ = {"a": float(a), "b": float(b)}

    def _bootstrap(
        self, log_n: FloatArray, log_d: FloatArray, y: FloatArray, labels: Any, rows: list[Any]
    ) -> None:
        self.bootstrap_params_: dict[str, FloatArray] | None = None
        self.ci_: dict[str, tuple[float, float]] = {}
        if self.n_bootstrap == 0:
            return
        rng = np.random.default_rng(self.random_state)
        counts = stratified_counts(rng, labels, self.n_bootstrap)
        groups = isoflop.group_rows(labels)
        used = [k for k, r in enumerate(rows) if r["used"]]
        c = np.array([rows[k]["budget"] for k in used])
        draws: dict[str, FloatArray] = {}
        for axis, logs in (("N", log_n), ("D", log_d)):
            vertex = np.stack(
                [
                    isoflop.fit_vertices(
                        logs[groups[k]], y[groups[k]], counts[:, groups[k]]
                    ).log_opt
                    for k in used
                ],
                axis=1,
            )
            ok = np.isfinite(vertex)
            log_k, slope = loglog_fit(c, np.exp(np.where(ok, vertex, 0.0)), ok.astype(float))
            draws[f"k_{axis}"], draws["a" if axis == "N" else "b"] = np.exp(log_k), slope
            for j, k in enumerate(used):
                ci = percentile_ci({"v": np.exp(vertex[:, j])}, self.confidence)["v"]
                rows[k][f"{axis.lower()}_opt_ci"] = list(ci)
        self.bootstrap_params_ = draws
        self.ci_ = percentile_ci(draws, self.confidence)

    def _extrapolate(self, used: list[dict[str, Any]]) -> dict[str, Any]:
        if len(used) < 3:
            return validation.skipped("needs three usable budgets (two to fit, one held out)")
        c = np.array([r["budget"] for r in used])
        observed = np.array([[r["n_opt"], r["d_opt"]] for r in used])
        fits = [loglog_fit(c[:-1], observed[:-1, j]) for j in range(2)]
        predicted = [float(np.exp(k + e * np.log(c[-1]))) for k, e in fits]
        return validation.report(
            quantity="n_opt,d_opt",
            predicted=predicted,
            observed=observed[-1],
            n_train=len(used) - 1,
            held_out_flops=[c[-1]],
        )

    # -- using the fit ----------------------------------------------------------------------
    def optimal_allocation(self, flops: ArrayLike) -> tuple[FloatArray, FloatArray]:
        """(N_opt, D_opt) at compute C from the fitted lines."""
        p = self.params_
        return (
            laws.power_law(flops, coef=p["k_N"], exponent=p["a"]),
            laws.power_law(flops, coef=p["k_D"], exponent=p["b"]),
        )

    def _result(
        self,
        n: FloatArray,
        d: FloatArray,
        y: FloatArray,
        c: FloatArray,
        labels: Any,
        budgets: FloatArray,
        conventions: Mapping[str, Any],
        label: str,
    ) -> FitResult:
        return FitResult(
            method="approach2",
            law=ALLOCATION,
            label=label,
            params=self.params_,
            exponents=self.exponents_,
            ci=self.ci_,
            confidence=self.confidence,
            n_points=int(n.size),
            data={"n_params": n, "tokens": d, "flops": c, "loss": y, "budget": budgets[labels]},
            conventions=dict(conventions),
            objective={
                "name": "least squares: per-budget parabola of loss in log N and in log D, "
                "then log N_opt and log D_opt on log C",
                "n_budgets_used": sum(r["used"] for r in self.budgets_),
                "bootstrap": {
                    "n_resamples": self.n_bootstrap,
                    "resampling": "runs with replacement within each budget",
                },
            },
            extrapolation=self.extrapolation_,
            bootstrap=self.bootstrap_params_,
            warnings=tuple(self.warnings_),
            details={"budgets": self.budgets_},
        )
