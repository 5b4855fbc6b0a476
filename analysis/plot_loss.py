"""Loss figures: IsoFLOP profiles, training curves with their envelope, predicted vs observed.

IsoFLOP profiles follow Chinchilla Fig. 3 / SIMS Fig. 4 (loss against N per budget, each
budget's parabola and its minimum); training curves Chinchilla Fig. 2 (every run's loss
against FLOPs, coloured by N, with the Approach-1 minimum-loss envelope). Everything drawn
is read from FitResults (points, per-budget optima and curvatures, envelope, the
leave-largest-budget-out predictions) or from the stored curves; nothing is fitted here.

Points that are WSD ladder branches (decays branched off a shared trunk) are drawn with
:data:`LADDER_MARKER` rather than a dot, and the legend says which is which: given ``ladder``
(arm -> the branches' ``n_params``, ``tokens``, ``loss``), a fit's point is a branch when all
three match one of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.collections import LineCollection
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from slscale.analysis.style import (
    MARKERS,
    SEQUENTIAL,
    arm_color,
    error_bars,
    format_power,
    log_axis,
    log_norm,
    new_figure,
    paper_style,
)
from slscale.fitting.results import FitResult

_MARGIN_DEX = 0.2
LADDER_MARKER = "^"
"""Marker of WSD ladder branches in the IsoFLOP and predicted-vs-observed figures."""
LADDER_LABEL = "WSD ladder branch"
LADDER_GID = "wsd-ladder"
"""Group id (``gid``) of the scatter of ladder branches (kept in SVG output)."""
INDEPENDENT_LABEL = "independent run"

Ladder = Mapping[str, pd.DataFrame]
"""Arm -> its WSD ladder branches (columns n_params, tokens, loss)."""


Color = tuple[float, float, float, float]


def _sequential(norm: Normalize, value: float) -> Color:
    return SEQUENTIAL(float(np.clip(norm(value), 0, 1)))


# -- IsoFLOP profiles -----------------------------------------------------------------------
def ladder_mask(fit: FitResult, branches: pd.DataFrame | None) -> np.ndarray:
    """Which of the fit's points are WSD ladder branches (their N, D and loss match one)."""
    n = np.asarray(fit.data["n_params"], np.float64)
    if branches is None or branches.empty:
        return np.zeros(n.shape, bool)
    d = np.asarray(fit.data["tokens"], np.float64)
    loss = np.asarray(fit.data["loss"], np.float64)
    mask = np.zeros(n.shape, bool)
    for point in branches[["n_params", "tokens", "loss"]].to_numpy(np.float64):
        same = [
            np.isclose(x, v, rtol=1e-9, atol=0) for x, v in zip((n, d, loss), point, strict=True)
        ]
        mask |= same[0] & same[1] & same[2]
    return mask


def _design_handles(color: str = "0.35") -> list[Line2D]:
    """Legend entries telling ladder branches from independent runs."""
    return [
        Line2D(
            [], [], color=color, marker="o", markersize=3.5, linestyle="", label=INDEPENDENT_LABEL
        ),
        Line2D(
            [],
            [],
            color=color,
            marker=LADDER_MARKER,
            markersize=4,
            linestyle="",
            label=LADDER_LABEL,
        ),
    ]


def isoflop_curves(fits: Mapping[str, FitResult], ladder: Ladder | None = None) -> Figure:
    """One panel per arm: final loss against N per budget, parabolas and their minima.

    ``fits``: arm -> Approach 2 FitResult (budgets' ``curvature_n`` draw the parabolas);
    ``ladder``: arm -> its WSD ladder branches, drawn with :data:`LADDER_MARKER`.
    """
    with paper_style():
        fig, axes = new_figure(len(fits))
        for ax, (arm, fit) in zip(axes, fits.items(), strict=True):
            _isoflop_panel(ax, arm, fit, (ladder or {}).get(arm))
    return fig


