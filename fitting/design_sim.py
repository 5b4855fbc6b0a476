"""Preposterior simulation: how wide would q's interval be with these extra runs?

The brute-force check of :mod:`slscale.fitting.design`'s delta-method criterion: a parametric
bootstrap (Efron & Tibshirani 1993, "An Introduction to the Bootstrap") that treats the
current fit as the truth, draws log-loss outcomes for the runs done and for the proposed cells
with Gaussian noise of the fit's robust residual scale, refits the Approach-3 law to each
replica with and without the proposed cells (same noise on the shared runs: common random
numbers), and measures the spread of q̂. In Bayesian-design words it is the preposterior
distribution of the estimate (Chaloner & Verdinelli 1995) under a point prior.

Each replica is refitted from the point estimate and a few bootstrap draws (a short IRLS stage,
then exact Newton; see :mod:`slscale.fitting.optimise`), not from the 4,500-point grid: a
replica's optimum lies near the truth it was drawn from, as a bootstrap resample's does (the
argument of :mod:`slscale.fitting.bootstrap`). Sixteen replicas are refitted in one batch.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from numpy.typing import ArrayLike

from slscale.errors import ConfigError
from slscale.fitting.design import check_quantity, huber_scale, quantity_values, theta_of
from slscale.fitting.objective import FloatArray, LogPoints, predict_log_loss
from slscale.fitting.optimise import damped_newton
from slscale.fitting.results import PARAMETRIC, FitResult
from slscale.fitting.threads import single_threaded_blas

IRLS_STEPS = 12
"""Majorizer (IRLS) steps from every start before the exact-Newton polish."""
CHUNK = 16
"""Replicas refitted together in one batch."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class SimulatedWidths:
    """Percentile widths of q̂ over simulated replicas, without and with the proposed cells."""

    before: float
    """Width from the runs done."""
    after: float
    """Width with the proposed cells added."""
    replicas: int
    """Replicas whose refits gave a finite q̂ in both cases."""

    @property
    def ratio(self) -> float:
        return self.after / self.before


def simulate_widths(
    result: FitResult,
    quantity: str,
    n_params: ArrayLike,
    tokens: ArrayLike,
    *,
    target_flops: float | None = None,
    replicas: int = 200,
    confidence: float = 0.95,
    n_starts: int = 4,
    random_state: int | np.random.Generator | None = None,
) -> SimulatedWidths:
    """Widths of q̂'s interval over ``replicas`` simulated studies, before and after adding
    cells (``n_params``, ``tokens``)."""
    check_quantity(quantity, target_flops)
    if result.law != PARAMETRIC:
        raise ConfigError(f"simulating needs an Approach-3 fit, got a {result.law}")
    if replicas < 10:
        raise ConfigError(f"replicas = {replicas!r}: use at least 10")
    data = result.data
    old = LogPoints.from_arrays(data["n_params"], data["tokens"], data["loss"])
    new_n = np.log(np.atleast_1d(np.asarray(n_params, np.float64)))
    new_d = np.log(np.atleast_1d(np.asarray(tokens, np.float64)))
    theta = theta_of(result.params)
    mean_old = predict_log_loss(theta, old.log_params, old.log_tokens)
    mean_new = predict_log_loss(theta, new_n, new_d)
    sigma = huber_scale(mean_old - old.log_loss, None)
    delta = float(result.conventions.get("huber_delta", 1e-3))
    starts = _starts(result, theta, n_starts, np.random.default_rng(random_state))
    rng = np.random.default_rng(random_state)
    y_old = mean_old + rng.normal(0.0, sigma, (replicas, mean_old.size))
    y_new = mean_new + rng.normal(0.0, sigma, (replicas, mean_new.size))
    with single_threaded_blas():
        before = _refit(old.log_params, old.log_tokens, y_old, delta, starts)
        after = _refit(
            np.concatenate([old.log_params, new_n]),
            np.concatenate([old.log_tokens, new_d]),
            np.hstack([y_old, y_new]),
            delta,
            starts,
        )
    q = np.column_stack([quantity_values(quantity, t, target_flops) for t in (before, after)])
    ok = np.isfinite(q).all(axis=1)
    tail = 50 * (1 - confidence)
    low, high = np.percentile(q[ok], [tail, 100 - tail], axis=0)
    width = high - low
    return SimulatedWidths(before=float(width[0]), after=float(width[1]), replicas=int(ok.sum()))


def _starts(
    result: FitResult, theta: FloatArray, count: int, rng: np.random.Generator
) -> FloatArray:
    draws = result.draws()
    if draws is None or count <= 1:
        return theta[None]
    boot = theta_of(draws)
    boot = boot[np.isfinite(boot).all(axis=1)]
    picked = boot[rng.choice(boot.shape[0], size=min(count - 1, boot.shape[0]), replace=False)]
    return np.vstack([theta, picked])


def _refit(
    log_n: FloatArray, log_d: FloatArray, y: FloatArray, delta: float, starts: FloatArray
) -> FloatArray:
    """Best θ for each row of simulated log losses ``y`` (replicas, points).

    Replicas are fitted CHUNK at a time in one batch: their points are laid side by side and
    each row weights only its own replica's block (the objective sums over points, so a zero
    weight removes a point). A few IRLS steps from every start, then exact Newton to a 1e-10
    relative objective change (q̂ is then exact to far below its spread).
    """
    out = np.empty((y.shape[0], 5))
    k, m = starts.shape[0], log_n.size
    for lo in range(0, y.shape[0], CHUNK):
        block = y[lo : lo + CHUNK]
        c = block.shape[0]
        points = LogPoints(np.tile(log_n, c), np.tile(log_d, c), block.ravel())
        weights = np.repeat(np.kron(np.eye(c), np.ones(m)), k, axis=0)
        irls = damped_newton(
            np.tile(starts, (c, 1)),
            points,
            delta,
            weights=weights,
            curvature="majorizer",
            max_iter=IRLS_STEPS,
        )
        final = damped_newton(
            irls.theta,
            points,
            delta,
            weights=weights,
            max_iter=200,
            rtol=1e-10,
            damping=irls.damping,
        )
        value = np.where(np.isfinite(final.value), final.value, np.inf).reshape(c, k)
        out[lo : lo + c] = final.theta.reshape(c, k, 5)[np.arange(c), np.argmin(value, axis=1)]
    return out
