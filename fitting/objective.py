"""The Approach-3 objective, evaluated for many parameter vectors at once.

The law L(N, D) = E + A/N^α + B/D^β is fitted in log space [Hoffmann et al. 2022, eq. 10]:

    log L ≈ LSE(a − α·log N, b − β·log D, e),   θ = (a, b, e, α, β), A = e^a, B = e^b, E = e^e

    objective(θ) = Σ_i w_i · Huber_δ(LSE_i(θ) − log L_i)

summed over points — a mean makes L-BFGS stop early [Besiroglu et al. 2024, v2] — with
optional point weights w (bootstrap counts). Each row of a batch has its own θ (and may have
its own weights); all rows share the points, so one call is a handful of numpy passes over a
(rows × points) array instead of a Python loop.

Derivatives. With softmax weights p_k of the three LSE terms, J = ∂LSE/∂θ =
(p1, p2, p3, −p1·log N, −p2·log D). The terms are linear in θ, so the Hessian of the LSE is
the weighted covariance S − J·Jᵀ with S = Σ_k p_k u_k u_kᵀ (u_k the term's coefficient
vector). With ψ = Huber′ (a clip to ±δ):

    gradient = Σ w ψ J,     Hessian = Σ w [ρ J Jᵀ + ψ (S − J Jᵀ)]

``curvature="exact"``: ρ = Huber″ = 1 inside |r| ≤ δ, else 0 (Newton's method).
``curvature="majorizer"``: ρ = ψ(r)/r, the curvature of the quadratic that touches Huber at
r from above (the IRLS weight of Huber's M-estimator); it stays positive where Huber is
linear, which makes far-from-optimum steps sensible.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]
Curvature = Literal["exact", "majorizer"]

THETA_NAMES = ("a", "b", "e", "alpha", "beta")
"""Order of the fitted vector θ (log-space prefactors, then exponents)."""


@dataclasses.dataclass(frozen=True)
class LogPoints:
    """The fitted points in log space."""

    log_params: FloatArray
    """log N per point."""
    log_tokens: FloatArray
    """log D per point."""
    log_loss: FloatArray
    """log L per point."""

    @classmethod
    def from_arrays(cls, n_params: ArrayLike, tokens: ArrayLike, loss: ArrayLike) -> LogPoints:
        return cls(
            np.log(np.asarray(n_params, np.float64)),
            np.log(np.asarray(tokens, np.float64)),
            np.log(np.asarray(loss, np.float64)),
        )

    def __len__(self) -> int:
        return int(self.log_loss.size)


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """Objective, gradient and (optionally) Hessian for each row of a batch."""

    value: FloatArray
    """(rows,) objective values."""
    gradient: FloatArray
    """(rows, 5) gradients in θ order."""
    hessian: FloatArray | None
    """(rows, 5, 5) exact or majorizer Hessians, or None when not asked for."""


def predict_log_loss(
    theta: ArrayLike, log_params: FloatArray, log_tokens: FloatArray
) -> FloatArray:
    """LSE(a − α log N, b − β log D, e) for θ of shape (5,) or (rows, 5)."""
    t = np.atleast_2d(np.asarray(theta, np.float64))
    z1 = t[:, 0:1] - t[:, 3:4] * log_params
    z2 = t[:, 1:2] - t[:, 4:5] * log_tokens
    z3 = np.broadcast_to(t[:, 2:3], z1.shape)
    out = np.logaddexp(np.logaddexp(z1, z2), z3)
    return out[0] if np.ndim(theta) == 1 else out


def evaluate(
    theta: FloatArray,
    points: LogPoints,
    huber_delta: float,
    weights: FloatArray | None = None,
    curvature: Curvature | None = "exact",
) -> Evaluation:
    """Evaluate the summed Huber objective for each row of ``theta`` (rows, 5).

    ``weights`` is None, (points,) or (rows, points). ``curvature=None`` skips the Hessian.
    """
    x, y = points.log_params, points.log_tokens
    a, b, e, alpha, beta = (theta[:, k : k + 1] for k in range(5))
    w1 = a - alpha * x
    w2 = b - beta * y
    top = np.maximum(np.maximum(w1, w2), e)
    w1 -= top
    w2 -= top
    np.exp(w1, out=w1)
    np.exp(w2, out=w2)
    w3 = np.exp(e - top)
    total = w1 + w2
    total += w3
    resid = np.log(total)
    resid += top
    resid -= points.log_loss
    np.reciprocal(total, out=total)
    w1 *= total
    w2 *= total
    w3 *= total
    psi = np.clip(resid, -huber_delta, huber_delta)
    huber = psi * (resid - 0.5 * psi)  # ½r² inside |r| ≤ δ, δ(|r| − δ/2) outside
    rho = _curvature(resid, psi, huber_delta, curvature)
    if weights is not None:
        huber *= weights
        psi *= weights
        if rho is not None:
            rho *= weights
    first = _moments(np.stack([psi * w1, psi * w2, psi * w3]), x, y)
    gradient = np.stack(
        [first[0, :, 0], first[1, :, 0], first[2, :, 0], -first[0, :, 1], -first[1, :, 2]], axis=1
    )
    hessian = None if rho is None else _hessian(rho - psi, w1, w2, w3, first, x, y)
    return Evaluation(huber.sum(axis=1), gradient, hessian)


def _curvature(
    resid: FloatArray, psi: FloatArray, delta: float, curvature: Curvature | None
) -> FloatArray | None:
    if curvature is None:
        return None
    inside = np.abs(resid) <= delta
    if curvature == "exact":
        return inside.astype(np.float64)
    return np.divide(psi, resid, out=np.ones_like(resid), where=~inside)


def _moments(stacked: FloatArray, x: FloatArray, y: FloatArray) -> FloatArray:
    """Σ_i v_i·m(x_i, y_i) for m in (1, x, y, x², xy, y²): one BLAS product for all rows."""
    basis = np.stack([np.ones_like(x), x, y, x * x, x * y, y * y], axis=1)
    flat = stacked.reshape(-1, stacked.shape[-1]) @ basis
    return flat.reshape(*stacked.shape[:-1], 6)


def _hessian(
    q: FloatArray,
    w1: FloatArray,
    w2: FloatArray,
    w3: FloatArray,
    first: FloatArray,
    x: FloatArray,
    y: FloatArray,
) -> FloatArray:
    """Σ (ρ − ψ) J Jᵀ + ψ S, written out entry by entry from J = (p1, p2, p3, −p1x, −p2y).

    ``first`` holds the moments of ψ·p_k (the gradient's sums), which give the ψ·S part.
    """
    qw1 = q * w1
    s = _moments(
        np.stack([qw1 * w1, qw1 * w2, qw1 * w3, q * w2 * w2, q * w2 * w3, q * w3 * w3]), x, y
    )
    one, mx, my, mxx, mxy, myy = range(6)
    p11, p12, p13, p22, p23, p33 = range(6)
    hess = np.empty((q.shape[0], 5, 5))
    entries = {
        (0, 0): s[p11, :, one] + first[0, :, one],
        (0, 1): s[p12, :, one],
        (0, 2): s[p13, :, one],
        (0, 3): -s[p11, :, mx] - first[0, :, mx],
        (0, 4): -s[p12, :, my],
        (1, 1): s[p22, :, one] + first[1, :, one],
        (1, 2): s[p23, :, one],
        (1, 3): -s[p12, :, mx],
        (1, 4): -s[p22, :, my] - first[1, :, my],
        (2, 2): s[p33, :, one] + first[2, :, one],
        (2, 3): -s[p13, :, mx],
        (2, 4): -s[p23, :, my],
        (3, 3): s[p11, :, mxx] + first[0, :, mxx],
        (3, 4): s[p12, :, mxy],
        (4, 4): s[p22, :, myy] + first[1, :, myy],
    }
    for (i, j), value in entries.items():
        hess[:, i, j] = hess[:, j, i] = value
    return hess
