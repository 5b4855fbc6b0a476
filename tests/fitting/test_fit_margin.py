"""Margin laws m + s·log10(C/1e12): recovery with negative margins, intervals, comparison."""

from __future__ import annotations

import numpy as np
import pytest

from slscale.errors import ConfigError
from slscale.fitting import FitResult, MarginLaw, MetricPowerLaw, compare_arms
from slscale.fitting.laws import flops_for_margin, margin_law

BUDGETS = np.array([1e11, 3e11, 1e12, 3e12, 1e13])


def _sweep(m, s, noise, seed, runs_per_budget=3):
    """Runs per budget: the best follows the law, the others fall short by 0.01-0.05 nats."""
    rng = np.random.default_rng(seed)
    flops = np.repeat(BUDGETS, runs_per_budget)
    shortfall = np.tile(np.r_[0.0, rng.uniform(0.01, 0.05, runs_per_budget - 1)], BUDGETS.size)
    law = m + s * np.log10(flops / 1e12) + rng.normal(0, noise, flops.size)
    return flops, law - shortfall


def test_recovers_a_law_through_zero():
    # Margins go from -0.02 (worse than chance) to +0.02 nats: a power law cannot fit these.
    flops, value = _sweep(0.0, 0.02, noise=0.0, seed=0)
    fit = MarginLaw(random_state=0).fit(flops, value, budget=flops)
    assert fit.params_ == pytest.approx({"m": 0.0, "s": 0.02}, abs=1e-12)
    np.testing.assert_allclose(fit.points_["value"], 0.02 * np.log10(BUDGETS / 1e12), atol=1e-12)
    res = fit.result_
    assert res.law == "margin_log_linear" and res.method == "margin"
    assert res.exponents == {"s": pytest.approx(0.02)}
    np.testing.assert_allclose(res.predict_margin([1e14]), 0.04)
    with pytest.raises(Exception, match="not a metric_power_law"):
        res.predict_metric([1e12])
    with pytest.raises(ConfigError, match="must be finite and > 0"):  # why the law exists
        MetricPowerLaw(n_bootstrap=0).fit(flops, value, budget=flops)


def test_noisy_law_lies_in_its_interval_and_round_trips():
    flops, value = _sweep(0.05, 0.03, noise=0.002, seed=1)
    fit = MarginLaw(random_state=0, n_bootstrap=2000).fit(flops, value, budget=flops)
    low, high = fit.ci_["s"]
    assert low < 0.03 < high and high - low < 0.01
    assert fit.extrapolation_["n_test"] == 1
    back = FitResult.from_json(fit.result_.to_json())
    np.testing.assert_allclose(back.predict_margin(BUDGETS), fit.predict(BUDGETS))


def test_compare_arms_reads_the_slope_and_the_compute_to_a_margin():
    flops, fast = _sweep(0.01, 0.04, noise=0.001, seed=2)
    _, slow = _sweep(0.01, 0.01, noise=0.001, seed=3)
    a = MarginLaw(random_state=0, n_bootstrap=500).fit(flops, fast, budget=flops).result_
    b = MarginLaw(random_state=0, n_bootstrap=500).fit(flops, slow, budget=flops).result_
    cmp = compare_arms(a, b, target=0.05)
    assert cmp.exponent_name == "s" and cmp.allocation is None
    assert cmp.exponents[0].value == pytest.approx(0.04, abs=0.003)
    assert cmp.exponents[1].ci[1] < cmp.exponents[0].ci[0]  # the slopes are told apart
    # 0.05 nats: one decade past 1e12 for the fast arm, four for the slow one.
    assert np.log10(cmp.flops_to_target[0].value) == pytest.approx(13, abs=0.15)
    assert np.log10(cmp.flops_to_target[1].value) == pytest.approx(16, abs=0.5)


def test_flops_for_margin_inverts_the_law():
    c = flops_for_margin(0.07, m=0.01, s=0.02)
    assert float(c) == pytest.approx(1e15)
    assert float(margin_law(c, m=0.01, s=0.02)) == pytest.approx(0.07)
    assert float(flops_for_margin(0.0, m=0.01, s=-0.02)) == pytest.approx(10**12.5)
    assert float(flops_for_margin(0.07, m=0.01, s=0.0)) == np.inf


def test_margin_figure_draws_laws_through_zero(tmp_path):
    from slscale.analysis.output import save_figure
    from slscale.analysis.plot_metric import margin_vs_compute

    flops, below = _sweep(-0.03, 0.01, noise=0.001, seed=4)  # negative at every budget
    _, across = _sweep(0.0, 0.02, noise=0.001, seed=5)
    fits = {
        arm: MarginLaw(random_state=0, n_bootstrap=200).fit(flops, v, budget=flops).result_
        for arm, v in (("textless", below), ("interleaved", across))
    }
    fig = margin_vs_compute({"sSC": fits})
    ax = fig.axes[0]
    low, high = ax.get_ylim()
    assert ax.get_yscale() == "linear" and low < below.min() and high > across.max()
    assert "nats per token" in ax.get_ylabel()
    files = save_figure(fig, tmp_path, "margin", ("png",))
    assert all(f.stat().st_size > 10_000 for f in files)
