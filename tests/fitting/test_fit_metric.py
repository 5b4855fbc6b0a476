"""Metric power laws Q = a·C^b: selection rules, recovery, SIMS Fig. 1, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from slscale.errors import ConfigError
from slscale.fitting import MetricPowerLaw, load_reference

BUDGETS = np.array([1e18, 3e18, 1e19, 3e19, 1e20, 3e20, 1e21])


def _sweep(a, b, noise, seed, runs_per_budget=4):
    """Several runs per budget: the best one follows the law, the others fall short."""
    rng = np.random.default_rng(seed)
    flops = np.repeat(BUDGETS, runs_per_budget)
    shortfall = np.tile(np.r_[0.0, rng.uniform(0.02, 0.1, runs_per_budget - 1)], BUDGETS.size)
    law = a * flops**b * np.exp(rng.normal(0, noise, flops.size))
    return flops, law * (1 - shortfall)


def test_best_per_budget_recovers_the_law():
    flops, value = _sweep(0.19, 0.026, noise=0.0, seed=0)
    fit = MetricPowerLaw(random_state=0).fit(flops, value, budget=flops)
    assert fit.params_["a"] == pytest.approx(0.19, rel=1e-9)
    assert fit.params_["b"] == pytest.approx(0.026, rel=1e-9)
    assert fit.points_["flops"].size == BUDGETS.size


def test_noisy_law_lies_in_its_interval():
    flops, value = _sweep(0.37, 0.018, noise=0.004, seed=1)
    fit = MetricPowerLaw(random_state=0, n_bootstrap=2000).fit(flops, value)
    low, high = fit.ci_["b"]
    assert low < 0.018 < high
    assert high - low < 0.01
    ex = fit.extrapolation_
    assert ex["n_test"] == 1 and ex["held_out_flops"] == [1e21, 1e21]
    assert ex["mean_abs_rel_error"] < 0.02


def test_envelope_keeps_only_points_that_beat_all_cheaper_ones():
    flops = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0]) * 1e18
    value = np.array([0.50, 0.48, 0.55, 0.55, 0.60, 0.58])
    fit = MetricPowerLaw(method="envelope", n_bootstrap=0, validate=False).fit(flops, value)
    np.testing.assert_array_equal(fit.points_["value"], [0.50, 0.55, 0.60])
    lower = MetricPowerLaw(
        method="envelope", higher_is_better=False, n_bootstrap=0, validate=False
    ).fit(flops, value)
    np.testing.assert_array_equal(lower.points_["value"], [0.50, 0.48])


def test_olmo_ladder_envelope_with_runs(olmo_curves):
    fit = MetricPowerLaw(method="envelope", random_state=0, n_bootstrap=300).fit(
        olmo_curves["flops_6nd"], olmo_curves["hellaswag"], run_id=olmo_curves["run_id"]
    )
    assert 0 < fit.params_["b"] < 0.3 and fit.ci_["b"][0] < fit.params_["b"] < fit.ci_["b"][1]
    ex = fit.extrapolation_
    assert ex["n_test"] >= 1 and ex["mean_abs_rel_error"] < 0.15
    lower = MetricPowerLaw(method="envelope", higher_is_better=False, n_bootstrap=0).fit(
        olmo_curves["flops_6nd"], olmo_curves["loss"], run_id=olmo_curves["run_id"]
    )
    assert lower.params_["b"] < 0  # loss falls with compute


def test_sims_interleaved_law_reproduces_sims_7b():
    # SIMS-7B: 6.86e20 FLOPs, sSC 66.7 (SIMS Table 3); the Fig. 1 law gives ~66%.
    law = load_reference("sims2025_interleaved_ssc")
    assert float(law.predict_metric(6.86e20)) == pytest.approx(0.667, abs=0.01)


def test_result_is_self_describing():
    flops, value = _sweep(0.26, 0.017, noise=0.002, seed=3)
    result = (
        MetricPowerLaw(random_state=0, n_bootstrap=50)
        .fit(flops, value, conventions={"metric": "sSC"}, label="textless sSC")
        .result_
    )
    assert result.method == "metric" and result.law == "metric_power_law"
    assert result.params.keys() == {"a", "b"} and result.exponents == {"b": result.params["b"]}
    assert sum(result.data["fitted"]) == result.n_points == BUDGETS.size
    assert result.conventions["higher_is_better"] is True


@pytest.mark.parametrize(
    ("flops", "value", "match"),
    [
        ([1e18, 1e18, 1e18], [0.5, 0.6, 0.55], "two or more compute budgets"),
        ([1e18, 1e19, 1e20], [0.5, 0.0, 0.6], "column 'value': row 1"),
        ([1e18, np.nan, 1e20], [0.5, 0.6, 0.7], "column 'flops': row 1"),
        ([1e18, 1e19], [0.5, 0.6, 0.7], "lengths"),
    ],
)
def test_bad_input(flops, value, match):
    with pytest.raises(ConfigError, match=match):
        MetricPowerLaw().fit(flops, value)


def test_unknown_selection_method():
    with pytest.raises(ConfigError, match="method = 'median'"):
        MetricPowerLaw(method="median").fit([1e18, 1e19], [0.5, 0.6])  # type: ignore[arg-type]
