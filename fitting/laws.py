"""Closed-form scaling-law formulas (pure functions, vectorised over parameter draws).

Parametric loss [Hoffmann et al. 2022, eq. 2]:  L(N, D) = E + A/N^α + B/D^β.
Compute-optimal allocation under C = 6ND [Hoffmann et al. 2022, eq. 4 and App. D.2]:

    N_opt(C) = G·(C/6)^a,  D_opt(C) = G⁻¹·(C/6)^b,
    G = (αA / (βB))^(1/(α+β)),  a = β/(α+β),  b = α/(α+β).

Along that frontier both power terms fall with the same exponent γ = αβ/(α+β):
L_opt(C) = E + K·(C/6)^(−γ) with K = A·G^(−α) + B·G^β, which inverts in closed form.

Metric power law [SIMS Fig. 1; Cuervo & Marxer 2024]:  Q(C) = a·C^b.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from slscale.compute import FLOPS_PER_PARAM_TOKEN
from slscale.errors import ConfigError

FloatArray = NDArray[np.float64]
Scalar = float | FloatArray


def parametric_loss(
    n_params: ArrayLike,
    tokens: ArrayLike,
    *,
    E: Scalar,
    A: Scalar,
    B: Scalar,
    alpha: Scalar,
    beta: Scalar,
) -> FloatArray:
    """L(N, D) = E + A/N^α + B/D^β.

    Over bootstrap draws, one that drifted off (A or B overflowed to inf, N^α beyond the
    float range) gives inf or NaN here rather than a numpy warning; callers that summarise
    draws leave the non-finite ones out and say how many."""
    n, d = np.asarray(n_params, np.float64), np.asarray(tokens, np.float64)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        return np.asarray(E + A / n**alpha + B / d**beta)


def allocation_exponents(alpha: Scalar, beta: Scalar) -> tuple[Scalar, Scalar]:
    """(a, b) = (β/(α+β), α/(α+β)): N_opt ∝ C^a, D_opt ∝ C^b."""
    return beta / (alpha + beta), alpha / (alpha + beta)


def allocation_g(*, A: Scalar, B: Scalar, alpha: Scalar, beta: Scalar) -> Scalar:
    """G = (αA/(βB))^(1/(α+β)); NaN where it is undefined (e.g. a fit with α < 0 makes the
    base negative, which Python's power would turn into a complex number)."""
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        base = np.asarray(alpha * A / (beta * B), dtype=np.float64)
        g = np.power(base, 1.0 / np.asarray(alpha + beta, dtype=np.float64))
    return g if g.ndim else float(g)


def optimal_allocation(
    flops: ArrayLike, *, A: Scalar, B: Scalar, alpha: Scalar, beta: Scalar
) -> tuple[FloatArray, FloatArray]:
    """(N_opt, D_opt) at compute C: G·(C/6)^a and G⁻¹·(C/6)^b."""
    c6 = np.asarray(flops, np.float64) / FLOPS_PER_PARAM_TOKEN  # N·D
    g = allocation_g(A=A, B=B, alpha=alpha, beta=beta)
    a, b = allocation_exponents(alpha, beta)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # drifted draws: inf/NaN
        return np.asarray(g * c6**a), np.asarray(c6**b / g)


def optimal_loss(
    flops: ArrayLike, *, E: Scalar, A: Scalar, B: Scalar, alpha: Scalar, beta: Scalar
) -> FloatArray:
    """L at the compute-optimal (N_opt, D_opt) for compute C."""
    n_opt, d_opt = optimal_allocation(flops, A=A, B=B, alpha=alpha, beta=beta)
    return parametric_loss(n_opt, d_opt, E=E, A=A, B=B, alpha=alpha, beta=beta)


def flops_for_loss(
    target_loss: float, *, E: Scalar, A: Scalar, B: Scalar, alpha: Scalar, beta: Scalar
) -> FloatArray:
    """Compute C at which the compute-optimal loss reaches ``target_loss`` (inf if ≤ E)."""
    g = allocation_g(A=A, B=B, alpha=alpha, beta=beta)
    gamma = alpha * beta / (alpha + beta)
    k = A * g ** (-alpha) + B * g**beta
    gap = np.asarray(target_loss - E, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        c6 = np.where(gap > 0, (k / np.where(gap > 0, gap, 1.0)) ** (1.0 / gamma), np.inf)
    return np.asarray(FLOPS_PER_PARAM_TOKEN * c6)


def metric_law(flops: ArrayLike, *, a: Scalar, b: Scalar) -> FloatArray:
    """Q(C) = a·C^b."""
    return np.asarray(a * np.asarray(flops, np.float64) ** b)


def flops_for_metric(target: float, *, a: Scalar, b: Scalar) -> FloatArray:
    """Compute C at which Q(C) = a·C^b reaches ``target``: (target/a)^(1/b)."""
    if target <= 0:
        raise ConfigError(f"target = {target!r}: a metric target must be > 0")
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return np.asarray((target / np.asarray(a, np.float64)) ** (1.0 / np.asarray(b)))


def margin_law(flops: ArrayLike, *, m: Scalar, s: Scalar) -> FloatArray:
    """Margin(C) = m + s·log10(C / 1e12): s is the gain per decade of compute, m the margin
    at 1e12 FLOPs."""
    return np.asarray(m + s * (np.log10(np.asarray(flops, np.float64)) - MARGIN_LOG10_C0))


MARGIN_LOG10_C0 = 12.0
"""log10 of the compute at which a margin law's intercept m is read (1e12 FLOPs)."""


def flops_for_margin(target: float, *, m: Scalar, s: Scalar) -> FloatArray:
    """Compute C at which m + s·log10(C/1e12) equals ``target``: 1e12·10^((target − m)/s)
    (inf where s = 0)."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        decades = (target - np.asarray(m, np.float64)) / np.asarray(s, np.float64)
        return np.asarray(10.0 ** (MARGIN_LOG10_C0 + decades))


def power_law(flops: ArrayLike, *, coef: Scalar, exponent: Scalar) -> FloatArray:
    """k·C^e (used for N_opt(C) and D_opt(C) of Approaches 1 and 2)."""
    return np.asarray(coef * np.asarray(flops, np.float64) ** exponent)
