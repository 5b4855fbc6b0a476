"""Approach 3: fit L(N, D) = E + A/N^α + B/D^β to final losses [Hoffmann et al. 2022, §3.3].

Following Besiroglu et al. (2024, "Chinchilla Scaling: A replication attempt"): log-sum-exp
form, Huber loss (δ = 1e-3) on log residuals *summed* over points, Hoffmann's 4,500-start
grid, tight convergence, and a bootstrap over runs for intervals of every parameter and of
the compute-optimal allocation (a, b, G, N_opt(C), D_opt(C)). The search is batched (see
:mod:`slscale.fitting.optimise`) and the bootstrap warm-started (see
:mod:`slscale.fitting.bootstrap`), so the full procedure takes seconds.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self

import numpy as np
from numpy.typing import ArrayLike, NDArray

from slscale.compute import flops_6nd
from slscale.errors import ConfigError, SlscaleError
from slscale.fitting import laws, tables, validation
from slscale.fitting.bootstrap import BootstrapFits, distinct_optima, refit_resamples
from slscale.fitting.objective import FloatArray, LogPoints, evaluate
from slscale.fitting.optimise import MultistartResult, hoffmann_grid, multistart
from slscale.fitting.powerlaw import check_bootstrap, percentile_ci, resample_counts
from slscale.fitting.results import PARAMETRIC, FitResult
from slscale.fitting.threads import single_threaded_blas

PARAM_NAMES = ("E", "A", "B", "alpha", "beta")


class ParametricLossFit:
    """Approach 3 estimator (scikit-learn style: hyper-parameters here, results after fit).

    Learned attributes: ``theta_`` (a, b, e, α, β), ``params_`` (E, A, B, alpha, beta),
    ``objective_``, ``bootstrap_params_`` ((resamples, 5) in PARAM_NAMES order), ``ci_`` and
    ``se_`` (params plus a, b, G), ``exponents_`` (a, b), ``extrapolation_``, ``result_``.
    """

    def __init__(
        self,
        *,
        huber_delta: float = 1e-3,
        n_bootstrap: int = 4000,
        confidence: float = 0.95,
        random_state: int | np.random.Generator | None = None,
        starts: ArrayLike | None = None,
        n_bootstrap_starts: int = 4,
        validate: bool = True,
        budget_gap_dex: float = tables.DEFAULT_GAP_DEX,
    ) -> None:
        self.huber_delta = huber_delta
        """Huber threshold on log residuals (1e-3: Hoffmann and Epoch; 0.03: Cuervo & Marxer)."""
        self.n_bootstrap = n_bootstrap
        """Resamples over runs (Epoch used 4,000); 0 skips the bootstrap."""
        self.confidence = confidence
        """Coverage of the percentile intervals."""
        self.random_state = random_state
        """Seed or Generator for the resampling."""
        self.starts = starts
        """(k, 5) starting θ = (a, b, e, α, β); None: Hoffmann's 4,500-point grid."""
        self.n_bootstrap_starts = n_bootstrap_starts
        """Distinct full-data optima each resample is refitted from."""
        self.validate = validate
        """Run the leave-largest-budget-out check."""
        self.budget_gap_dex = budget_gap_dex
        """Gap in log10 FLOPs that separates budgets when no budget column is given."""

    # -- fitting ----------------------------------------------------------------------------
    def fit(
        self,
        n_params: ArrayLike,
        tokens: ArrayLike,
        loss: ArrayLike,
        *,
        flops: ArrayLike | None = None,
        budget: ArrayLike | None = None,
        conventions: Mapping[str, Any] | None = None,
        label: str = "",
    ) -> Self:
        """Fit to one point per run: parameters N, tokens D, final loss L.

        ``flops`` (default 6·N·D) and ``budget`` only group points into compute budgets for
        the extrapolation check.
        """
        n, d, y, c = self._columns(n_params, tokens, loss, flops)
        self._check_hyper()
        points = LogPoints.from_arrays(n, d, y)
        with single_threaded_blas():
            search = multistart(points, self.huber_delta, self._starts())
            self.multistart_ = search
            self.theta_ = search.theta
            self.params_ = _params(search.theta)
            self.objective_ = search.value
            self._bootstrap(points, search)
            self.extrapolation_ = self._extrapolate(n, d, y, c, budget)
        self.result_ = self._result(n, d, y, c, conventions or {}, label)
        return self

    def _columns(
        self, n_params: ArrayLike, tokens: ArrayLike, loss: ArrayLike, flops: ArrayLike | None
    ) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
        n = tables.as_column("n_params", n_params)
        d = tables.as_column("tokens", tokens)
        y = tables.as_column("loss", loss)
        tables.same_length(n_params=n, tokens=d, loss=y)
        c = flops_6nd(n, d) if flops is None else tables.as_column("flops", flops)
        tables.same_length(n_params=n, flops=c)
        tables.require_points(n.size, len(PARAM_NAMES) + 1, "Approach 3 (5 parameters)")
        for name, col in (("n_params", n), ("tokens", d)):
            if np.unique(col).size < 2:
                raise ConfigError(
                    f"column '{name}': all {col.size} points share one value "
                    f"({col[0]:.4g}); Approach 3 needs at least two distinct {name} values"
                )
        return n, d, y, c

    def _check_hyper(self) -> None:
        if not self.huber_delta > 0:
            raise ConfigError(f"huber_delta = {self.huber_delta!r}: must be > 0")
        check_bootstrap(self.n_bootstrap)
        if self.n_bootstrap_starts < 1:
            raise ConfigError(f"n_bootstrap_starts = {self.n_bootstrap_starts!r}: must be ≥ 1")

    def _starts(self) -> FloatArray:
        if self.starts is None:
            return hoffmann_grid()
        starts = np.atleast_2d(np.asarray(self.starts, np.float64))
        if starts.shape[1] != 5 or not np.isfinite(starts).all():
            raise ConfigError(
                f"starts: expected finite rows (a, b, e, alpha, beta), got shape {starts.shape}"
            )
        return starts

    def _bootstrap(self, points: LogPoints, search: MultistartResult) -> None:
        self.bootstrap_params_: FloatArray | None = None
        self.ci_: dict[str, tuple[float, float]] = {}
        self.se_: dict[str, float] = {}
        if self.n_bootstrap == 0:
            return
        rng = np.random.default_rng(self.random_state)
        self.bootstrap_counts_ = resample_counts(rng, len(points), self.n_bootstrap)
        self.bootstrap_starts_ = distinct_optima(search, self.n_bootstrap_starts)
        fits = refit_resamples(
            points, self.huber_delta, self.bootstrap_starts_, self.bootstrap_counts_
        )
        self.bootstrap_fits_: BootstrapFits = fits
        columns = _params(fits.theta)
        self.bootstrap_params_ = np.column_stack([columns[k] for k in PARAM_NAMES])
        draws = _with_derived(columns)
        self.ci_ = percentile_ci(draws, self.confidence)
        self.se_ = {k: _finite_std(v) for k, v in draws.items()}

    def _extrapolate(
        self,
        n: FloatArray,
        d: FloatArray,
        y: FloatArray,
        c: FloatArray,
        budget: ArrayLike | None,
    ) -> dict[str, Any] | None:
        if not self.validate:
            return None
        try:
            labels, _ = tables.budget_labels(c, budget, gap_dex=self.budget_gap_dex)
            test = tables.largest_budget_mask(labels)
            train = ParametricLossFit(
                huber_delta=self.huber_delta, n_bootstrap=0, starts=self.starts, validate=False
            ).fit(n[~test], d[~test], y[~test])
        except SlscaleError as exc:
            return validation.skipped(str(exc))
        return validation.report(
            quantity="loss",
            predicted=train.predict(n[test], d[test]),
            observed=y[test],
            n_train=int((~test).sum()),
            held_out_flops=c[test],
        )

    # -- using the fit ----------------------------------------------------------------------
    def predict(self, n_params: ArrayLike, tokens: ArrayLike) -> NDArray[np.float64]:
        """Predicted loss L(N, D)."""
        return laws.parametric_loss(n_params, tokens, **self.params_)

    def optimal_allocation(self, flops: ArrayLike) -> tuple[FloatArray, FloatArray]:
        """(N_opt, D_opt) at compute C."""
        p = self.params_
        return laws.optimal_allocation(flops, A=p["A"], B=p["B"], alpha=p["alpha"], beta=p["beta"])

    def allocation_ci(self, flops: ArrayLike) -> dict[str, NDArray[np.float64]]:
        """Percentile intervals of N_opt(C) and D_opt(C): {'n_opt': (2, ...), 'd_opt': ...}."""
        return self.result_.allocation_interval(flops)

    # -- result -----------------------------------------------------------------------------
    def _result(
        self,
        n: FloatArray,
        d: FloatArray,
        y: FloatArray,
        c: FloatArray,
        conventions: Mapping[str, Any],
        label: str,
    ) -> FitResult:
        a, b = laws.allocation_exponents(self.params_["alpha"], self.params_["beta"])
        bootstrap = None
        if self.bootstrap_params_ is not None:
            bootstrap = {k: self.bootstrap_params_[:, i] for i, k in enumerate(PARAM_NAMES)}
        return FitResult(
            method="approach3",
            law=PARAMETRIC,
            label=label,
            params=self.params_,
            exponents={"a": float(a), "b": float(b)},
            ci=self.ci_,
            confidence=self.confidence,
            n_points=int(n.size),
            data={"n_params": n, "tokens": d, "flops": c, "loss": y},
            conventions={**conventions, "huber_delta": self.huber_delta},
            objective=self._objective_info(LogPoints.from_arrays(n, d, y)),
            extrapolation=self.extrapolation_,
            bootstrap=bootstrap,
            details={"G": float(laws.allocation_g(**_abab(self.params_))), "se": self.se_},
        )

    def _objective_info(self, points: LogPoints) -> dict[str, Any]:
        grad = evaluate(self.theta_[None, :], points, self.huber_delta, curvature=None).gradient
        info: dict[str, Any] = {
            "name": "sum over points of Huber_delta(LSE(a - alpha log N, b - beta log D, e)"
            " - log L)",
            "value": self.objective_,
            "huber_delta": self.huber_delta,
            "reduction": "sum",
            "n_starts": self.multistart_.n_starts,
            "starts": "hoffmann_grid" if self.starts is None else "user",
            "optimiser": "batched damped Newton with successive halving, exact-Newton polish",
            "converged": self.multistart_.converged,
            "gradient_norm": float(np.linalg.norm(grad)),
        }
        if self.bootstrap_params_ is not None:
            info["bootstrap"] = {
                "n_resamples": self.n_bootstrap,
                "resampling": "points (runs) with replacement",
                "starts_per_resample": int(self.bootstrap_starts_.shape[0]),
                "converged_fraction": float(self.bootstrap_fits_.converged.mean()),
                "seed": self.random_state if isinstance(self.random_state, int) else None,
            }
        return info


