"""Input checks and compute-budget grouping shared by every fit.

Every fit takes plain columns (arrays or DataFrame columns). Bad input never turns into a
number: an empty, non-finite or non-positive column raises :class:`ConfigError` naming the
column, the first offending row and what to do.

Compute budgets. IsoFLOP sweeps train several model sizes per compute budget. When the table
has no budget column, budgets are recovered by grouping sorted log10 FLOPs wherever two
neighbours differ by more than ``gap_dex`` (0.05 dex = 12 %); FLOPs read off published
figures are noisy at the few-percent level, and real budgets are spaced by ≥ 0.2 dex
(Hoffmann et al. 2022 used 6e18, 1e19, 3e19, ...).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

from slscale.errors import ConfigError

FloatArray = NDArray[np.float64]

DEFAULT_GAP_DEX = 0.05
"""Neighbouring log10-FLOPs further apart than this start a new budget."""


def as_column(name: str, values: ArrayLike, *, positive: bool = True) -> FloatArray:
    """Return ``values`` as a 1-D float array, checked finite (and > 0 unless told not)."""
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"column '{name}': not numeric ({exc}); give numbers") from None
    if array.ndim != 1 or array.size == 0:
        raise ConfigError(f"column '{name}': expected a non-empty 1-D column, got {array.shape}")
    bad = ~np.isfinite(array) | ((array <= 0) if positive else False)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        need = "finite and > 0" if positive else "finite"
        raise ConfigError(
            f"column '{name}': row {row} is {array[row]!r} ({int(bad.sum())} bad rows); "
            f"every value must be {need} — drop or fix those rows"
        )
    return array


def same_length(**columns: Sequence[float] | FloatArray) -> int:
    """Check that all columns have one length; return it."""
    lengths = {name: len(col) for name, col in columns.items()}
    if len(set(lengths.values())) > 1:
        raise ConfigError(f"columns have different lengths: {lengths}; give one value per row")
    return next(iter(lengths.values()))


def require_points(n_points: int, n_needed: int, what: str) -> None:
    """Raise if fewer than ``n_needed`` points are available for ``what``."""
    if n_points < n_needed:
        raise ConfigError(
            f"{what} needs at least {n_needed} points, got {n_points}; add runs or use a "
            "simpler fit"
        )


def budget_labels(
    flops: FloatArray, budget: ArrayLike | None = None, *, gap_dex: float = DEFAULT_GAP_DEX
) -> tuple[NDArray[np.int64], FloatArray]:
    """Label each point with its compute budget: (labels 0..k-1 by rising compute, budgets).

    With an explicit ``budget`` column its distinct values are the budgets; otherwise budgets
    are groups of ``flops`` split at gaps wider than ``gap_dex`` and each budget's value is
    the geometric mean FLOPs of its group.
    """
    if budget is not None:
        values = as_column("budget", budget)
        budgets, labels = np.unique(values, return_inverse=True)
        return labels.astype(np.int64), budgets
    if gap_dex <= 0:
        raise ConfigError(f"gap_dex = {gap_dex!r}: must be > 0")
    log_flops = np.log10(flops)
    order = np.argsort(log_flops, kind="stable")
    starts = np.concatenate([[0], np.flatnonzero(np.diff(log_flops[order]) > gap_dex) + 1])
    sorted_labels = np.cumsum(np.isin(np.arange(order.size), starts)) - 1
    labels = np.empty(order.size, dtype=np.int64)
    labels[order] = sorted_labels
    centres = np.array([log_flops[labels == k].mean() for k in range(starts.size)])
    return labels, 10.0**centres


def largest_budget_mask(labels: NDArray[np.int64], *, min_points: int = 3) -> NDArray[np.bool_]:
    """Points held out by the leave-largest-budget-out check.

    The largest budget is held out; when it has fewer than ``min_points`` points the next
    largest ones join it until it has, so a sparse top budget (or a grid that is not sampled
    per budget) still gives a test set. At least one budget always stays for training.
    """
    counts = np.bincount(labels)
    first, held = counts.size, 0
    while held < min_points and first > 1:
        first -= 1
        held += int(counts[first])
    if held < min_points:
        raise ConfigError(
            f"leave-largest-budget-out needs ≥ {min_points} points above the smallest budget; "
            f"found budget sizes {counts.tolist()}"
        )
    return labels >= first
