"""Approach 1: the minimum-loss envelope of training curves [Hoffmann et al. 2022, §3.1].

Each run's curve (loss against FLOPs so far) is interpolated linearly in log FLOPs on a
shared log-spaced FLOP grid, inside the range the run covers. At each grid point the run with
the lowest loss is the compute-optimal one: its N, and its tokens seen by then, give
N_opt(C) and D_opt(C); straight lines in log-log give N_opt ∝ C^a and D_opt ∝ C^b. The
bootstrap resamples whole runs, recomputes the envelope and both lines.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from slscale.compute import tokens_6nd
from slscale.errors import ConfigError, SlscaleError
from slscale.fitting import laws, tables, validation
from slscale.fitting.powerlaw import check_bootstrap, loglog_fit, percentile_ci, resample_counts
from slscale.fitting.results import ALLOCATION, FitResult
from slscale.fitting.tables import FloatArray


class EnvelopeFit:
    """Approach 1 estimator. Learned: ``envelope_`` (DataFrame: flops, run_id, n_opt,
    d_opt, loss), ``params_`` (k_N, a, k_D, b), ``exponents_``, ``ci_``,
    ``bootstrap_params_``, ``extrapolation_``, ``result_``."""

    def __init__(
        self,
        *,
        n_flops_grid: int = 1500,
        n_bootstrap: int = 1000,
        confidence: float = 0.95,
        random_state: int | np.random.Generator | None = None,
        drop_edge_sizes: bool = True,
        validate: bool = True,
        budget_gap_dex: float = tables.DEFAULT_GAP_DEX,
    ) -> None:
        self.n_flops_grid = n_flops_grid
        """Log-spaced FLOP values the envelope is read at (Hoffmann used 1,500)."""
        self.n_bootstrap = n_bootstrap
        """Resamples of whole runs; 0 skips the bootstrap."""
        self.confidence = confidence
        """Coverage of the percentile intervals."""
        self.random_state = random_state
        """Seed or Generator for the resampling."""
        self.drop_edge_sizes = drop_edge_sizes
        """Leave out FLOPs where the smallest or largest model wins: there the optimum may lie
        outside the sampled sizes, which flattens the fitted slope."""
        self.validate = validate
        """Run the leave-largest-budget-out check (budgets = runs' final FLOPs)."""
        self.budget_gap_dex = budget_gap_dex
        """Gap in log10 final FLOPs that separates run budgets."""

    def fit(
        self,
        run_id: ArrayLike,
        n_params: ArrayLike,
        flops: ArrayLike,
        loss: ArrayLike,
        *,
        tokens: ArrayLike | None = None,
        conventions: Mapping[str, Any] | None = None,
        label: str = "",
    ) -> Self:
        """Fit long-format curves: one row per logged point (run, its N, FLOPs so far, loss).

        ``tokens`` (tokens seen so far) defaults to FLOPs/(6N).
        """
        frame = self._frame(run_id, n_params, flops, loss, tokens)
        check_bootstrap(self.n_bootstrap)
        if self.n_flops_grid < 2:
            raise ConfigError(f"n_flops_grid = {self.n_flops_grid!r}: must be ≥ 2")
        runs = _runs(frame)
        grid, losses, log_tokens = _interpolate(runs, self.n_flops_grid)
        chosen = np.ones(len(runs), dtype=bool)
        self.envelope_ = _envelope(runs, grid, losses, log_tokens, chosen)
        self.params_ = self._lines(self.envelope_)
        if not np.isfinite(list(self.params_.values())).all():
            raise ConfigError(
                "Approach 1: fewer than two FLOP values are won by a model that is neither the "
                "smallest nor the largest; add model sizes or pass drop_edge_sizes=False"
            )
        self.exponents_ = {"a": self.params_["a"], "b": self.params_["b"]}
        self._bootstrap(runs, grid, losses, log_tokens)
        self.extrapolation_ = self._extrapolate(frame, runs) if self.validate else None
        self.result_ = self._result(frame, conventions or {}, label)
        return self

    def _frame(
        self,
        run_id: ArrayLike,
        n_params: ArrayLike,
        flops: ArrayLike,
        loss: ArrayLike,
        tokens: ArrayLike | None,
    ) -> pd.DataFrame:
        n = tables.as_column("n_params", n_params)
        c = tables.as_column("flops", flops)
        y = tables.as_column("loss", loss)
        d = tokens_6nd(c, n) if tokens is None else tables.as_column("tokens", tokens)
        ids = np.asarray(run_id).astype(str)
        tables.same_length(run_id=ids, n_params=n, flops=c, loss=y, tokens=d)
        frame = pd.DataFrame({"run_id": ids, "n_params": n, "flops": c, "loss": y, "tokens": d})
        sizes = frame.groupby("run_id")["n_params"].nunique()
        if (sizes > 1).any():
            raise ConfigError(f"run '{sizes.idxmax()}' has several n_params values; one per run")
        if frame["run_id"].nunique() < 2 or frame["n_params"].nunique() < 2:
            raise ConfigError(
                "Approach 1 needs training curves of at least two runs with different model "
                f"sizes; got {frame['run_id'].nunique()} run(s), "
                f"{frame['n_params'].nunique()} size(s)"
            )
        return frame

    def _bootstrap(
        self, runs: pd.DataFrame, grid: FloatArray, losses: FloatArray, log_tokens: FloatArray
    ) -> None:
        self.bootstrap_params_: dict[str, FloatArray] | None = None
        self.ci_: dict[str, tuple[float, float]] = {}
        if self.n_bootstrap == 0:
            return
        rng = np.random.default_rng(self.random_state)
        picked = resample_counts(rng, len(runs), self.n_bootstrap) > 0  # (resamples, runs)
        lines = [
            self._lines(_envelope(runs, grid, losses, log_tokens, chosen)) for chosen in picked
        ]
        self.bootstrap_params_ = {k: np.array([p[k] for p in lines]) for k in self.params_}
        self.ci_ = percentile_ci(self.bootstrap_params_, self.confidence)

    def _lines(self, envelope: pd.DataFrame) -> dict[str, float]:
        """N_opt = k_N·C^a and D_opt = k_D·C^b through the (interior) envelope points."""
        rows = envelope[~envelope["edge"]] if self.drop_edge_sizes else envelope
        rows = rows[np.isfinite(rows["loss"])]
        c = rows["flops"].to_numpy()
        log_kn, a = loglog_fit(c, rows["n_opt"].to_numpy())
        log_kd, b = loglog_fit(c, rows["d_opt"].to_numpy())
        return {
            "k_N": float(np.exp(log_kn)),
            "a": float(a),
            "k_D": float(np.exp(log_kd)),
            "b": float(b),
        }

    def _extrapolate(self, frame: pd.DataFrame, runs: pd.DataFrame) -> dict[str, Any]:
        try:
            labels, _ = tables.budget_labels(
                runs["final_flops"].to_numpy(), gap_dex=self.budget_gap_dex
            )
            held = tables.largest_budget_mask(labels, min_points=1)
            held_ids = set(runs["run_id"][held])
            train = EnvelopeFit(
                n_flops_grid=self.n_flops_grid,
                n_bootstrap=0,
                drop_edge_sizes=self.drop_edge_sizes,
                validate=False,
            ).fit(**_columns(frame[~frame["run_id"].isin(held_ids)]))
        except SlscaleError as exc:
            return validation.skipped(str(exc))
        beyond = runs["final_flops"][~held].max()
        rows = self.envelope_[(self.envelope_["flops"] > beyond) & ~self.envelope_["edge"]]
        if rows.empty:
            return validation.skipped(
                "beyond the training runs' compute the envelope is won only by the smallest or "
                "largest model: no interior point to check"
            )
        predicted = train.optimal_allocation(rows["flops"].to_numpy())
        return validation.report(
            quantity="n_opt,d_opt",
            predicted=np.concatenate(predicted),
            observed=np.concatenate([rows["n_opt"], rows["d_opt"]]),
            n_train=int((~held).sum()),
            held_out_flops=rows["flops"],
        )

    def optimal_allocation(self, flops: ArrayLike) -> tuple[FloatArray, FloatArray]:
        """(N_opt, D_opt) at compute C from the fitted lines."""
        p = self.params_
        return (
            laws.power_law(flops, coef=p["k_N"], exponent=p["a"]),
            laws.power_law(flops, coef=p["k_D"], exponent=p["b"]),
        )

    def _result(self, frame: pd.DataFrame, conventions: Mapping[str, Any], label: str) -> FitResult:
        return FitResult(
            method="approach1",
            law=ALLOCATION,
            label=label,
            params=self.params_,
            exponents=self.exponents_,
            ci=self.ci_,
            confidence=self.confidence,
            n_points=len(frame),
            data={k: frame[k].tolist() for k in frame.columns},
            conventions=dict(conventions),
            objective={
                "name": "least squares of log N_opt and log D_opt on log C along the "
                "minimum-loss envelope",
                "n_flops_grid": self.n_flops_grid,
                "n_runs": int(frame["run_id"].nunique()),
                "bootstrap": {"n_resamples": self.n_bootstrap, "resampling": "whole runs"},
            },
            extrapolation=self.extrapolation_,
            bootstrap=self.bootstrap_params_,
            details={"envelope": {k: self.envelope_[k].tolist() for k in self.envelope_}},
        )


def _columns(frame: pd.DataFrame) -> dict[str, Any]:
    return {k: frame[k] for k in ("run_id", "n_params", "flops", "loss", "tokens")}


def _runs(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per run: its N, final FLOPs and its curve sorted by FLOPs (duplicates averaged)."""
    curves = frame.groupby(["run_id", "flops"], sort=True, as_index=False).agg(
        n_params=("n_params", "first"), loss=("loss", "mean"), tokens=("tokens", "mean")
    )
    rows = []
    for run, curve in curves.groupby("run_id", sort=True):
        rows.append(
            {
                "run_id": run,
                "n_params": float(curve["n_params"].iloc[0]),
                "final_flops": float(curve["flops"].iloc[-1]),
                "log_flops": np.log(curve["flops"].to_numpy()),
                "loss": curve["loss"].to_numpy(),
                "log_tokens": np.log(curve["tokens"].to_numpy()),
            }
        )
    return pd.DataFrame(rows)


def _interpolate(runs: pd.DataFrame, n_grid: int) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Loss and log tokens of every run on a shared log-FLOP grid (inf/NaN outside a run)."""
    low = min(float(f[0]) for f in runs["log_flops"])
    high = max(float(f[-1]) for f in runs["log_flops"])
    log_grid = np.linspace(low, high, n_grid)
    losses = np.full((len(runs), n_grid), np.inf)
    log_tokens = np.full((len(runs), n_grid), np.nan)
    for i, (lf, loss, lt) in enumerate(
        zip(runs["log_flops"], runs["loss"], runs["log_tokens"], strict=True)
    ):
        inside = (log_grid >= lf[0]) & (log_grid <= lf[-1])
        losses[i, inside] = np.interp(log_grid[inside], lf, loss)
        log_tokens[i, inside] = np.interp(log_grid[inside], lf, lt)
    return np.exp(log_grid), losses, log_tokens


def _envelope(
    runs: pd.DataFrame,
    grid: FloatArray,
    losses: FloatArray,
    log_tokens: FloatArray,
    chosen: np.ndarray,
) -> pd.DataFrame:
    """The lowest-loss run among ``chosen`` runs at each FLOP value (loss inf: none covers).

    ``edge`` marks values won by the smallest or largest model among the chosen runs.
    """
    masked = np.where(chosen[:, None], losses, np.inf)
    best = np.argmin(masked, axis=0)
    cols = np.arange(grid.size)
    sizes = runs["n_params"].to_numpy()
    n_opt = sizes[best]
    return pd.DataFrame(
        {
            "flops": grid,
            "run_id": runs["run_id"].to_numpy()[best],
            "n_opt": n_opt,
            "d_opt": np.exp(log_tokens[best, cols]),
            "loss": masked[best, cols],
            "edge": (n_opt <= sizes[chosen].min()) | (n_opt >= sizes[chosen].max()),
        }
    )
