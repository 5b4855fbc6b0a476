"""One paper style for every figure: sizes, fonts, colours and readable log axes.

Sizes follow two-column venues (ACL, ICML, IEEE: a column is about 3.3 in, the page about
6.9 in) with 8 pt text, so a figure is placed at 100 % and its text matches a caption.
Fonts are the STIX fonts that matplotlib itself ships (Times-like, with matching mathtext),
so output never depends on the fonts a machine happens to have and nothing is downloaded.
Colours are the Okabe & Ito (2008) palette, distinguishable under the common colour-vision
deficiencies; sequential quantities (model size, budget) use viridis. Every figure is a bare
:class:`matplotlib.figure.Figure` (no pyplot state), rendered by the Agg-based backends.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Literal, cast

import matplotlib as mpl
import numpy as np
from matplotlib import ticker
from matplotlib.axes import Axes
from matplotlib.colors import Colormap, ListedColormap, LogNorm
from matplotlib.figure import Figure

COLUMN_WIDTH_IN = 3.3
"""Width of one column of a two-column paper, in inches."""
PAGE_WIDTH_IN = 6.9
"""Width of the text block (both columns), in inches."""
PANEL_HEIGHT_IN = 2.3
"""Height of a row of panels, in inches."""

OKABE_ITO = {
    "black": "#000000",
    "orange": "#E69F00",
    "sky_blue": "#56B4E9",
    "bluish_green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "reddish_purple": "#CC79A7",
}
"""Okabe & Ito (2008), "Color Universal Design": safe for colour-blind readers."""

ARM_COLORS = {
    "interleaved": OKABE_ITO["blue"],
    "textless": OKABE_ITO["vermillion"],
    "text": OKABE_ITO["bluish_green"],
}
"""Fixed colours of the arms, so an arm looks the same in every figure."""
_SPARE_COLORS = ("orange", "reddish_purple", "sky_blue", "black", "yellow")

SEQUENTIAL: Colormap = ListedColormap(mpl.colormaps["viridis"](np.linspace(0.0, 0.85, 256)))
"""Colour map for ordered quantities (model size, budget): viridis without its palest
yellows, which vanish on white paper."""

MARKERS = ("o", "s", "^", "D", "v", "P", "X")

RC: dict[str, Any] = {
    "font.family": "serif",
    "font.serif": ["STIXGeneral"],
    "mathtext.fontset": "stix",
    "font.size": 8,
    "axes.titlesize": 8,
    "axes.labelsize": 8,
    "legend.fontsize": 6.5,
    "legend.title_fontsize": 6.5,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "axes.linewidth": 0.6,
    "lines.linewidth": 1.1,
    "lines.markersize": 3.5,
    "xtick.major.width": 0.6,
    "ytick.major.width": 0.6,
    "xtick.minor.width": 0.4,
    "ytick.minor.width": 0.4,
    "xtick.direction": "in",
    "ytick.direction": "in",
    "xtick.top": True,
    "ytick.right": True,
    "axes.grid": True,
    "axes.grid.which": "major",
    "grid.linewidth": 0.35,
    "grid.alpha": 0.4,
    "legend.frameon": True,
    "legend.framealpha": 0.85,
    "legend.edgecolor": "none",
    "legend.fancybox": False,
    "legend.borderpad": 0.3,
    "legend.handlelength": 1.8,
    "savefig.dpi": 300,
    "savefig.bbox": "tight",
    "savefig.pad_inches": 0.02,
    "pdf.fonttype": 42,  # TrueType: text stays text in the PDF (editable, searchable)
    "ps.fonttype": 42,
    "svg.fonttype": "path",
    "svg.hashsalt": "slscale",  # fixed ids: the same figure gives the same SVG
    "axes.unicode_minus": True,
}
"""rcParams of the paper style."""


@contextmanager
def paper_style() -> Iterator[None]:
    """Apply :data:`RC` inside the block (figures must also be *saved* inside it)."""
    with mpl.rc_context(cast(Any, RC)):
        yield


def arm_color(arm: str, arms: Sequence[str] = ()) -> str:
    """The colour of an arm: fixed for the known ones, the next spare one otherwise."""
    if arm in ARM_COLORS:
        return ARM_COLORS[arm]
    others = [a for a in arms if a not in ARM_COLORS]
    index = others.index(arm) if arm in others else len(others)
    return OKABE_ITO[_SPARE_COLORS[index % len(_SPARE_COLORS)]]


def new_figure(
    n_panels: int = 1, *, width: Literal["auto", "column", "page"] = "auto", height_in: float = 0.0
) -> tuple[Figure, list[Axes]]:
    """A figure with ``n_panels`` side by side, as wide as a column or the page ("auto": a
    single panel fills a column, several the page)."""
    page = width == "page" or (width == "auto" and n_panels > 1)
    width_in = PAGE_WIDTH_IN if page else COLUMN_WIDTH_IN
    fig = Figure(figsize=(width_in, height_in or PANEL_HEIGHT_IN), layout="constrained")
    axes = fig.subplots(1, n_panels, squeeze=False)[0]
    return fig, list(axes)


def error_bars(values: np.ndarray, intervals: Sequence[Any]) -> np.ndarray | None:
    """(2, n) distances from each value to its interval's ends, for ``errorbar``; None when an
    interval is missing. A percentile interval that misses its point estimate gives 0."""
    if any(ci is None or not np.all(np.isfinite(ci)) for ci in intervals):
        return None
    ends = np.asarray(intervals, np.float64)
    return np.clip(np.stack([values - ends[:, 0], ends[:, 1] - values]), 0.0, None)


def log_norm(values: Sequence[float] | np.ndarray) -> LogNorm:
    """A log colour scale spanning ``values`` (padded when they are all equal)."""
    v = np.asarray(values, np.float64)
    low, high = float(v.min()), float(v.max())
    if high <= low:
        low, high = low / 1.5, high * 1.5
    return LogNorm(vmin=low, vmax=high)


# -- axes -----------------------------------------------------------------------------------
Kind = Literal["count", "flops", "plain", "percent"]


def log_axis(ax: Axes, which: Literal["x", "y"], kind: Kind) -> None:
    """Log scale with ticks a reader can read.

    ``count`` (parameters, tokens): 10M, 300M, 1B; ``flops``: 10^18; ``plain``: 0.55;
    ``percent`` (a fraction shown as %): 55. An axis spanning less than about a decade gets
    a few round values as ticks instead of one lonely power of ten.
    """
    axis = ax.xaxis if which == "x" else ax.yaxis
    (ax.set_xscale if which == "x" else ax.set_yscale)("log")
    ax.autoscale_view()
    low, high = sorted(ax.get_xlim() if which == "x" else ax.get_ylim())
    decades = math.log10(high / low)
    if decades >= 1.5:
        axis.set_major_locator(ticker.LogLocator(base=10, numticks=12))
        few = decades < 3 and kind != "flops"  # label 2 and 5 between sparse decades
        axis.set_minor_formatter(_TwoFive(_FORMATTERS[kind]) if few else ticker.NullFormatter())
    elif decades >= 0.6:
        subs = (1.0, 2.0, 5.0) if decades >= 1 else (1.0, 2.0, 3.0, 5.0, 7.0)
        axis.set_major_locator(ticker.LogLocator(base=10, subs=subs, numticks=12))
        axis.set_minor_formatter(ticker.NullFormatter())
    else:
        axis.set_major_locator(_RoundLocator())
        axis.set_minor_formatter(ticker.NullFormatter())
    axis.set_minor_locator(ticker.LogLocator(base=10, subs=_MINOR_SUBS, numticks=12))
    axis.set_major_formatter(_FORMATTERS[kind])


_MINOR_SUBS = tuple(float(k) for k in range(2, 10))


class _RoundLocator(ticker.MaxNLocator):
    """Round values (0.55, 0.6, 0.65) inside a log axis that spans less than a decade."""

    def __init__(self) -> None:
        super().__init__(nbins=6, steps=[1, 2, 2.5, 5, 10], min_n_ticks=4)

    def tick_values(self, vmin: float, vmax: float) -> Any:
        ticks = np.asarray(super().tick_values(vmin, vmax), np.float64)
        return ticks[ticks > 0]


class _TwoFive(ticker.Formatter):
    """Label only the minor ticks at 2 and 5 times a power of ten."""

    def __init__(self, inner: ticker.Formatter) -> None:
        self.inner = inner

    def __call__(self, x: float, pos: Any = None) -> str:
        mantissa = x / 10.0 ** math.floor(math.log10(x) + 1e-9)
        return self.inner(x, pos) if round(mantissa, 6) in (2.0, 5.0) else ""


def format_count(value: float, _pos: Any = None) -> str:
    """10_000_000 -> '10M', 2.5e9 -> '2.5B'."""
    for threshold, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= threshold:
            return f"{value / threshold:.3g}{suffix}"
    return f"{value:.3g}"


def format_power(value: float, _pos: Any = None) -> str:
    """1e18 -> '10^18' (mathtext); 3e18 -> '3×10^18' (two significant digits)."""
    if value <= 0 or not math.isfinite(value):
        return ""
    mantissa_text, exponent_text = f"{value:.1e}".split("e")
    mantissa, exponent = float(mantissa_text), int(exponent_text)
    if mantissa == 1:
        return rf"$10^{{{exponent}}}$"
    return rf"${mantissa:g}\!\times\!10^{{{exponent}}}$"


def format_plain(value: float, _pos: Any = None) -> str:
    """0.55 -> '0.55', 1.725 -> '1.725' (ticks are round: every digit they have is shown)."""
    return f"{value:.6g}"


def format_percent(value: float, _pos: Any = None) -> str:
    """A fraction as a percentage: 0.55 -> '55', 0.525 -> '52.5'."""
    return f"{100 * value:.6g}"


_FORMATTERS: dict[str, ticker.Formatter] = {
    "count": ticker.FuncFormatter(format_count),
    "flops": ticker.FuncFormatter(format_power),
    "plain": ticker.FuncFormatter(format_plain),
    "percent": ticker.FuncFormatter(format_percent),
}


def law_text(coef: float, exponent: float, variable: str = "C") -> str:
    """'0.19·C^{0.026}' in mathtext, for legends."""
    return rf"${_mantissa_text(coef)}\,{variable}^{{{exponent:.3g}}}$"


def _mantissa_text(value: float) -> str:
    if 1e-3 <= abs(value) < 1e4:
        return f"{value:.3g}"
    exponent = math.floor(math.log10(abs(value)))
    return rf"{value / 10.0**exponent:.3g}\times10^{{{exponent}}}"


def legend_above(ax: Axes, ncol: int = 2, **kwargs: Any) -> None:
    """The legend in columns above the panel, where it never hides data."""
    ax.legend(
        loc="lower left",
        bbox_to_anchor=(0.0, 1.01),
        ncol=ncol,
        borderaxespad=0.0,
        frameon=False,
        **kwargs,
    )


def legend_on_top(fig: Figure, axes: Sequence[Axes], ncol: int = 4) -> None:
    """One legend above all panels, from the entries of the first panel."""
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside upper center", ncol=ncol, frameon=False)
