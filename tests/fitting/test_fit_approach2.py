"""Approach 2 on nine published IsoFLOP sweeps, on synthetic laws, and on bad sampling."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from conftest import isoflop_grid, synthetic_losses

from slscale.errors import ConfigError
from slscale.fitting import IsoFlopFit, SamplingWarning
from slscale.fitting.laws import allocation_exponents, optimal_allocation, parametric_loss

TEXT = {"E": 1.87, "A": 521.0, "B": 1488.0, "alpha": 0.35, "beta": 0.35}
BUDGETS = [1e18, 3e18, 1e19, 3e19, 1e20, 3e20]


def _optimum(c, shift=1.0):
    """The law's own N_opt(C), times ``shift`` (to sample off-centre on purpose)."""
    return shift * optimal_allocation(c, A=TEXT["A"], B=TEXT["B"], alpha=0.35, beta=0.35)[0]


def _fit(frame, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)
        return IsoFlopFit(random_state=0, **kw).fit(
            frame["params"], frame["tokens"], frame["loss"], budget=frame["budget"]
        )


def test_published_sweeps_give_sensible_exponents(isoflops):
    """Every experiment of Czech et al.'s collection, points flagged as outliers removed.

    Recorded in benchmarks/BENCHMARKS.md (Fitting). Chinchilla-style sweeps should give
    a ≈ b ≈ 0.5 (Hoffmann et al. 2022 Approach 2: a = 0.49, b = 0.51); with C = 6ND per
    budget the two parabolas make a + b ≈ 1.
    """
    for name, group in isoflops[~isoflops["outlier"]].groupby("experiment"):
        fit = _fit(group, n_bootstrap=300)
        a, b = fit.params_["a"], fit.params_["b"]
        assert 0.40 < a < 0.60, name
        assert 0.40 < b < 0.60, name
        assert abs(a + b - 1) < 0.03, name
        assert fit.ci_["a"][0] < a < fit.ci_["a"][1], name
        assert fit.extrapolation_["n_test"] == 2 and fit.extrapolation_["mean_abs_rel_error"] < 0.3


def test_chinchilla_sweep_matches_hoffmann_approach2(isoflops):
    group = isoflops[isoflops["experiment"] == "epochai_chinchilla__massivetext__chinchilla"]
    fit = _fit(group, n_bootstrap=200)
    assert fit.params_["a"] == pytest.approx(0.49, abs=0.02)  # Hoffmann et al. 2022, Table 2
    assert fit.params_["b"] == pytest.approx(0.51, abs=0.02)


def test_recovers_allocation_of_a_known_law():
    n, d, c = isoflop_grid(BUDGETS, 11, 1.6, centre=_optimum)
    fit = IsoFlopFit(random_state=0, n_bootstrap=200).fit(
        n, d, parametric_loss(n, d, **TEXT), budget=c
    )
    a_true, b_true = allocation_exponents(TEXT["alpha"], TEXT["beta"])
    assert fit.params_["a"] == pytest.approx(a_true, abs=0.01)
    assert fit.params_["b"] == pytest.approx(b_true, abs=0.01)
    assert not fit.warnings_


def test_noisy_recovery_within_interval():
    n, d, c = isoflop_grid(BUDGETS, 11, 1.6, centre=_optimum)
    loss = synthetic_losses(TEXT, n, d, noise=0.003, seed=4)
    fit = IsoFlopFit(random_state=1, n_bootstrap=1000).fit(n, d, loss, budget=c)
    low, high = fit.ci_["a"]
    assert low < 0.5 < high and high - low < 0.15
    for row in fit.budgets_:
        assert row["n_opt_ci"][0] < row["n_opt"] < row["n_opt_ci"][1]


def test_off_centre_and_narrow_sampling_warn():
    # Every budget's sizes are centred 5x below its optimum: vertices land at the edge of
    # (or beyond) the sampled range, where Approach 2 is biased.
    n, d, c = isoflop_grid(BUDGETS, 7, 1.0, centre=lambda c: _optimum(c, 0.2))
    with pytest.warns(SamplingWarning, match="off-centre|outside the sampled range"):
        fit = IsoFlopFit(n_bootstrap=0).fit(n, d, parametric_loss(n, d, **TEXT), budget=c)
    assert fit.result_.warnings
    n, d, c = isoflop_grid(BUDGETS, 5, 0.2, centre=_optimum)
    with pytest.warns(SamplingWarning, match="spans only 0.20 decades"):
        IsoFlopFit(n_bootstrap=0).fit(n, d, parametric_loss(n, d, **TEXT), budget=c)


def test_single_budget_is_an_error():
    n, d, c = isoflop_grid([1e19], 9, 1.2)
    with pytest.raises(ConfigError, match="at least two compute budgets"):
        IsoFlopFit().fit(n, d, parametric_loss(n, d, **TEXT), budget=c)


def test_budget_without_minimum_is_left_out():
    n, d, c = isoflop_grid(BUDGETS, 9, 1.2, centre=_optimum)
    loss = parametric_loss(n, d, **TEXT)
    last = c == BUDGETS[-1]
    loss[last] = np.linspace(3.0, 2.0, last.sum())  # monotone: no parabola minimum
    with pytest.warns(SamplingWarning, match="no minimum"):
        fit = IsoFlopFit(n_bootstrap=0).fit(n, d, loss, budget=c)
    assert [r["used"] for r in fit.budgets_] == [True] * 5 + [False]


def test_budgets_grouped_from_flops_without_a_budget_column():
    n, d, _ = isoflop_grid(BUDGETS, 9, 1.2, centre=_optimum)
    jitter = np.exp(np.random.default_rng(0).normal(0, 0.02, n.size))  # ±2% read-off noise
    fit = IsoFlopFit(n_bootstrap=0).fit(n, d * jitter, parametric_loss(n, d, **TEXT))
    assert len(fit.budgets_) == len(BUDGETS)


def test_each_budgets_parabola_curvature_is_recorded_in_n_and_d():
    """The IsoFLOP figure draws L* + c (ln N - ln N*)^2 from the saved fit, so the fit records
    c; on an IsoFLOP line ln D = ln(C/6) - ln N, so the curvature in ln D is the same."""
    curvature = {1e18: 0.05, 1e19: 0.03}
    n, d, loss = [], [], []
    for budget, c in curvature.items():
        sizes = 1e8 * (budget / 1e18) ** 0.5 * np.logspace(-0.6, 0.6, 7)
        n += list(sizes)
        d += list(budget / (6 * sizes))
        loss += list(2.0 + c * np.log(sizes / sizes[3]) ** 2)
    result = IsoFlopFit(n_bootstrap=0, validate=False).fit(n, d, loss).result_
    rows = result.details["budgets"]
    assert len(rows) == 2
    for row in rows:
        assert row["curvature_n"] == pytest.approx(curvature[row["budget"]], rel=1e-9)
        assert row["curvature_d"] == pytest.approx(curvature[row["budget"]], rel=1e-9)
