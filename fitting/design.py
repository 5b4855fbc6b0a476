"""Where to run next: the new (N, D) cells that shrink a scaling-law quantity's interval most.

The question is one number q — the allocation exponent a (N_opt ∝ C^a), b, N_opt, D_opt or
D_opt/N_opt at a compute C*, the compute-optimal loss at C* — and the answer a set of new runs
within a compute budget. The criterion is the expected *posterior* variance of q after the
new runs, from the delta method on the Approach-3 model (a locally c-optimal design for a
non-linear model; Atkinson, Donev & Tobias 2007, "Optimum Experimental Designs, with SAS"):

    Var(q̂ | S) ≈ τ²·gᵀ (M₀ + Σ_{s∈S} j_s j_sᵀ)⁻¹ g

g = ∂q/∂θ, j = ∂ log L̂(N, D)/∂θ the Gauss–Newton rows of the LSE model (θ = a, b, e, α, β;
see :mod:`slscale.fitting.objective`), M₀ the information of the runs already done, and τ²
the noise scale of the Huber M-estimator, E[ψ²]/E[ψ′]² for Gaussian log-loss noise (Huber
1973, "Robust regression: asymptotics, conjectures and Monte Carlo", Ann. Statist. 1(5);
πσ²/2 when δ ≪ σ, as with δ = 1e-3).

Because the model is non-linear the information depends on θ, which is uncertain. Following
the pseudo-Bayesian design reviewed by Chaloner & Verdinelli (1995, "Bayesian experimental
design: a review", Statistical Science 10(3)), the utility is averaged over draws of θ —
here the current fit's bootstrap draws — and it is the expected Shannon information about q
under the local Gaussian approximation, U(S) = E_θ[½·log(Var_∅/Var_S)]. exp(−U) is the
expected ratio of interval widths, so a current bootstrap interval of width w is expected to
shrink to w·exp(−U). Cells are chosen
greedily by utility gained per unit cost (FLOPs or GPU-hours) and, as a guard against a
knapsack failure of that rule, also by utility alone; the better of the two sets is kept,
as in the cost-effective greedy of Leskovec et al. (2007, "Cost-effective outbreak detection
in networks", KDD) — a guarantee there for submodular utilities, a heuristic here.

Why bother: Besiroglu et al. (2024, "Chinchilla Scaling: A replication attempt", arXiv
2404.10102) found Chinchilla's published Approach-3 intervals implausibly narrow for 400-odd
runs; refitted, Epoch's 240 points give a 95 % interval about 0.075 wide for a. Where runs
are placed matters as much as how many there are.

:func:`simulate_widths` checks the cheap criterion by brute force: a parametric bootstrap
(preposterior analysis) that draws outcomes from the current fit, refits with and without
the proposed cells and measures the spread of q̂. A metric law Q = a·C^b is linear in logs,
so :class:`MetricDesign` uses the exact least-squares variance.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any, Self

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import stats

from slscale.errors import ConfigError
from slscale.fitting.objective import FloatArray, LogPoints, predict_log_loss
from slscale.fitting.results import METRIC, PARAMETRIC, FitResult

QUANTITIES = {
    "a": "allocation exponent a (N_opt ∝ C^a)",
    "b": "allocation exponent b (D_opt ∝ C^b)",
    "n_opt": "log N_opt at the target compute",
    "d_opt": "log D_opt at the target compute",
    "tokens_per_param": "log D_opt/N_opt at the target compute",
    "loss": "compute-optimal loss at the target compute",
}
LOG_QUANTITIES = ("n_opt", "d_opt", "tokens_per_param")
"""Quantities handled in natural logs (their intervals are factors)."""
NEEDS_TARGET = (*LOG_QUANTITIES, "loss")


def check_quantity(name: str, target_flops: float | None) -> None:
    """ConfigError for an unknown quantity, or one at C* without a positive C*."""
    if name not in QUANTITIES:
        raise ConfigError(f"quantity {name!r}: choose one of {', '.join(QUANTITIES)}")
    if name in NEEDS_TARGET and not (target_flops and target_flops > 0):
        raise ConfigError(f"quantity {name!r} is taken at a compute C*: give --target-flops")


def quantity_values(name: str, theta: ArrayLike, target_flops: float | None = None) -> FloatArray:
    """q for each row of θ = (a, b, e, α, β) (rows, 5); NaN where α or β ≤ 0."""
    t = np.atleast_2d(np.asarray(theta, np.float64))
    alpha = np.where(t[:, 3] > 0, t[:, 3], np.nan)
    beta = np.where(t[:, 4] > 0, t[:, 4], np.nan)
    a, b = beta / (alpha + beta), alpha / (alpha + beta)
    if name in ("a", "b"):
        return a if name == "a" else b
    log_c6 = math.log(float(target_flops or 0.0) / 6.0)
    log_g = (np.log(alpha) + t[:, 0] - np.log(beta) - t[:, 1]) / (alpha + beta)
    log_n, log_d = log_g + a * log_c6, -log_g + b * log_c6
    if name == "n_opt":
        return log_n
    if name == "d_opt":
        return log_d
    if name == "tokens_per_param":
        return log_d - log_n
    terms = (t[:, 2], t[:, 0] - alpha * log_n, t[:, 1] - beta * log_d)
    return np.exp(terms[0]) + np.exp(terms[1]) + np.exp(terms[2])  # L at (N_opt, D_opt)


def quantity_gradient(name: str, theta: FloatArray, target_flops: float | None) -> FloatArray:
    """∂q/∂θ (rows, 5) by central differences."""
    step = 1e-6 * np.maximum(1.0, np.abs(theta))
    grad = np.empty_like(theta)
    for k in range(5):
        up, down = theta.copy(), theta.copy()
        up[:, k] += step[:, k]
        down[:, k] -= step[:, k]
        diff = quantity_values(name, up, target_flops) - quantity_values(name, down, target_flops)
        grad[:, k] = diff / (2 * step[:, k])
    return grad


def point_rows(theta: FloatArray, log_n: FloatArray, log_d: FloatArray) -> FloatArray:
    """∂ log L̂/∂θ at each point for each θ row: (rows, points, 5) = (p1, p2, p3, −p1·log N,
    −p2·log D), p the softmax weights of the three LSE terms."""
    z = np.stack(
        [
            theta[:, None, 0] - theta[:, None, 3] * log_n,
            theta[:, None, 1] - theta[:, None, 4] * log_d,
            np.broadcast_to(theta[:, None, 2], (theta.shape[0], log_n.size)),
        ],
        axis=-1,
    )
    p = np.exp(z - z.max(axis=-1, keepdims=True))
    p /= p.sum(axis=-1, keepdims=True)
    return np.concatenate([p, -p[..., :1] * log_n[:, None], -p[..., 1:2] * log_d[:, None]], -1)


def huber_scale(residuals: ArrayLike, huber_delta: float | None, n_fitted: int = 5) -> float:
    """τ: the standard deviation that makes τ²·(JᵀJ)⁻¹ the covariance of the M-estimate.

    σ from the median absolute residual (consistent for Gaussian noise, corrected for the
    fitted parameters); τ² = E[ψ²]/E[ψ′]² for Huber's ψ at δ and that σ.
    """
    r = np.asarray(residuals, np.float64)
    dof = max(r.size - n_fitted, 1)
    sigma = 1.4826 * float(np.median(np.abs(r - np.median(r)))) * math.sqrt(r.size / dof)
    if not sigma > 0:
        raise ConfigError("the fit has zero residuals: the noise level cannot be estimated")
    if huber_delta is None:
        return sigma
    k = huber_delta / sigma
    inside = 2 * stats.norm.cdf(k) - 1
    psi2 = sigma**2 * (inside - 2 * k * stats.norm.pdf(k)) + huber_delta**2 * (1 - inside)
    return math.sqrt(psi2) / inside


@dataclasses.dataclass(frozen=True, kw_only=True)
class Selection:
    """Cells chosen by a design, in the order picked."""

    index: NDArray[np.int64]
    """Positions of the chosen cells among the candidates."""
    cost: FloatArray
    """Cost of each chosen cell (FLOPs or GPU-hours, as given)."""
    width_ratio: FloatArray
    """Expected interval width after this and the earlier picks over the current width."""
    delta_width: FloatArray
    """Delta-method interval width at the point estimate after each pick."""
    rule: str
    """'per cost' or 'utility' (whichever greedy rule gave the larger utility)."""

    @property
    def total_cost(self) -> float:
        return float(self.cost.sum())


def greedy_selection(
    information: FloatArray,
    gradient: FloatArray,
    rows: FloatArray,
    cost: FloatArray,
    budget: float,
    *,
    max_runs: int | None = None,
    scale: float = 1.0,
    z: float = 1.96,
) -> Selection:
    """Greedy choice of candidate rows (draws, candidates, p) under a cost budget.

    ``information`` (draws, p, p) and ``gradient`` (draws, p) describe the current fit for
    each draw of θ. Both rules (utility per cost, utility alone) are run; the one reaching
    the larger utility wins (ties: per cost).
    """
    per_cost = _greedy(information, gradient, rows, cost, budget, max_runs, ratio=1)
    alone = _greedy(information, gradient, rows, cost, budget, max_runs, ratio=0)
    (picks, ratios, var0), rule = per_cost, "per cost"
    if alone[1].size and (not ratios.size or alone[1][-1] < ratios[-1]):
        (picks, ratios, var0), rule = alone, "utility"
    return Selection(
        index=np.asarray(picks, np.int64),
        cost=cost[picks],
        width_ratio=ratios,
        delta_width=2 * z * scale * np.sqrt(var0),
        rule=rule,
    )


def _greedy(
    information: FloatArray,
    gradient: FloatArray,
    rows: FloatArray,
    cost: FloatArray,
    budget: float,
    max_runs: int | None,
    *,
    ratio: int,
) -> tuple[list[int], FloatArray, FloatArray]:
    """Picks, width ratio exp(−U) after each pick, and draw 0's variance after each pick."""
    inv = _inverse(information)
    var = np.einsum("kp,kpq,kq->k", gradient, inv, gradient)
    start = var.copy()
    picks: list[int] = []
    utility: list[float] = []
    first: list[float] = []
    left, free = budget, np.ones(cost.size, bool)
    while max_runs is None or len(picks) < max_runs:
        ok = free & (cost <= left)
        if not ok.any():
            break
        pj = np.einsum("kpq,kcq->kcp", inv, rows)
        s = np.einsum("kcp,kcp->kc", rows, pj)
        t = np.einsum("kcp,kp->kc", pj, gradient)
        new = var[:, None] - t * t / (1.0 + s)
        gain = 0.5 * np.mean(np.log(var[:, None] / np.maximum(new, 1e-300 * var[:, None])), 0)
        score = np.where(ok, gain / cost**ratio, -np.inf)
        pick = int(np.argmax(score))
        col = pj[:, pick]
        inv = inv - col[:, :, None] * col[:, None, :] / (1.0 + s[:, pick, None, None])
        var, free[pick], left = new[:, pick], False, left - cost[pick]
        picks.append(pick)
        utility.append(0.5 * float(np.mean(np.log(start / var))))
        first.append(var[0])
    return picks, np.exp(-np.asarray(utility)), np.asarray(first)


