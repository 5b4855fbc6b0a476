"""Approach 3: Epoch's replication of Chinchilla, recovery of known laws, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import isoflop_grid, synthetic_losses

from slscale.errors import ConfigError
from slscale.fitting import ParametricLossFit
from slscale.fitting.laws import allocation_exponents, parametric_loss

LAWS = {
    "chinchilla": {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28},
    "textless": {"E": 1.73, "A": 13.9, "B": 39.8, "alpha": 0.25, "beta": 0.24},
    "text": {"E": 1.87, "A": 521.0, "B": 1488.0, "alpha": 0.35, "beta": 0.35},
    "steep": {"E": 0.5, "A": 50.0, "B": 5000.0, "alpha": 0.6, "beta": 0.45},
}


@pytest.fixture(scope="module")
def epoch_fit(chinchilla):
    """The full procedure on Epoch's 240 points, with Epoch's 4,000 resamples."""
    return ParametricLossFit(n_bootstrap=4000, random_state=0).fit(
        chinchilla["n_params"],
        chinchilla["tokens"],
        chinchilla["loss"],
        flops=chinchilla["flops"],
    )


def test_reproduces_epoch_refit_of_chinchilla(epoch_fit):
    # Besiroglu et al. 2024 (L-BFGS, summed Huber δ=1e-3): E 1.8172, α 0.3473, β 0.3672,
    # A ≈ 477.8, B ≈ 2144 (A and B are nearly unidentified: compared loosely).
    p = epoch_fit.params_
    assert p["E"] == pytest.approx(1.8172, abs=5e-4)
    assert p["alpha"] == pytest.approx(0.3473, abs=5e-4)
    assert p["beta"] == pytest.approx(0.3672, abs=5e-4)
    assert p["A"] == pytest.approx(478, rel=0.05)
    assert p["B"] == pytest.approx(2.1e3, rel=0.1)
    assert epoch_fit.result_.exponents["a"] == pytest.approx(0.513, abs=0.003)
    assert epoch_fit.multistart_.converged
    assert epoch_fit.result_.objective["gradient_norm"] < 1e-9


def test_bootstrap_standard_errors_match_epoch(epoch_fit):
    # Epoch's bootstrap SEs: α 0.015, β 0.021, a 0.020 (two significant digits; the SE of
    # an SE from 4,000 resamples is ~1%, so ±10% covers rounding and resampling noise).
    se = epoch_fit.se_
    assert se["alpha"] == pytest.approx(0.015, rel=0.10)
    assert se["beta"] == pytest.approx(0.021, rel=0.10)
    assert se["a"] == pytest.approx(0.020, rel=0.10)
    low, high = epoch_fit.ci_["a"]
    assert low < epoch_fit.result_.exponents["a"] < high
    assert epoch_fit.result_.objective["bootstrap"]["converged_fraction"] == 1.0


def test_extrapolation_to_the_largest_budget_is_reported(epoch_fit):
    ex = epoch_fit.extrapolation_
    assert ex["scheme"] == "leave-largest-budget-out" and ex["quantity"] == "loss"
    assert ex["n_train"] + ex["n_test"] == 240 and ex["n_test"] >= 3
    assert ex["held_out_flops"][0] > 2e21  # Chinchilla's 3e21 budget and above
    assert 0 < ex["mean_abs_rel_error"] < 0.05


def test_allocation_intervals_at_any_compute(epoch_fit):
    n_opt, d_opt = epoch_fit.optimal_allocation(5.76e23)  # Chinchilla's budget
    assert 6 * n_opt * d_opt == pytest.approx(5.76e23, rel=1e-9)
    bands = epoch_fit.allocation_ci([1e21, 5.76e23])
    assert np.all(bands["n_opt"][0] < [*epoch_fit.optimal_allocation([1e21, 5.76e23])[0]])
    assert np.all(bands["n_opt"][1] > epoch_fit.optimal_allocation([1e21, 5.76e23])[0])
    low, high = epoch_fit.ci_["G"]
    assert low < epoch_fit.result_.details["G"] < high


@pytest.mark.parametrize("name", sorted(LAWS))
def test_recovers_noise_free_law_exactly(name):
    truth = LAWS[name]
    n, d, _ = isoflop_grid([1e17, 1e18, 1e19, 1e20, 1e21], 9, 1.5)
    fit = ParametricLossFit(n_bootstrap=0, validate=False).fit(n, d, parametric_loss(n, d, **truth))
    for key, value in truth.items():
        assert fit.params_[key] == pytest.approx(value, rel=1e-6), key
    assert fit.objective_ < 1e-20


@pytest.mark.parametrize("name", ["chinchilla", "textless", "text"])
def test_recovers_noisy_law_within_bootstrap_error(name):
    truth = LAWS[name]
    n, d, _ = isoflop_grid([1e17, 1e18, 1e19, 1e20, 1e21], 9, 1.5)
    loss = synthetic_losses(truth, n, d, noise=0.005, seed=1)
    fit = ParametricLossFit(n_bootstrap=300, random_state=2, validate=False).fit(n, d, loss)
    a_true, _ = allocation_exponents(truth["alpha"], truth["beta"])
    estimates = {**fit.params_, "a": fit.result_.exponents["a"]}
    for key, value in {**truth, "a": a_true}.items():
        if key in ("A", "B"):
            continue
        assert abs(estimates[key] - value) < 4 * fit.se_[key], key
    assert abs(estimates["a"] - a_true) < 0.05


def test_summed_not_mean_huber(chinchilla):
    """The objective is a sum: doubling every point doubles it and leaves the optimum."""
    n, d, y = (chinchilla[k].to_numpy()[::2] for k in ("n_params", "tokens", "loss"))
    one = ParametricLossFit(n_bootstrap=0, validate=False).fit(n, d, y)
    two = ParametricLossFit(n_bootstrap=0, validate=False).fit(
        np.tile(n, 2), np.tile(d, 2), np.tile(y, 2)
    )
    assert two.objective_ == pytest.approx(2 * one.objective_, rel=1e-9)
    assert two.params_["alpha"] == pytest.approx(one.params_["alpha"], abs=1e-8)


@pytest.mark.parametrize(
    ("n", "d", "loss", "match"),
    [
        ([1e8, 2e8, 4e8, 8e8, 1e9], [1e9] * 5, [3.0] * 5, "at least 6 points"),
        ([1e8] * 8, np.logspace(9, 10, 8), np.linspace(3, 2.5, 8), "two distinct n_params"),
        (np.logspace(8, 9, 8), [1e9] * 8, np.linspace(3, 2.5, 8), "two distinct tokens"),
        (
            np.logspace(8, 9, 8),
            np.logspace(9, 10, 8),
            [3, 2.9, np.nan, 2.7, 2.6, 2.5, 2.4, 2.3],
            "column 'loss': row 2",
        ),
        (
            np.logspace(8, 9, 8),
            np.logspace(9, 10, 8),
            [3, 2.9, 2.8, -1, 2.6, 2.5, 2.4, 2.3],
            "column 'loss': row 3",
        ),
        (
            [0, *np.logspace(8, 9, 7)],
            np.logspace(9, 10, 8),
            np.linspace(3, 2.5, 8),
            "column 'n_params': row 0",
        ),
        (np.logspace(8, 9, 8), np.logspace(9, 10, 7), np.linspace(3, 2.5, 8), "lengths"),
    ],
)
def test_bad_input_raises_config_error(n, d, loss, match):
    with pytest.raises(ConfigError, match=match):
        ParametricLossFit(n_bootstrap=0).fit(n, d, loss)


def test_bad_hyper_parameters_raise():
    n, d, _ = isoflop_grid([1e18, 1e19], 5, 1.0)
    loss = parametric_loss(n, d, **LAWS["text"])
    with pytest.raises(ConfigError, match="huber_delta"):
        ParametricLossFit(huber_delta=0).fit(n, d, loss)
    with pytest.raises(ConfigError, match="n_bootstrap"):
        ParametricLossFit(n_bootstrap=-1).fit(n, d, loss)
    with pytest.raises(ConfigError, match="starts"):
        ParametricLossFit(starts=[[1.0, 2.0]], n_bootstrap=0).fit(n, d, loss)


def test_same_seed_same_intervals(chinchilla):
    cols = [chinchilla[k].to_numpy()[::3] for k in ("n_params", "tokens", "loss")]
    one = ParametricLossFit(n_bootstrap=50, random_state=7, validate=False).fit(*cols)
    two = ParametricLossFit(n_bootstrap=50, random_state=7, validate=False).fit(*cols)
    other = ParametricLossFit(n_bootstrap=50, random_state=8, validate=False).fit(*cols)
    assert one.ci_ == two.ci_
    assert one.ci_ != other.ci_
