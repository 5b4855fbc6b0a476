"""The paper style: tick labels, number formats, colours, deterministic files."""

from __future__ import annotations

import numpy as np
import pytest

from slscale.analysis.output import parse_formats, save_figure
from slscale.analysis.style import (
    arm_color,
    format_count,
    format_power,
    log_axis,
    new_figure,
    paper_style,
)
from slscale.errors import ConfigError


@pytest.mark.parametrize(
    ("value", "text"),
    [(1e18, "$10^{18}$"), (9.9999e17, "$10^{18}$"), (3e18, r"$3\!\times\!10^{18}$"),
     (6.86e20, r"$6.9\!\times\!10^{20}$")],
)  # fmt: skip
def test_powers_of_ten(value, text):
    assert format_power(value) == text


@pytest.mark.parametrize(
    ("value", "text"), [(2.5e9, "2.5B"), (1e7, "10M"), (823e6, "823M"), (25_000, "25k"), (7, "7")]
)
def test_counts(value, text):
    assert format_count(value) == text


def labels(ax, which="y"):
    ax.figure.draw_without_rendering()
    axis = ax.yaxis if which == "y" else ax.xaxis
    low, high = sorted(axis.get_view_interval())
    ticks = [t for t in axis.get_major_ticks() if low <= t.get_loc() <= high]
    return [t.label1.get_text() for t in ticks]


@pytest.mark.parametrize(
    ("low", "high", "kind", "expected"),
    [
        (0.52, 0.63, "plain", ["0.52", "0.54", "0.56", "0.58", "0.6", "0.62"]),
        (1.7, 1.82, "plain", ["1.7", "1.725", "1.75", "1.775", "1.8"]),
        (0.55, 0.9, "percent", ["60", "70", "80", "90"]),
        (1.2e8, 9e8, "count", ["200M", "300M", "500M", "700M"]),
        (1.2e8, 2e9, "count", ["200M", "500M", "1B", "2B"]),
        (2e7, 9e8, "count", ["100M"]),  # minor 2 and 5 are labelled too, see below
        (1e17, 1e21, "flops", ["$10^{17}$", "$10^{18}$", "$10^{19}$", "$10^{20}$", "$10^{21}$"]),
    ],
)
def test_log_axes_get_readable_ticks(low, high, kind, expected):
    with paper_style():
        _fig, (ax,) = new_figure(1)
        ax.plot([1, 2], [low, high])
        ax.set_ylim(low, high)
        log_axis(ax, "y", kind)
        assert labels(ax) == expected


def test_sparse_decades_label_two_and_five():
    with paper_style():
        fig, (ax,) = new_figure(1)
        ax.set_ylim(2e7, 9e8)
        log_axis(ax, "y", "count")
        fig.draw_without_rendering()
        minor = [t.label1.get_text() for t in ax.yaxis.get_minor_ticks()]
        assert [m for m in minor if m] == ["20M", "50M", "200M", "500M"]


def test_arm_colours_are_fixed_and_distinct():
    arms = ["interleaved", "textless", "speech-only", "speech-text"]
    colours = [arm_color(a, arms) for a in arms]
    assert len(set(colours)) == 4
    # a known arm keeps its colour whatever else a figure draws, and in any order
    for known in ("interleaved", "textless"):
        alone = arm_color(known)
        assert arm_color(known, arms) == arm_color(known, arms[::-1]) == alone
        assert arm_color(known, ["other", known]) == alone
    # and a new arm never takes a known arm's colour
    assert arm_color("speech-only", ["speech-only"]) not in {
        arm_color("interleaved"),
        arm_color("textless"),
    }


def test_formats():
    assert parse_formats(" PNG, pdf,png") == ("png", "pdf")
    with pytest.raises(ConfigError, match="--format ',': use a comma-separated list"):
        parse_formats(",")


def test_saving_twice_gives_the_same_bytes(tmp_path):
    with paper_style():
        fig, (ax,) = new_figure(1)
        ax.plot(np.arange(5), np.arange(5) ** 2, label="x²")
        ax.legend()
    first = save_figure(fig, tmp_path / "a", "f", ["png", "pdf", "svg"])
    second = save_figure(fig, tmp_path / "b", "f", ["svg", "pdf", "png"])
    for path in first:
        assert path.read_bytes() == (tmp_path / "b" / path.name).read_bytes(), path.name
    assert {p.name for p in second} == {"f.png", "f.pdf", "f.svg"}