class _Design:
    """What both designs share: the current widths and the greedy choice over rows."""

    confidence: float
    information_: FloatArray
    gradient_: FloatArray
    scale_: float

    @property
    def z(self) -> float:
        """Normal quantile of the two-sided interval."""
        return float(stats.norm.ppf(0.5 + self.confidence / 2))

    def _widths(self, draws: FloatArray | None) -> None:
        var = _variance(self.information_[:1], self.gradient_[:1])[0]
        self.delta_width_ = 2 * self.z * self.scale_ * math.sqrt(max(float(var), 0.0))
        self.bootstrap_width_: float | None = None
        if draws is not None and np.isfinite(draws).sum() > 1:
            tail = 50 * (1 - self.confidence)
            with np.errstate(invalid="ignore"):  # draws at ±inf: an unbounded interval
                low, high = np.percentile(draws[~np.isnan(draws)], [tail, 100 - tail])
            width = float(high - low)
            self.bootstrap_width_ = width if math.isfinite(width) else math.inf
        boot = self.bootstrap_width_
        self.width_: float = boot if boot is not None and math.isfinite(boot) else self.delta_width_

    def _select(
        self, rows: FloatArray, cost: ArrayLike, budget: float, max_runs: int | None
    ) -> Selection:
        cost = np.asarray(cost, np.float64)
        if cost.shape != rows.shape[1:2] or not (np.isfinite(cost) & (cost > 0)).all():
            raise ConfigError(f"cost: expected {rows.shape[1]} positive finite values per cell")
        return greedy_selection(
            self.information_,
            self.gradient_,
            rows,
            cost,
            budget,
            max_runs=max_runs,
            scale=self.scale_,
            z=self.z,
        )


