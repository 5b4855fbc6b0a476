"""Comparing two arms through their laws (SIMS: interleaved vs textless)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import isoflop_grid, synthetic_losses

from slscale.errors import ConfigError
from slscale.fitting import MetricPowerLaw, ParametricLossFit, compare_arms, load_reference
from slscale.fitting.laws import flops_for_loss, optimal_loss


def test_sims_interleaved_vs_textless_ssc():
    inter = load_reference("sims2025_interleaved_ssc")
    textless = load_reference("sims2025_textless_ssc")
    cmp = compare_arms(inter, textless, target=0.60)
    assert cmp.exponent_ratio.value == pytest.approx(0.026 / 0.017)
    c_inter = (0.60 / 0.19) ** (1 / 0.026)
    c_textless = (0.60 / 0.26) ** (1 / 0.017)
    assert cmp.flops_to_target[0].value == pytest.approx(c_inter, rel=1e-9)
    assert cmp.flops_to_target[1].value == pytest.approx(c_textless, rel=1e-9)
    assert cmp.compute_multiplier.value == pytest.approx(c_textless / c_inter, rel=1e-9)
    assert cmp.compute_multiplier.value > 1  # interleaved reaches 60% sSC with less compute
    assert cmp.compute_multiplier.ci is None and cmp.allocation is None
    assert cmp.to_dict()["labels"] == [
        "Interleaved SLM (SIMS) sSC",
        "Textless SLM (Cuervo & Marxer) sSC",
    ]


def _metric_fit(a, b, seed):
    rng = np.random.default_rng(seed)
    flops = np.logspace(18, 21, 7)
    value = a * flops**b * np.exp(rng.normal(0, 0.003, flops.size))
    return MetricPowerLaw(random_state=seed, n_bootstrap=500).fit(flops, value).result_


def test_metric_comparison_has_intervals():
    cmp = compare_arms(_metric_fit(0.19, 0.026, 0), _metric_fit(0.26, 0.017, 1), target=0.6)
    low, high = cmp.exponent_ratio.ci
    assert low < cmp.exponent_ratio.value < high
    assert low < 0.026 / 0.017 < high
    assert (
        cmp.compute_multiplier.ci[0] < cmp.compute_multiplier.value < cmp.compute_multiplier.ci[1]
    )


def test_allocation_difference_of_parametric_laws():
    """An arm whose data term decays faster (bigger β) should put more compute into N."""
    n, d, _ = isoflop_grid([1e17, 1e18, 1e19, 1e20], 7, 1.4)
    more_n = {"E": 1.7, "A": 400.0, "B": 400.0, "alpha": 0.30, "beta": 0.40}  # a = 0.571
    less_n = {"E": 1.7, "A": 400.0, "B": 400.0, "alpha": 0.40, "beta": 0.30}  # a = 0.429
    fits = [
        ParametricLossFit(n_bootstrap=200, random_state=0, validate=False)
        .fit(n, d, synthetic_losses(law, n, d, 0.003, seed=i), label=name)
        .result_
        for i, (name, law) in enumerate((("interleaved", more_n), ("textless", less_n)))
    ]
    cmp = compare_arms(*fits, target=2.2, flops=1e21)
    alloc = cmp.allocation
    assert alloc["more_into_model_size"] == "interleaved"
    low, high = alloc["a_difference"].ci
    assert low < 4 / 7 - 3 / 7 < high
    assert alloc["difference_excludes_zero"]
    assert alloc["n_opt_ratio"].value > 1 and alloc["d_opt_ratio"].value < 1
    # compute to reach L = 2.2 along each arm's compute-optimal frontier, in closed form
    need = [flops_for_loss(2.2, **f.params) for f in fits]
    assert float(optimal_loss(need[0], **fits[0].params)) == pytest.approx(2.2, rel=1e-9)
    assert cmp.compute_multiplier.value == pytest.approx(float(need[1] / need[0]), rel=1e-9)


def test_mismatched_or_unreachable_targets():
    metric = load_reference("sims2025_interleaved_ssc")
    loss = load_reference("textless_cuervo_marxer2024")
    with pytest.raises(ConfigError, match="cannot compare"):
        compare_arms(metric, loss)
    with pytest.raises(ConfigError, match="never reached"):
        compare_arms(loss, load_reference("text_muennighoff2023"), target=1.5)  # below E


def test_an_arm_that_does_not_scale_gives_an_unbounded_ratio_not_an_error():
    """Equal best scores at every budget fit b = 0 exactly; the ratio of exponents over it has
    no finite value, and the comparison still reports the rest."""
    flops = np.logspace(12, 13, 3)
    flat = MetricPowerLaw(random_state=0, n_bootstrap=100).fit(flops, [0.521] * 3).result_
    assert flat.params["b"] == 0.0
    cmp = compare_arms(_metric_fit(0.19, 0.026, 0), flat)
    assert cmp.exponent_ratio.value == np.inf
    assert cmp.exponents[1].value == 0.0 and cmp.exponents[0].value == pytest.approx(0.026, 0.1)
