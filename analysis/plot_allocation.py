"""Compute-optimal allocation: N_opt(C) and D_opt(C), and iso-loss contours in (N, D).

The frontier figure follows SIMS's allocation comparison (interleaved SLMs put more of the
compute into N than textless ones) and Chinchilla Fig. 3: each arm's law with its bootstrap
band, drawn solid over the budgets it was fitted on and dotted a decade beyond, Approach 2's
per-budget optima as points, and the textless reference law of Cuervo & Marxer (2024)
dashed. The contour figure follows Chinchilla Fig. 4: iso-loss contours of Approach 3's
L(N, D), the efficient frontier, IsoFLOP lines and the runs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from slscale.analysis.style import (
    MARKERS,
    OKABE_ITO,
    SEQUENTIAL,
    arm_color,
    error_bars,
    legend_above,
    legend_on_top,
    log_axis,
    new_figure,
    paper_style,
)
from slscale.compute import flops_6nd, tokens_6nd
from slscale.fitting.results import FitResult

EXTRAPOLATE_DEX = 1.0
"""How far beyond the largest fitted budget the frontier is drawn (decades)."""
METHOD_NAMES = {"approach1": "Approach 1", "approach2": "Approach 2", "approach3": "Approach 3"}
_PAD_DEX = 0.15
_QUANTITIES = (
    ("n_opt", "k_N", "a", r"N_{\mathrm{opt}}", "Parameters"),
    ("d_opt", "k_D", "b", r"D_{\mathrm{opt}}", "Tokens"),
)


def compute_optimal_frontier(
    fits: Mapping[str, FitResult],
    optima: Mapping[str, FitResult] | None = None,
    references: Sequence[FitResult] = (),
    extrapolate_dex: float = EXTRAPOLATE_DEX,
) -> Figure:
    """Two panels, N_opt(C) and D_opt(C), for each arm's allocation-capable fit.

    ``fits``: arm -> Approach 3 (or Approach 1/2) FitResult; ``optima``: arm -> Approach 2
    FitResult whose per-budget optima are drawn as points; ``references``: published laws.
    """
    optima = optima or {}
    spans = {arm: _flops_span(fit) for arm, fit in fits.items()}
    lowest = min(low for low, _ in spans.values()) / 10**_PAD_DEX
    highest = max(high for _, high in spans.values()) * 10**extrapolate_dex
    grid = np.geomspace(lowest, highest, 200)
    with paper_style():
        fig, axes = new_figure(2, height_in=2.9)
        for panel, (ax, quantity) in enumerate(zip(axes, _QUANTITIES, strict=True)):
            shown = []
            for k, (arm, fit) in enumerate(fits.items()):
                shown.append(_arm_frontier(ax, arm, fit, grid, spans[arm], panel, list(fits)))
                if arm in optima:
                    shown.append(
                        _budget_optima(ax, arm, optima[arm], quantity[0], MARKERS[k], list(fits))
                    )
            for ref in references:
                shown.append(_reference_frontier(ax, ref, grid, panel))
            _finish_frontier_axes(ax, grid, np.concatenate(shown), quantity, bool(optima))
    return fig


def _finish_frontier_axes(
    ax: Axes, grid: np.ndarray, shown: np.ndarray, quantity: tuple[str, ...], points: bool
) -> None:
    """Limits from the laws and optima (wide intervals run off the panel), labels, legend."""
    ax.set_xlim(grid[0], grid[-1])
    low, high = np.log10(shown.min()), np.log10(shown.max())
    ax.set_ylim(10 ** (low - 0.1 * (high - low)), 10 ** (high + 0.1 * (high - low)))
    if points:
        ax.plot(
            [],
            [],
            marker="o",
            ms=3.5,
            linestyle="",
            color="0.35",
            label="markers: Approach 2 optimum per budget (with CI)",
        )
    log_axis(ax, "x", "flops")
    log_axis(ax, "y", "count")
    ax.set_xlabel("Compute $C$ (FLOPs)")
    ax.set_ylabel(f"{quantity[4]} ${quantity[3]}$")
    legend_above(ax, ncol=1)


def _flops_span(fit: FitResult) -> tuple[float, float]:
    flops = np.asarray(fit.data.get("flops", []), np.float64)
    if flops.size == 0:
        raise ValueError(f"fit '{fit.label}' has no data['flops'] to place its frontier")
    return float(flops.min()), float(flops.max())


def _arm_frontier(
    ax: Axes,
    arm: str,
    fit: FitResult,
    grid: np.ndarray,
    span: tuple[float, float],
    panel: int,
    arms: list[str],
) -> np.ndarray:
    color = arm_color(arm, arms)
    values = fit.optimal_allocation(grid)[panel]
    inside = grid <= span[1] * (1 + 1e-9)
    exponent = fit.exponents["a" if panel == 0 else "b"]
    ci = fit.ci.get("a" if panel == 0 else "b")
    level = f"{100 * fit.confidence:g}%"
    interval = f" [{level} CI {ci[0]:.2f}–{ci[1]:.2f}]" if ci and all(np.isfinite(ci)) else ""
    symbol = _QUANTITIES[panel][3]
    method = METHOD_NAMES.get(fit.method, fit.method)
    label = f"{arm} ({method}): ${symbol} \\propto C^{{{exponent:.2f}}}$" + interval
    ax.plot(grid[inside], values[inside], color=color, label=label)
    ax.plot(grid[~inside], values[~inside], color=color, linestyle=":")
    if fit.draws() is not None:
        band = fit.allocation_interval(grid)["n_opt" if panel == 0 else "d_opt"]
        ax.fill_between(grid, band[0], band[1], color=color, alpha=0.18, linewidth=0)
    return np.asarray(values, np.float64)


def _budget_optima(
    ax: Axes, arm: str, fit: FitResult, key: str, marker: str, arms: list[str]
) -> np.ndarray:
    rows = [r for r in fit.details.get("budgets", []) if r.get("used")]
    if not rows:
        return np.empty(0)
    c = np.array([r["budget"] for r in rows])
    v = np.array([r[key] for r in rows])
    yerr = error_bars(v, [r.get(f"{key}_ci") for r in rows])
    ax.errorbar(
        c,
        v,
        yerr=yerr,
        fmt=marker,
        ms=3.5,
        color=arm_color(arm, arms),
        mec="white",
        mew=0.4,
        elinewidth=0.7,
        capsize=1.5,
        zorder=4,
    )
    return v


def _reference_frontier(ax: Axes, ref: FitResult, grid: np.ndarray, panel: int) -> np.ndarray:
    values = ref.optimal_allocation(grid)[panel]
    exponent = ref.exponents.get("a" if panel == 0 else "b")
    if exponent is None:
        exponent = float(np.polyfit(np.log(grid), np.log(values), 1)[0])
    symbol = _QUANTITIES[panel][3]
    name = ref.label or ref.source
    color = arm_color("textless") if "textless" in name.lower() else OKABE_ITO["black"]
    ax.plot(
        grid,
        values,
        color=color,
        linestyle="--",
        linewidth=0.9,
        label=f"{name}: ${symbol} \\propto C^{{{exponent:.2f}}}$",
    )
    return np.asarray(values, np.float64)


# -- iso-loss contours ----------------------------------------------------------------------
def isoloss_contours(fits: Mapping[str, FitResult], n_levels: int = 8) -> Figure:
    """One panel per arm: contours of L(N, D), the efficient frontier, IsoFLOP lines, runs.

    ``fits``: arm -> Approach 3 FitResult (parametric law).
    """
    with paper_style():
        fig, axes = new_figure(len(fits), height_in=2.6)
        for ax, (arm, fit) in zip(axes, fits.items(), strict=True):
            _contour_panel(ax, arm, fit, n_levels)
        legend_on_top(fig, axes, ncol=3)
    return fig


def _contour_panel(ax: Axes, arm: str, fit: FitResult, n_levels: int) -> None:
    n = np.asarray(fit.data["n_params"], np.float64)
    d = np.asarray(fit.data["tokens"], np.float64)
    grid_n = np.geomspace(n.min() / 3, n.max() * 3, 160)
    grid_d = np.geomspace(d.min() / 3, d.max() * 3, 160)
    mesh_n, mesh_d = np.meshgrid(grid_n, grid_d)
    loss = fit.predict_loss(mesh_n, mesh_d)
    observed = fit.predict_loss(n, d)
    levels = np.linspace(observed.min(), observed.max(), n_levels)
    contours = ax.contour(mesh_n, mesh_d, loss, levels=levels, cmap=SEQUENTIAL, linewidths=0.7)
    ax.clabel(contours, levels[::2], fontsize=5.5, fmt="%.3g", inline=True)
    _isoflop_lines(ax, np.asarray(fit.data.get("flops", flops_6nd(n, d)), np.float64), grid_n)
    c = np.geomspace(flops_6nd(grid_n[0], grid_d[0]), flops_6nd(grid_n[-1], grid_d[-1]), 200)
    n_opt, d_opt = fit.optimal_allocation(c)
    ax.plot(n_opt, d_opt, color="black", linewidth=1.2, label="efficient frontier")
    ax.scatter(n, d, s=9, color="0.25", edgecolors="white", linewidths=0.4, zorder=3, label="runs")
    ax.set_xlim(grid_n[0], grid_n[-1])
    ax.set_ylim(grid_d[0], grid_d[-1])
    ax.set_title(arm)
    log_axis(ax, "x", "count")
    log_axis(ax, "y", "count")
    ax.set_xlabel("Parameters $N$")
    ax.set_ylabel("Tokens $D$")
    ax.plot([], [], color="0.55", linewidth=0.5, linestyle=":", label="IsoFLOP ($C = 6ND$)")


def _isoflop_lines(ax: Axes, flops: np.ndarray, grid_n: np.ndarray) -> None:
    budgets = np.unique(np.round(np.log10(flops), 1))
    for log_c in budgets:
        tokens = tokens_6nd(10**log_c, grid_n)
        ax.plot(grid_n, tokens, color="0.55", linewidth=0.5, linestyle=":", zorder=1)
