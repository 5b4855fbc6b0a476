"""Log-log least squares and bootstrap helpers shared by Approaches 1, 2 and metric laws.

A power law y = k·x^e is a straight line in logs. A bootstrap resample drawn with
replacement is the same least-squares problem with each point weighted by how often it was
drawn, so all resamples solve at once in closed form from weighted sums.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from numpy.typing import ArrayLike, NDArray

from slscale.errors import ConfigError

FloatArray = NDArray[np.float64]


def loglog_fit(
    x: ArrayLike, y: ArrayLike, weights: ArrayLike | None = None
) -> tuple[FloatArray, FloatArray]:
    """Weighted least squares of log y on log x: (log k, e), one pair per weight row.

    ``weights`` is None, (points,) or (rows, points). A row whose weighted points do not
    span two distinct x values gives NaN.
    """
    return line_fit(np.log(np.asarray(x, np.float64)), np.log(np.asarray(y, np.float64)), weights)


def line_fit(
    x: ArrayLike, y: ArrayLike, weights: ArrayLike | None = None
) -> tuple[FloatArray, FloatArray]:
    """Weighted least squares of y on x: (intercept, slope), one pair per weight row (as
    :func:`loglog_fit`, without the logarithms)."""
    lx, ly = np.asarray(x, np.float64), np.asarray(y, np.float64)
    w = np.ones_like(lx) if weights is None else np.asarray(weights, np.float64)
    total = w.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mx = (w * lx).sum(axis=-1) / total
        my = (w * ly).sum(axis=-1) / total
        dx = lx - np.expand_dims(mx, -1)
        sxx = (w * dx * dx).sum(axis=-1)
        sxy = (w * dx * (ly - np.expand_dims(my, -1))).sum(axis=-1)
        slope = np.where(sxx > 1e-12 * np.maximum(total, 1), sxy / sxx, np.nan)
    return my - slope * mx, slope


def resample_counts(rng: np.random.Generator, n: int, size: int) -> FloatArray:
    """(size, n) multiplicities of n items drawn n times with replacement."""
    return rng.multinomial(n, np.full(n, 1.0 / n), size=size).astype(np.float64)


def stratified_counts(rng: np.random.Generator, groups: NDArray[np.int64], size: int) -> FloatArray:
    """(size, points) multiplicities from resampling with replacement within each group."""
    counts = np.zeros((size, groups.size))
    for g in np.unique(groups):
        members = np.flatnonzero(groups == g)
        counts[:, members] = resample_counts(rng, members.size, size)
    return counts


def percentile_ci(
    draws: Mapping[str, ArrayLike], confidence: float
) -> dict[str, tuple[float, float]]:
    """Percentile intervals of each named set of draws (NaN draws ignored)."""
    if not 0 < confidence < 1:
        raise ConfigError(f"confidence = {confidence!r}: must be in (0, 1)")
    tail = 50.0 * (1.0 - confidence)
    out: dict[str, tuple[float, float]] = {}
    for name, values in draws.items():
        v = np.asarray(values, np.float64)
        v = v[~np.isnan(v)]
        if v.size == 0:
            out[name] = (np.nan, np.nan)
            continue
        low, high = np.percentile(v, [tail, 100.0 - tail])
        out[name] = (float(low), float(high))
    return out


def check_bootstrap(n_bootstrap: int) -> int:
    """Validate a resample count (0 turns the bootstrap off)."""
    if isinstance(n_bootstrap, bool) or not isinstance(n_bootstrap, int | np.integer):
        raise ConfigError(f"n_bootstrap = {n_bootstrap!r}: must be an integer ≥ 0")
    if n_bootstrap < 0:
        raise ConfigError(f"n_bootstrap = {n_bootstrap!r}: must be ≥ 0 (0 skips the bootstrap)")
    return int(n_bootstrap)
