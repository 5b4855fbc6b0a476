"""Per-budget parabolas for Approach 2 (IsoFLOP profiles) [Hoffmann et al. 2022, §3.2].

At one compute budget, loss against u = log N (or log D) is fitted by least squares with a
parabola L = c0 + c1·u + c2·u²; its vertex u* = −c1/(2·c2) is the budget's optimum. The
vertex is biased when the sampled sizes sit off-centre around the true optimum or span too
little [Czech et al. 2026, "Problems with Chinchilla Approach 2"], so each budget records
where the vertex falls within the sampled range and how wide that range is.

All budgets and all bootstrap resamples are solved at once: a resample is the same least
squares with each point weighted by how often it was drawn (normal equations, 3×3 per row).
"""

from __future__ import annotations

import dataclasses

import numpy as np
from numpy.typing import NDArray

from slscale.fitting.tables import FloatArray


@dataclasses.dataclass(frozen=True)
class Vertex:
    """Parabola vertices of several weighted fits of one budget's points."""

    log_opt: FloatArray
    """Vertex u* = log N_opt (or log D_opt); NaN when the parabola opens downwards."""
    loss_opt: FloatArray
    """Loss at the vertex."""
    curvature: FloatArray
    """c2 (> 0 for a minimum), in loss per (log unit)²."""


def fit_vertices(u: FloatArray, loss: FloatArray, weights: FloatArray | None = None) -> Vertex:
    """Weighted quadratic fits of ``loss`` on ``u``; weights (points,) or (rows, points)."""
    centre = u.mean()
    v = u - centre
    w = np.ones_like(v) if weights is None else np.asarray(weights, np.float64)
    powers = np.stack([v**k for k in range(5)])  # (5, points)
    m = np.moveaxis(np.tensordot(w, powers, axes=([-1], [1])), -1, 0)  # Σ w v^k
    r = np.moveaxis(np.tensordot(w, powers[:3] * loss, axes=([-1], [1])), -1, 0)
    normal = np.stack([np.stack([m[i + j] for j in range(3)], -1) for i in range(3)], -2)
    with np.errstate(all="ignore"):
        det = np.linalg.det(normal)
        ok = np.abs(det) > 1e-12 * np.abs(normal).max(axis=(-1, -2)) ** 3
        safe = np.where(ok[..., None, None], normal, np.eye(3))
        coef = np.linalg.solve(safe, np.moveaxis(r, 0, -1)[..., None])[..., 0]
        c0, c1, c2 = coef[..., 0], coef[..., 1], coef[..., 2]
        minimum = ok & (c2 > 0)
        vertex = np.where(minimum, -c1 / (2 * c2), np.nan)
        loss_opt = np.where(minimum, c0 - c1 * c1 / (4 * c2), np.nan)
    return Vertex(vertex + centre, loss_opt, np.where(ok, c2, np.nan))


def vertex_standard_error(u: FloatArray, loss: FloatArray) -> float:
    """Delta-method standard error of the vertex from the OLS covariance (NaN if < 4 points)."""
    if u.size < 4:
        return float("nan")
    v = u - u.mean()
    design = np.stack([np.ones_like(v), v, v * v], axis=1)
    coef, *_ = np.linalg.lstsq(design, loss, rcond=None)
    resid = loss - design @ coef
    sigma2 = float(resid @ resid) / (u.size - 3)
    cov = sigma2 * np.linalg.pinv(design.T @ design)
    c1, c2 = coef[1], coef[2]
    if c2 <= 0:
        return float("nan")
    grad = np.array([0.0, -1 / (2 * c2), c1 / (2 * c2 * c2)])
    return float(np.sqrt(grad @ cov @ grad))


def sampling_diagnostics(u: FloatArray, log_opt: float) -> dict[str, float]:
    """Where the vertex sits in the sampled range (0 = smallest, 1 = largest) and its width.

    ``span_dex`` is the sampled range in decades (log10 units).
    """
    low, high = float(u.min()), float(u.max())
    position = (log_opt - low) / (high - low) if high > low else float("nan")
    return {"position": position, "span_dex": (high - low) / np.log(10.0)}


def group_rows(labels: NDArray[np.int64]) -> list[NDArray[np.int64]]:
    """Indices of the points of each budget label 0..k-1."""
    return [np.flatnonzero(labels == k) for k in range(int(labels.max()) + 1)]