class ParametricDesign(_Design):
    """Design for one quantity of an Approach-3 fit (``law == 'parametric_loss'``).

    Learned: ``theta_`` (draws, 5), the point estimate first then bootstrap draws;
    ``information_`` (draws, 5, 5) of the runs done; ``gradient_`` (draws, 5) of q;
    ``scale_`` (τ); ``value_`` (q̂); ``delta_width_``, ``bootstrap_width_`` and ``width_``
    (the bootstrap width when there are draws) of the current interval.
    """

    def __init__(
        self,
        *,
        quantity: str = "a",
        target_flops: float | None = None,
        n_draws: int = 32,
        confidence: float = 0.95,
        random_state: int | np.random.Generator | None = None,
    ) -> None:
        self.quantity = quantity
        """One of :data:`QUANTITIES`."""
        self.target_flops = target_flops
        """C* for quantities taken at a compute (in the fit's FLOP convention)."""
        self.n_draws = n_draws
        """θ draws the utility is averaged over (point estimate + bootstrap draws)."""
        self.confidence = confidence
        """Coverage of the intervals whose widths are reported."""
        self.random_state = random_state
        """Seed or Generator for picking the bootstrap draws."""

    def fit(self, result: FitResult) -> Self:
        """Read the fit: its data, point estimate, bootstrap draws and Huber δ."""
        check_quantity(self.quantity, self.target_flops)
        if result.law != PARAMETRIC:
            raise ConfigError(
                f"fit '{result.label or result.method}' is a {result.law}, not "
                f"an Approach-3 {PARAMETRIC}: plan with an approach3 fit"
            )
        points = _points(result)
        theta_hat = theta_of(result.params)
        resid = predict_log_loss(theta_hat, points.log_params, points.log_tokens)
        self.scale_ = huber_scale(resid - points.log_loss, result.conventions.get("huber_delta"))
        boot = _bootstrap_theta(result)
        self.theta_ = np.vstack([theta_hat, self._pick(boot)])
        self.value_ = float(self._q(theta_hat[None])[0])
        self.information_ = _information(self.theta_, points.log_params, points.log_tokens)
        self.gradient_ = quantity_gradient(self.quantity, self.theta_, self.target_flops)
        self._widths(None if boot is None else self._q(boot))
        return self

    def _q(self, theta: FloatArray) -> FloatArray:
        return quantity_values(self.quantity, theta, self.target_flops)

    def _pick(self, boot: FloatArray | None) -> FloatArray:
        if boot is None or self.n_draws <= 1:
            return np.empty((0, 5))
        usable = boot[np.isfinite(self._q(boot))]
        rng = np.random.default_rng(self.random_state)
        take = min(self.n_draws - 1, usable.shape[0])
        return usable[rng.choice(usable.shape[0], size=take, replace=False)]

    def rows(self, n_params: ArrayLike, tokens: ArrayLike) -> FloatArray:
        """Gauss–Newton rows (draws, cells, 5) of new cells."""
        log_n, log_d = np.log(_positive("n_params", n_params)), np.log(_positive("tokens", tokens))
        return point_rows(self.theta_, log_n, log_d)

    def select(
        self,
        n_params: ArrayLike,
        tokens: ArrayLike,
        cost: ArrayLike,
        budget: float,
        *,
        max_runs: int | None = None,
    ) -> Selection:
        """The cells (from the candidates) that shrink q's interval most within ``budget``."""
        return self._select(self.rows(n_params, tokens), cost, budget, max_runs)

    def width_ratio(self, n_params: ArrayLike, tokens: ArrayLike) -> float:
        """Expected width ratio exp(−U) after adding all the given cells (e.g. a user's plan)."""
        rows = self.rows(n_params, tokens)
        info = self.information_ + np.einsum("kcp,kcq->kpq", rows, rows)
        before = _variance(self.information_, self.gradient_)
        after = _variance(info, self.gradient_, self.information_)
        return float(np.exp(-0.5 * np.mean(np.log(before / after))))