def _params(theta: FloatArray) -> dict[str, Any]:
    """θ = (a, b, e, α, β) of one row (floats) or many rows (arrays) → E, A, B, alpha, beta."""
    t = np.asarray(theta, np.float64)
    with np.errstate(over="ignore"):  # a drifting bootstrap draw may overflow A or B to inf
        out = {
            "E": np.exp(t[..., 2]),
            "A": np.exp(t[..., 0]),
            "B": np.exp(t[..., 1]),
            "alpha": t[..., 3],
            "beta": t[..., 4],
        }
    return {k: float(v) for k, v in out.items()} if t.ndim == 1 else out


def _finite_std(values: FloatArray) -> float:
    """Standard deviation of the finite draws (a draw drifting off to inf is left out)."""
    finite = values[np.isfinite(values)]
    if finite.size < 2:
        return float("nan")
    with np.errstate(over="ignore"):  # finite draws near the float limit: their spread is inf
        return float(np.std(finite, ddof=1))


def _abab(p: Mapping[str, Any]) -> dict[str, Any]:
    return {"A": p["A"], "B": p["B"], "alpha": p["alpha"], "beta": p["beta"]}


def _with_derived(columns: dict[str, FloatArray]) -> dict[str, FloatArray]:
    """Add the allocation exponents a, b and the constant G to parameter draws."""
    with np.errstate(all="ignore"):
        a, b = laws.allocation_exponents(columns["alpha"], columns["beta"])
        g = laws.allocation_g(**_abab(columns))
    return {**columns, "a": np.asarray(a), "b": np.asarray(b), "G": np.asarray(g)}
