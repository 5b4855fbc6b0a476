"""Leave-largest-budget-out: how well a law fitted on smaller budgets predicts the largest.

Every fit reports this next to its parameters, because a scaling law is used to extrapolate
and the in-sample fit says little about that [Besiroglu et al. 2024; Czech et al. 2026].
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

SCHEME = "leave-largest-budget-out"


def report(
    *,
    quantity: str,
    predicted: ArrayLike,
    observed: ArrayLike,
    n_train: int,
    held_out_flops: ArrayLike,
) -> dict[str, Any]:
    """Errors of ``predicted`` against ``observed`` on the held-out largest budget.

    ``mean_abs_rel_error``/``max_abs_rel_error`` are |pred/obs − 1|; ``rmse_log10`` is the
    root-mean-square error in decades (dex).
    """
    pred = np.asarray(predicted, np.float64).ravel()
    obs = np.asarray(observed, np.float64).ravel()
    flops = np.asarray(held_out_flops, np.float64).ravel()
    rel = np.abs(pred / obs - 1.0)
    return {
        "scheme": SCHEME,
        "quantity": quantity,
        "n_train": int(n_train),
        "n_test": int(obs.size),
        "held_out_flops": [float(flops.min()), float(flops.max())],
        "mean_abs_rel_error": float(rel.mean()),
        "max_abs_rel_error": float(rel.max()),
        "rmse_log10": float(np.sqrt(np.mean(np.log10(pred / obs) ** 2))),
        "predicted": pred.tolist(),
        "observed": obs.tolist(),
    }


def skipped(reason: str) -> dict[str, Any]:
    """The check could not run (e.g. only one budget); the reason is kept with the fit."""
    return {"scheme": SCHEME, "skipped": reason}


def summary(extrapolation: Mapping[str, Any] | None) -> str:
    """One line for tables and logs."""
    if not extrapolation:
        return "not run"
    if "skipped" in extrapolation:
        return f"skipped: {extrapolation['skipped']}"
    mean, worst = extrapolation["mean_abs_rel_error"], extrapolation["max_abs_rel_error"]
    return (
        f"{extrapolation['quantity']}: mean |error| {100 * mean:.2f}%, max {100 * worst:.2f}% "
        f"on {extrapolation['n_test']} held-out point(s) at C ≈ "
        f"{extrapolation['held_out_flops'][1]:.3g}"
    )