class MetricDesign(_Design):
    """Design for log Q(C*) of a metric law Q = a·C^b (least squares on the best run per
    budget: each new compute-optimal run adds the row (1, log C)). Learned as
    :class:`ParametricDesign`; ``scale_`` is NaN when the fit has no residual degree of
    freedom (two budgets), which leaves width ratios unaffected."""

    def __init__(self, *, target_flops: float, confidence: float = 0.95) -> None:
        self.target_flops = target_flops
        """C* at which the score is wanted."""
        self.confidence = confidence
        """Coverage of the intervals whose widths are reported."""

    def fit(self, result: FitResult) -> Self:
        if result.law != METRIC:
            raise ConfigError(
                f"fit '{result.label or result.method}' is a {result.law}, not a {METRIC}"
            )
        if not (self.target_flops and self.target_flops > 0):
            raise ConfigError("a metric at C* needs --target-flops")
        keep = np.asarray(result.data["fitted"], bool)
        log_c = np.log(np.asarray(result.data["flops"], np.float64)[keep])
        log_q = np.log(np.asarray(result.data["value"], np.float64)[keep])
        self.centre_ = float(log_c.mean())  # centred log C keeps XᵀX well conditioned
        x = np.column_stack([np.ones_like(log_c), log_c - self.centre_])
        self.information_ = (x.T @ x)[None]
        self.gradient_ = np.array([[1.0, math.log(self.target_flops) - self.centre_]])
        log_a, b = math.log(result.params["a"]), result.params["b"]
        self.value_ = log_a + b * math.log(self.target_flops)
        resid = log_q - (log_a + b * log_c)
        dof = log_c.size - 2
        self.scale_ = math.sqrt(float(resid @ resid) / dof) if dof > 0 else math.nan
        draws = result.draws()
        boot = None
        if draws is not None:
            boot = np.log(draws["a"]) + draws["b"] * math.log(self.target_flops)
        self._widths(boot)
        return self

    def select(
        self, flops: ArrayLike, cost: ArrayLike, budget: float, *, max_runs: int | None = None
    ) -> Selection:
        """New budgets (each run at its compute-optimal size) that shrink log Q(C*)'s interval."""
        log_c = np.log(_positive("flops", flops)) - self.centre_
        rows = np.column_stack([np.ones_like(log_c), log_c])[None]
        return self._select(rows, cost, budget, max_runs)