def _isoflop_panel(ax: Axes, arm: str, fit: FitResult, branches: pd.DataFrame | None) -> None:
    n = np.asarray(fit.data["n_params"], np.float64)
    loss = np.asarray(fit.data["loss"], np.float64)
    budget = np.asarray(fit.data["budget"], np.float64)
    on_ladder = ladder_mask(fit, branches)
    rows = list(fit.details.get("budgets", []))
    norm = log_norm([r["budget"] for r in rows] or budget)
    for row in rows:
        color = _sequential(norm, row["budget"])
        mine = np.isclose(budget, row["budget"], rtol=1e-9)
        label = f"$C$ = {format_power(row['budget'])}"
        _scatter_designs(
            ax, n[mine], loss[mine], on_ladder[mine], "o", label=label, s=10, color=color, zorder=3
        )
        if row.get("used") and np.isfinite(row.get("curvature_n", np.nan)):
            _parabola(ax, row, n[mine], color)
    ax.set_xlim(n.min() / 10**_MARGIN_DEX, n.max() * 10**_MARGIN_DEX)  # wide CIs run off
    ax.set_title(arm)
    log_axis(ax, "x", "count")
    ax.set_xlabel("Parameters $N$")
    ax.set_ylabel("Final loss")
    handles, _ = ax.get_legend_handles_labels()
    if on_ladder.any():
        handles += _design_handles()
    ax.legend(handles=handles, loc="upper right", handletextpad=0.2, borderaxespad=0.3)


def _parabola(ax: Axes, row: Mapping[str, Any], sizes: np.ndarray, color: Color) -> None:
    u = np.linspace(np.log(sizes.min()) - 0.15, np.log(sizes.max()) + 0.15, 100)
    centre = np.log(row["n_opt"])
    ax.plot(
        np.exp(u),
        row["loss_opt"] + row["curvature_n"] * (u - centre) ** 2,
        color=color,
        linewidth=0.9,
        zorder=2,
    )
    xerr = error_bars(np.array([row["n_opt"]]), [row.get("n_opt_ci")])
    ax.errorbar(
        [row["n_opt"]],
        [row["loss_opt"]],
        xerr=xerr,
        fmt="D",
        ms=4,
        color=color,
        mec="black",
        mew=0.5,
        ecolor=color,
        elinewidth=0.7,
        capsize=1.5,
        zorder=4,
    )


# -- training curves ------------------------------------------------------------------------
def training_curves(
    curves: Mapping[str, pd.DataFrame], envelopes: Mapping[str, FitResult]
) -> Figure:
    """One panel per arm: every run's loss against FLOPs coloured by N, with the envelope.

    ``curves``: arm -> rows (run_id, flops, loss, n_params); ``envelopes``: arm -> Approach 1
    FitResult (its ``details['envelope']``).
    """
    sizes = np.concatenate([c["n_params"].to_numpy(np.float64) for c in curves.values()])
    norm = log_norm(sizes)
    with paper_style():
        fig, axes = new_figure(len(curves))
        for ax, (arm, frame) in zip(axes, curves.items(), strict=True):
            _curves_panel(ax, arm, frame, envelopes.get(arm), norm)
        mappable = _scalar_mappable(norm)
        bar = fig.colorbar(mappable, ax=axes, pad=0.01, aspect=30)
        bar.set_label("Parameters $N$")
        log_ticks(bar.ax)
    return fig


def _curves_panel(
    ax: Axes, arm: str, frame: pd.DataFrame, envelope: FitResult | None, norm: Normalize
) -> None:
    segments, colors = [], []
    for _, run in frame.sort_values(["run_id", "flops"]).groupby("run_id", sort=True):
        segments.append(np.column_stack([run["flops"], run["loss"]]))
        colors.append(_sequential(norm, float(run["n_params"].iloc[0])))
    ax.add_collection(LineCollection(segments, colors=colors, linewidths=0.7, alpha=0.85))
    ax.autoscale_view()
    if envelope is not None:
        env = envelope.details["envelope"]
        ax.plot(
            env["flops"],
            env["loss"],
            color="black",
            linewidth=1.3,
            linestyle="--",
            label="Approach 1 envelope",
        )
        ax.legend(loc="upper right")
    ax.set_title(arm)
    log_axis(ax, "x", "flops")
    log_axis(ax, "y", "plain")
    ax.set_xlabel("Compute $C$ (FLOPs)")
    ax.set_ylabel("Training loss")


