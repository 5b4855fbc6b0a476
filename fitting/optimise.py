"""Minimising the Approach-3 objective from many starts at once.

``damped_newton`` runs Levenberg–Marquardt-damped Newton steps on every row of a batch in
lock-step (numpy, no Python loop over rows); rows that have converged drop out of the batch.
``multistart`` uses it with successive halving: all starts take a few majorizer (IRLS-Newton)
steps, the best quarter carry on, and so on; the best few are then polished with exact-Newton
steps to machine precision. On Epoch's 240 Chinchilla points this reaches the optimum of the
straightforward loop (scipy L-BFGS-B from each of Hoffmann's 4,500 starts) in well under a
second instead of tens of seconds (see benchmarks/bench_fitting.py).

``lbfgs_multistart`` is that straightforward loop, kept as the reference the fast path is
checked against.
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import scipy.optimize

from slscale.fitting.objective import Curvature, FloatArray, LogPoints, evaluate
from slscale.fitting.threads import single_threaded_blas

DAMPING_RANGE = (1e-12, 1e12)
"""Bounds of the Marquardt damping factor λ (relative to the Hessian's diagonal)."""

DEFAULT_SCHEDULE: tuple[tuple[int, float], ...] = ((6, 0.25), (6, 0.25), (10, 64))
"""Successive halving: (majorizer iterations, rows kept: a fraction or a count) per stage."""


def hoffmann_grid() -> FloatArray:
    """The 4,500 starts of Hoffmann et al. (2022, App. D.2) as rows of θ = (a, b, e, α, β).

    α, β ∈ {0, 0.5, …, 2}; e ∈ {−1, −0.5, …, 1}; a, b ∈ {0, 5, …, 25}.
    """
    prefactors = np.arange(0.0, 26.0, 5.0)
    exponents = np.arange(0.0, 2.01, 0.5)
    e_values = np.arange(-1.0, 1.01, 0.5)
    grid = itertools.product(prefactors, prefactors, e_values, exponents, exponents)
    return np.array(list(grid), dtype=np.float64)


@dataclasses.dataclass(frozen=True)
class NewtonResult:
    """Final state of a batch of damped-Newton runs."""

    theta: FloatArray
    """(rows, 5) final parameters."""
    value: FloatArray
    """(rows,) final objective values."""
    converged: np.ndarray
    """(rows,) whether each row met the stopping rule."""
    damping: FloatArray
    """(rows,) final damping factors (to continue a run)."""


def damped_newton(
    theta0: FloatArray,
    points: LogPoints,
    huber_delta: float,
    *,
    weights: FloatArray | None = None,
    curvature: Curvature = "exact",
    max_iter: int = 200,
    rtol: float = 1e-14,
    patience: int = 3,
    damping: FloatArray | None = None,
) -> NewtonResult:
    """Levenberg–Marquardt-damped Newton steps for every row of ``theta0`` (rows, 5).

    A step solves (H + λ·diag|H|) s = −g; it is kept if the objective falls (then λ /= 3),
    otherwise λ *= 4. A row stops once ``patience`` kept steps in a row lowered the objective
    by less than ``rtol`` relative, or its step no longer changes θ (λ at its bound).
    """
    theta = np.array(theta0, dtype=np.float64)
    rows = theta.shape[0]
    lam = np.full(rows, 1e-3) if damping is None else np.array(damping, dtype=np.float64)
    ev = evaluate(theta, points, huber_delta, weights, curvature)
    value, grad, hess = ev.value, ev.gradient, ev.hessian
    assert hess is not None
    calm = np.zeros(rows, dtype=np.int64)
    done = ~np.isfinite(value)
    for _ in range(max_iter):
        active = np.flatnonzero(~done)
        if active.size == 0:
            break
        step = _step(grad[active], hess[active], lam[active])
        trial = theta[active] + step
        row_weights = weights[active] if weights is not None and weights.ndim == 2 else weights
        ev = evaluate(trial, points, huber_delta, row_weights, curvature)
        old = value[active]
        better = ev.value < old
        kept = active[better]
        theta[kept], value[kept] = trial[better], ev.value[better]
        grad[kept] = ev.gradient[better]
        hess[kept] = ev.hessian[better]  # type: ignore[index]
        lam[active] = np.clip(np.where(better, lam[active] / 3, lam[active] * 4), *DAMPING_RANGE)
        small = better & (old - ev.value <= rtol * np.abs(ev.value))
        calm[active] = np.where(small, calm[active] + 1, np.where(better, 0, calm[active]))
        frozen = np.all(np.abs(step) <= 1e-15 * (1.0 + np.abs(theta[active])), axis=1)
        done[active] = (calm[active] >= patience) | frozen
    return NewtonResult(theta, value, done & np.isfinite(value), lam)


def _step(grad: FloatArray, hess: FloatArray, lam: FloatArray) -> FloatArray:
    """Solve the damped Newton systems; non-finite steps become zero (and are rejected)."""
    diag = np.abs(np.diagonal(hess, axis1=1, axis2=2))
    floor = 1e-12 * diag.max(axis=1, keepdims=True) + 1e-300
    system = hess + np.eye(5) * (lam[:, None] * np.maximum(diag, floor))[:, None, :]
    with np.errstate(all="ignore"):
        try:
            step = -np.linalg.solve(system, grad[..., None])[..., 0]
        except np.linalg.LinAlgError:
            step = -np.matmul(np.linalg.pinv(system), grad[..., None])[..., 0]
    return np.nan_to_num(step, nan=0.0, posinf=0.0, neginf=0.0)


@dataclasses.dataclass(frozen=True)
class MultistartResult:
    """The best of many local optimisations of the Approach-3 objective."""

    theta: FloatArray
    """(5,) best θ found."""
    value: float
    """Objective at ``theta``."""
    candidates: FloatArray
    """(k, 5) the optimised survivors, best first."""
    candidate_values: FloatArray
    """(k,) their objective values."""
    converged: bool
    """Whether the best row met the stopping rule."""
    n_starts: int
    """How many starting points were used."""


def multistart(
    points: LogPoints,
    huber_delta: float,
    starts: FloatArray,
    *,
    weights: FloatArray | None = None,
    schedule: tuple[tuple[int, float], ...] = DEFAULT_SCHEDULE,
    max_polish_iter: int = 500,
) -> MultistartResult:
    """Minimise from every row of ``starts`` with successive halving, then polish the best.

    ``weights`` (points,) applies to every start (a bootstrap resample). Each stage runs a
    few majorizer steps on the surviving rows and keeps the best ``keep`` of them (a fraction
    of the rows, or a count); the survivors of the last stage are run with exact-Newton steps
    until they converge.
    """
    theta, damping = np.array(starts, dtype=np.float64), None
    for iterations, keep in schedule:
        state = damped_newton(
            theta,
            points,
            huber_delta,
            weights=weights,
            curvature="majorizer",
            max_iter=iterations,
            damping=damping,
        )
        count = int(np.ceil(keep * theta.shape[0])) if keep <= 1 else int(keep)
        order = np.argsort(state.value, kind="stable")[: max(count, 1)]
        theta, damping = state.theta[order], state.damping[order]
    final = damped_newton(
        theta,
        points,
        huber_delta,
        weights=weights,
        curvature="exact",
        max_iter=max_polish_iter,
        damping=damping,
    )
    order = np.argsort(final.value, kind="stable")
    best = order[0]
    return MultistartResult(
        theta=final.theta[best],
        value=float(final.value[best]),
        candidates=final.theta[order],
        candidate_values=final.value[order],
        converged=bool(final.converged[best]),
        n_starts=int(starts.shape[0]),
    )


def lbfgs_multistart(
    points: LogPoints,
    huber_delta: float,
    starts: FloatArray,
    *,
    weights: FloatArray | None = None,
    analytic_gradient: bool = True,
    ftol: float = 1e-15,
    gtol: float = 1e-12,
    max_iter: int = 10_000,
) -> MultistartResult:
    """The straightforward loop: scipy L-BFGS-B from every start, one after the other.

    With ``analytic_gradient=False`` the gradient is by finite differences, as in the
    published notebooks (Besiroglu et al. 2024).
    """

    def value_and_gradient(theta: FloatArray) -> tuple[float, FloatArray]:
        ev = evaluate(theta[None, :], points, huber_delta, weights, curvature=None)
        return float(ev.value[0]), ev.gradient[0]

    def value_only(theta: FloatArray) -> float:
        return value_and_gradient(theta)[0]

    options = {"ftol": ftol, "gtol": gtol, "maxiter": max_iter, "maxfun": 2 * max_iter}
    with single_threaded_blas():
        results = [
            scipy.optimize.minimize(
                value_and_gradient if analytic_gradient else value_only,
                start,
                jac=analytic_gradient,
                method="L-BFGS-B",
                options=options,
            )
            for start in np.asarray(starts, dtype=np.float64)
        ]
    values = np.array([r.fun for r in results])
    order = np.argsort(values, kind="stable")
    return MultistartResult(
        theta=np.asarray(results[order[0]].x),
        value=float(values[order[0]]),
        candidates=np.array([results[i].x for i in order]),
        candidate_values=values[order],
        converged=bool(results[order[0]].success),
        n_starts=len(results),
    )