def theta_of(params: Mapping[str, Any]) -> FloatArray:
    """θ = (log A, log B, log E, α, β) from named parameters (one row or many)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        cols = [np.log(params["A"]), np.log(params["B"]), np.log(params["E"])]
    return np.stack([*cols, params["alpha"], params["beta"]], axis=-1).astype(np.float64)


def _points(result: FitResult) -> LogPoints:
    data = result.data
    return LogPoints.from_arrays(data["n_params"], data["tokens"], data["loss"])


def _bootstrap_theta(result: FitResult) -> FloatArray | None:
    draws = result.draws()
    if draws is None:
        return None
    theta = theta_of(draws)
    return theta[np.isfinite(theta).all(axis=1)]


def _information(theta: FloatArray, log_n: FloatArray, log_d: FloatArray) -> FloatArray:
    rows = point_rows(theta, log_n, log_d)
    return np.einsum("kmp,kmq->kpq", rows, rows)


def _inverse(information: FloatArray, reference: FloatArray | None = None) -> FloatArray:
    """Batched inverse with a tiny ridge (1e-10 of the mean diagonal of ``reference``, the
    information before any new cell) for near-singular M₀."""
    p = information.shape[-1]
    ref = information if reference is None else reference
    ridge = 1e-10 * np.trace(ref, axis1=-2, axis2=-1)[..., None, None] / p
    return np.linalg.inv(information + ridge * np.eye(p))


def _variance(
    information: FloatArray, gradient: FloatArray, reference: FloatArray | None = None
) -> FloatArray:
    """gᵀM⁻¹g per draw (unit noise)."""
    inv = _inverse(information, reference)
    return np.einsum("kp,kpq,kq->k", gradient, inv, gradient)


def _positive(name: str, values: ArrayLike) -> FloatArray:
    array = np.atleast_1d(np.asarray(values, np.float64))
    if array.ndim != 1 or not (np.isfinite(array) & (array > 0)).all():
        raise ConfigError(f"{name}: candidate cells need finite positive values, got {values!r}")
    return array