def _scalar_mappable(norm: Normalize) -> ScalarMappable:
    return ScalarMappable(norm=norm, cmap=SEQUENTIAL)


def log_ticks(ax: Axes) -> None:
    """Readable ticks on a colour bar's log axis."""
    log_axis(ax, "y", "count")


# -- predicted vs observed ------------------------------------------------------------------
def predicted_vs_observed(fits: Mapping[str, FitResult], ladder: Ladder | None = None) -> Figure:
    """Approach 3's predicted against observed final loss, per arm; the largest budget,
    predicted by a fit that never saw it (leave-largest-budget-out), highlighted; WSD
    ladder branches (``ladder``: arm -> its branches) drawn with :data:`LADDER_MARKER`."""
    with paper_style():
        fig, (ax,) = new_figure(1, height_in=3.4)
        handles = []
        any_ladder = False
        for k, (arm, fit) in enumerate(fits.items()):
            on_ladder = ladder_mask(fit, (ladder or {}).get(arm))
            any_ladder |= bool(on_ladder.any())
            marker = MARKERS[k % len(MARKERS)]
            handles += _prediction_points(ax, arm, fit, marker, list(fits), on_ladder)
        if any_ladder:
            handles.append(_design_handles()[1])
        low, high = _square_limits(ax)
        ax.plot([low, high], [low, high], color="0.4", linewidth=0.7, zorder=1)
        ax.set_xlim(low, high)
        ax.set_ylim(low, high)
        ax.set_aspect("equal")
        ax.set_xlabel("Observed final loss")
        ax.set_ylabel("Predicted loss $L(N, D)$")
        ax.legend(handles=handles, loc="upper left")
    return fig


def _prediction_points(
    ax: Axes, arm: str, fit: FitResult, marker: str, arms: list[str], on_ladder: np.ndarray
) -> list[Line2D]:
    color = arm_color(arm, arms)
    n, d = (np.asarray(fit.data[k], np.float64) for k in ("n_params", "tokens"))
    observed = np.asarray(fit.data["loss"], np.float64)
    predicted = fit.predict_loss(n, d)
    _scatter_designs(
        ax, observed, predicted, on_ladder, marker, s=9, color=color, alpha=0.8, linewidths=0,
        zorder=2,
    )  # fmt: skip
    handles = [Line2D([], [], color=color, marker=marker, linestyle="", label=f"{arm} (in-sample)")]
    held = fit.extrapolation or {}
    if "predicted" in held:
        ax.scatter(
            held["observed"],
            held["predicted"],
            s=40,
            marker="*",
            color=color,
            edgecolors="black",
            linewidths=0.5,
            zorder=4,
        )
        error = 100 * held["mean_abs_rel_error"]
        label = (
            f"{arm}: held-out $C$ ≈ {format_power(held['held_out_flops'][1])} ({error:.2g}% error)"
        )
        handles.append(
            Line2D(
                [],
                [],
                color=color,
                marker="*",
                markersize=7,
                linestyle="",
                markeredgecolor="black",
                markeredgewidth=0.5,
                label=label,
            )
        )
    return handles


def _square_limits(ax: Axes) -> tuple[float, float]:
    ax.autoscale_view()
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    low, high = min(x0, y0), max(x1, y1)
    pad = 0.03 * (high - low)
    return low - pad, high + pad


def _scatter_designs(
    ax: Any,
    x: np.ndarray,
    y: np.ndarray,
    on_ladder: np.ndarray,
    marker: str,
    label: str | None = None,
    **style: Any,
) -> None:
    """Independent runs with ``marker``, WSD ladder branches with :data:`LADDER_MARKER` (and
    :data:`LADDER_GID`); ``label`` goes on the first group drawn only."""
    for shape, points in ((marker, ~on_ladder), (LADDER_MARKER, on_ladder)):
        if points.any():
            gid = LADDER_GID if shape == LADDER_MARKER else None
            ax.scatter(x[points], y[points], marker=shape, label=label, gid=gid, **style)
            label = "_"  # one legend entry per group of points
