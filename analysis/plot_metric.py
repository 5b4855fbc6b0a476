"""Semantic metrics against compute and model size (SIMS Figs. 1 and 2).

Plot functions take FitResults and tables and return a Figure; they evaluate laws (a·C^b
at the plotted C, percentiles of its bootstrap draws) but never fit one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from slscale.analysis.style import (
    MARKERS,
    OKABE_ITO,
    arm_color,
    law_text,
    legend_above,
    log_axis,
    new_figure,
    paper_style,
)
from slscale.fitting import laws
from slscale.fitting.results import MARGIN, FitResult
from slscale.models.evaluate.suite import SSC, TSC

_REFERENCE_ARMS = {"pythia": "text", "text": "text"}
_REFERENCE_NAMES = {
    "interleaved": "SIMS (interleaved)",
    "textless": "Cuervo & Marxer (textless)",
    "pythia": "Pythia (text LM)",
}
"""Legend names of the SIMS Fig. 1 laws, by the arm the reference file records."""
_PAD_DEX = 0.25


def metric_vs_compute(
    fits: Mapping[str, Mapping[str, FitResult]],
    references: Mapping[str, Sequence[FitResult]] | None = None,
) -> Figure:
    """One panel per benchmark: the best run per budget, each arm's law a·C^b with its
    bootstrap band, and published laws dashed (SIMS Fig. 1).

    ``fits``: benchmark -> arm -> metric FitResult; ``references``: benchmark -> laws.
    """
    references = references or {}
    with paper_style():
        fig, axes = new_figure(len(fits), height_in=3.3)
        for ax, (benchmark, arms) in zip(axes, fits.items(), strict=True):
            _metric_panel(ax, benchmark, arms, references.get(benchmark, ()))
    return fig


def margin_vs_compute(fits: Mapping[str, Mapping[str, FitResult]]) -> Figure:
    """One panel per benchmark: the best run's log-likelihood margin per budget and each
    arm's margin law m + s·log10(C/1e12) with its bootstrap band; zero (chance) dotted.

    ``fits``: benchmark -> arm -> margin FitResult.
    """
    with paper_style():
        fig, axes = new_figure(len(fits), height_in=3.3)
        for ax, (benchmark, arms) in zip(axes, fits.items(), strict=True):
            _metric_panel(ax, benchmark, arms, (), log_y=False)
            ax.axhline(0.0, color="0.5", linestyle=":", linewidth=0.8, zorder=1)
            unit = _margin_unit(next(iter(arms.values())))
            ax.set_ylabel(f"{benchmark} log-likelihood margin ({unit})")
    return fig


def _margin_unit(fit: FitResult) -> str:
    convention = str(fit.conventions.get("convention", ""))
    return "nats per item" if "nll=sum" in convention else "nats per token"


def _metric_panel(
    ax: Axes,
    benchmark: str,
    arms: Mapping[str, FitResult],
    references: Sequence[FitResult],
    *,
    log_y: bool = True,
) -> None:
    flops = np.concatenate([np.asarray(f.data["flops"], np.float64) for f in arms.values()])
    grid = np.geomspace(flops.min() / 10**_PAD_DEX, flops.max() * 10**_PAD_DEX, 200)
    for k, (arm, fit) in enumerate(arms.items()):
        _arm_points_and_law(ax, arm, fit, grid, MARKERS[k % len(MARKERS)], list(arms))
    ax.set_xlim(grid[0], grid[-1])
    ax.autoscale(axis="y")
    ax.set_ylim(*_padded(ax.get_ylim(), log=log_y))
    for ref in references:
        _reference_line(ax, ref, grid)
    log_axis(ax, "x", "flops")
    if log_y:
        log_axis(ax, "y", "plain")
    ax.set_xlabel("Compute $C = 6ND$ (FLOPs)")
    ax.set_ylabel(f"{benchmark} accuracy")
    legend_above(ax, ncol=1)


def _arm_points_and_law(
    ax: Axes, arm: str, fit: FitResult, grid: np.ndarray, marker: str, arms: list[str]
) -> None:
    color = arm_color(arm, arms)
    c = np.asarray(fit.data["flops"], np.float64)
    q = np.asarray(fit.data["value"], np.float64)
    best = np.asarray(fit.data.get("fitted", np.ones(c.size, bool)), bool)
    ax.scatter(
        c[~best],
        q[~best],
        s=7,
        facecolors="none",
        edgecolors=color,
        alpha=0.45,
        linewidths=0.5,
        zorder=2,
    )
    ax.scatter(
        c[best],
        q[best],
        s=16,
        color=color,
        marker=marker,
        zorder=3,
        edgecolors="white",
        linewidths=0.4,
    )
    if fit.law == MARGIN:
        m, s = fit.params["m"], fit.params["s"]
        text = f"{arm}: ${m:.3g} {'+' if s >= 0 else '-'} {abs(s):.2g}\\log_{{10}}(C/10^{{12}})$"
        ax.plot(grid, fit.predict_margin(grid), color=color, label=text)
    else:
        a, b = fit.params["a"], fit.params["b"]
        ax.plot(grid, fit.predict_metric(grid), color=color, label=f"{arm}: {law_text(a, b)}")
    band = metric_band(fit, grid)
    if band is not None:
        ax.fill_between(grid, band[0], band[1], color=color, alpha=0.18, linewidth=0)


def metric_band(fit: FitResult, flops: np.ndarray) -> np.ndarray | None:
    """(2, len(flops)) percentile band of the law (a·C^b, or a margin law) over the fit's
    bootstrap draws, or None."""
    draws = fit.draws()
    if draws is None:
        return None
    with np.errstate(over="ignore", invalid="ignore"):
        if fit.law == MARGIN:
            values = laws.margin_law(flops[None, :], m=draws["m"][:, None], s=draws["s"][:, None])
        else:
            values = draws["a"][:, None] * flops[None, :] ** draws["b"][:, None]
    tail = 50 * (1 - fit.confidence)
    return np.asarray(np.nanpercentile(values, [tail, 100 - tail], axis=0))


def _reference_line(ax: Axes, ref: FitResult, grid: np.ndarray) -> None:
    arm = str(ref.details.get("arm", ""))
    color = arm_color(_REFERENCE_ARMS.get(arm, arm)) if arm else OKABE_ITO["black"]
    values = ref.predict_metric(grid)
    low, high = ax.get_ylim()
    visible = bool(np.any((values >= low) & (values <= high)))
    name = reference_name(ref) + ("" if visible else " (off scale)")
    ax.plot(
        grid,
        values,
        color=color,
        linestyle="--",
        linewidth=0.9,
        alpha=0.9,
        label=f"{name}: {law_text(ref.params['a'], ref.params['b'])}",
    )
    ax.set_ylim(low, high)


def reference_name(ref: FitResult) -> str:
    """A short legend name of a published metric law (its source), else its label."""
    short = _REFERENCE_NAMES.get(str(ref.details.get("arm", "")))
    if short and ref.source.startswith("Maimon"):
        return short
    label = ref.label or ref.source
    metric = str(ref.details.get("metric", ""))
    return label[: -len(metric)].rstrip() if metric and label.endswith(metric) else label


def _padded(
    limits: tuple[float, float], fraction: float = 0.04, *, log: bool = True
) -> tuple[float, float]:
    if not log:
        low, high = limits
        pad = fraction * (high - low or 1.0)
        return float(low - pad), float(high + pad)
    low, high = np.log(limits)
    pad = fraction * (high - low or 1.0)
    return float(np.exp(low - pad)), float(np.exp(high + pad))


# -- SIMS Fig. 2 ----------------------------------------------------------------------------
def textlm_families(
    points: pd.DataFrame, benchmarks: Sequence[str] = (SSC, TSC), setting: str = ""
) -> Figure:
    """Score against parameters per TextLM family (SIMS Fig. 2).

    ``points``: one row per run and benchmark with columns family, n_params, benchmark,
    value (a fraction), of runs trained alike (``setting`` says how, e.g. '$D$ ≈ 20B').
    Each family's line joins its best score at each model size.
    """
    present = [b for b in benchmarks if b in set(points["benchmark"])]
    families = sorted(set(points["family"]))
    colors = [
        OKABE_ITO[c]
        for c in ("blue", "orange", "bluish_green", "reddish_purple", "vermillion", "sky_blue")
    ]
    with paper_style():
        fig, axes = new_figure(len(present))
        for ax, benchmark in zip(axes, present, strict=True):
            rows = points[points["benchmark"] == benchmark]
            for k, family in enumerate(families):
                _family_line(
                    ax,
                    rows[rows["family"] == family],
                    family,
                    colors[k % len(colors)],
                    MARKERS[k % len(MARKERS)],
                )
            log_axis(ax, "x", "count")
            ax.set_xlabel("Parameters $N$")
            ax.set_ylabel(f"{benchmark} accuracy")
            legend_above(ax, ncol=4, title=f"TextLM family ({setting})" if setting else None)
    return fig


def _family_line(ax: Axes, rows: pd.DataFrame, family: str, color: str, marker: str) -> None:
    if rows.empty:
        return
    best = rows.groupby("n_params", as_index=False)["value"].max().sort_values("n_params")
    ax.scatter(
        rows["n_params"],
        rows["value"],
        s=7,
        facecolors="none",
        edgecolors=color,
        alpha=0.45,
        linewidths=0.5,
    )
    ax.plot(
        best["n_params"],
        best["value"],
        color=color,
        marker=marker,
        label=family,
        markeredgecolor="white",
        markeredgewidth=0.4,
    )
