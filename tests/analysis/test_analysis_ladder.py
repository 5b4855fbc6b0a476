"""The IsoFLOP and predicted-vs-observed figures mark WSD ladder branches apart from
independent runs: another marker, and a legend entry for each design."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from slscale.analysis import plot_loss
from slscale.analysis.figures import ladder_branches
from slscale.analysis.study import Study
from slscale.fitting.approach2 import IsoFlopFit
from slscale.fitting.approach3 import ParametricLossFit


def isoflop_points() -> pd.DataFrame:
    """Seven sizes per budget around the Chinchilla optimum, losses of a known law."""
    rows = []
    for budget in (1e17, 1e18, 1e19):
        mid = 0.2 * (budget / 6) ** 0.5
        for size in mid * np.logspace(-0.6, 0.6, 7):
            tokens = budget / (6 * size)
            loss = 1.87 + 521.0 / size**0.35 + 1488.0 / tokens**0.35
            rows.append({"n_params": size, "tokens": tokens, "flops": budget, "loss": loss})
    frame = pd.DataFrame(rows)
    frame["loss"] *= np.exp(np.random.default_rng(0).normal(0, 0.003, len(frame)))
    return frame


@pytest.fixture(scope="module")
def points() -> pd.DataFrame:
    return isoflop_points()


def ladder_of(points: pd.DataFrame) -> pd.DataFrame:
    """Every other point of the two smaller budgets, as if they were ladder branches."""
    return points[(points["flops"] < 1e19)].iloc[::2][["n_params", "tokens", "loss"]]


def marked(ax) -> int:
    return sum(len(c.get_offsets()) for c in ax.collections if c.get_gid() == plot_loss.LADDER_GID)


def legend_texts(ax) -> list[str]:
    return [t.get_text() for t in ax.get_legend().get_texts()]


def test_isoflop_profiles_draw_ladder_branches_with_their_own_marker(points):
    fit = IsoFlopFit(n_bootstrap=0).fit(
        points["n_params"], points["tokens"], points["loss"], budget=points["flops"]
    )
    ladder = ladder_of(points)
    fig = plot_loss.isoflop_curves({"textless": fit.result_}, {"textless": ladder})
    (ax,) = fig.axes
    assert marked(ax) == len(ladder) == 7
    scattered = sum(len(c.get_offsets()) for c in ax.collections if c.get_label() != "")
    assert scattered >= len(points)
    texts = legend_texts(ax)
    assert plot_loss.LADDER_LABEL in texts and plot_loss.INDEPENDENT_LABEL in texts
    assert sum(t.startswith("$C$") for t in texts) == 3  # one entry per budget still
    plt.close(fig)

    plain = plot_loss.isoflop_curves({"textless": fit.result_})
    assert marked(plain.axes[0]) == 0
    assert plot_loss.LADDER_LABEL not in legend_texts(plain.axes[0])
    plt.close(plain)


def test_predicted_vs_observed_marks_ladder_branches(points):
    fit = ParametricLossFit(n_bootstrap=0, validate=False).fit(
        points["n_params"], points["tokens"], points["loss"]
    )
    ladder = ladder_of(points)
    fig = plot_loss.predicted_vs_observed({"textless": fit.result_}, {"textless": ladder})
    (ax,) = fig.axes
    assert marked(ax) == len(ladder)
    assert plot_loss.LADDER_LABEL in legend_texts(ax)
    plt.close(fig)


def test_the_figures_take_the_branches_from_the_studys_scaling_runs(points):
    runs = points.assign(
        run_id=[f"r{i}" for i in range(len(points))],
        arm="textless",
        **{"branch.parent": [("trunk" if i % 3 == 0 else None) for i in range(len(points))]},
    )
    empty = pd.DataFrame()
    ids = frozenset(runs["run_id"][1:])  # r0, a branch, is not a scaling run
    study = Study(runs=runs, curves=empty, scores=empty, scaling_ids=ids)
    ((arm, branches),) = ladder_branches(study).items()
    assert arm == "textless"
    assert list(branches.index) == [i for i in range(3, len(points), 3)]
    assert list(branches.columns) == ["n_params", "tokens", "loss"]
    no_ladder = Study(
        runs=runs.drop(columns="branch.parent"), curves=empty, scores=empty, scaling_ids=ids
    )
    assert ladder_branches(no_ladder) == {}
