"""The design criterion (slscale.fitting.design): derivatives, noise scale, cell ranking, greedy
choice under a budget, and agreement with a preposterior simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from plan_next_helpers import CHINCHILLA_LIKE, isoflop, noisy_loss, small_fit

from slscale.errors import ConfigError
from slscale.fitting import FitResult, MetricPowerLaw
from slscale.fitting.design import (
    MetricDesign,
    ParametricDesign,
    huber_scale,
    point_rows,
    quantity_gradient,
    quantity_values,
    theta_of,
)
from slscale.fitting.design_sim import simulate_widths
from slscale.fitting.laws import allocation_exponents, optimal_allocation, optimal_loss
from slscale.fitting.objective import predict_log_loss

THETA = theta_of(CHINCHILLA_LIKE)[None]


@pytest.fixture(scope="module")
def fit():
    return small_fit()


def test_quantities_match_the_closed_forms():
    law = {k: CHINCHILLA_LIKE[k] for k in ("A", "B", "alpha", "beta")}
    n_opt, d_opt = optimal_allocation(1e21, **law)
    a, b = allocation_exponents(law["alpha"], law["beta"])
    assert quantity_values("a", THETA)[0] == pytest.approx(a, rel=1e-12)
    assert quantity_values("b", THETA)[0] == pytest.approx(b, rel=1e-12)
    assert quantity_values("n_opt", THETA, 1e21)[0] == pytest.approx(np.log(n_opt), rel=1e-12)
    assert quantity_values("d_opt", THETA, 1e21)[0] == pytest.approx(np.log(d_opt), rel=1e-12)
    assert quantity_values("tokens_per_param", THETA, 1e21)[0] == pytest.approx(
        np.log(d_opt / n_opt), rel=1e-12
    )
    loss = optimal_loss(1e21, E=CHINCHILLA_LIKE["E"], **law)
    assert quantity_values("loss", THETA, 1e21)[0] == pytest.approx(loss, rel=1e-12)


def test_gradient_of_a_is_analytic():
    alpha, beta = CHINCHILLA_LIKE["alpha"], CHINCHILLA_LIKE["beta"]
    grad = quantity_gradient("a", THETA, None)[0]
    expected = [0, 0, 0, -beta / (alpha + beta) ** 2, alpha / (alpha + beta) ** 2]
    np.testing.assert_allclose(grad, expected, atol=1e-8)


def test_point_rows_are_the_derivatives_of_the_log_loss():
    log_n, log_d = np.log([1e8, 3e9]), np.log([2e9, 5e10])
    rows = point_rows(THETA, log_n, log_d)[0]
    for k in range(5):
        step = np.zeros(5)
        step[k] = 1e-6
        diff = predict_log_loss(THETA[0] + step, log_n, log_d)
        diff -= predict_log_loss(THETA[0] - step, log_n, log_d)
        np.testing.assert_allclose(rows[:, k], diff / 2e-6, rtol=1e-6, atol=1e-10)


def test_huber_scale_between_least_squares_and_median_regression():
    r = np.random.default_rng(0).normal(0.0, 0.02, 200_000)
    sigma = huber_scale(r, None, n_fitted=0)
    assert sigma == pytest.approx(0.02, rel=0.01)
    assert huber_scale(r, 10.0, n_fitted=0) == pytest.approx(sigma, rel=1e-6)  # least squares
    # δ ≪ σ: the median's efficiency, τ² = πσ²/2
    assert huber_scale(r, 1e-6, n_fitted=0) == pytest.approx(sigma * math.sqrt(math.pi / 2), 1e-3)
    with pytest.raises(ConfigError, match="zero residuals"):
        huber_scale(np.zeros(10), 1e-3)


def _known_law_result(n, d, seed=0) -> FitResult:
    """A fit at the true law (no bootstrap: the criterion at θ = truth only)."""
    y = noisy_loss(CHINCHILLA_LIKE, n, d, 0.01, seed)
    return FitResult(
        method="approach3",
        law="parametric_loss",
        params=CHINCHILLA_LIKE,
        n_points=n.size,
        data={"n_params": n, "tokens": d, "loss": y},
        conventions={"huber_delta": 1e-3},
    )


def test_informative_cell_ranks_above_uninformative():
    """Constructed case: an IsoFLOP study plus ten runs so large that their loss is E. A new
    run of that kind tells nothing more about α and β; a run at ten times the largest budget
    with an unusual N/D split pins down their ratio."""
    n, d = isoflop(CHINCHILLA_LIKE, (1e18, 3e18, 1e19))
    n, d = np.r_[n, np.full(10, 1e15)], np.r_[d, np.full(10, 1e18)]
    design = ParametricDesign(quantity="a").fit(_known_law_result(n, d))
    cells_n = np.array([2e15, 1.2e8])  # [E-dominated again, 1e20 FLOPs at D/N ≈ 1,200]
    cells_d = np.array([3e18, 1e20 / 6 / 1.2e8])
    alone = [design.width_ratio(cells_n[[i]], cells_d[[i]]) for i in range(2)]
    assert alone[0] > 0.9999
    assert alone[1] < 0.8
    assert design.select(cells_n, cells_d, cost=[1.0, 1.0], budget=1.0).index.tolist() == [1]


def test_greedy_respects_budget_and_run_limit(fit):
    design = ParametricDesign(quantity="a", random_state=0).fit(fit)
    n, d = isoflop(CHINCHILLA_LIKE, (3e19, 1e20), sizes=7)
    cost = 6 * n * d
    pick = design.select(n, d, cost, budget=2.5e20)
    assert pick.total_cost <= 2.5e20 and len(set(pick.index)) == pick.index.size
    assert np.all(np.diff(pick.width_ratio) < 0)  # every pick narrows the interval
    chosen = (n[pick.index], d[pick.index])
    assert pick.width_ratio[-1] == pytest.approx(design.width_ratio(*chosen), rel=1e-6)
    assert design.select(n, d, cost, budget=1e22, max_runs=3).index.size == 3
    assert design.select(n, d, cost, budget=cost.min() / 2).index.size == 0
    with pytest.raises(ConfigError, match="cost"):
        design.select(n, d, cost[:3], budget=1e22)


def test_quantities_at_a_target_need_one(fit):
    with pytest.raises(ConfigError, match="--target-flops"):
        ParametricDesign(quantity="n_opt").fit(fit)
    with pytest.raises(ConfigError, match="choose one of"):
        ParametricDesign(quantity="gamma").fit(fit)


def test_criterion_agrees_with_preposterior_simulation(fit):
    """The delta-method width ratio at θ̂ against refitting 150 simulated studies, for the
    next IsoFLOP budget and for the planner's own cells (seeded, so deterministic)."""
    local = ParametricDesign(quantity="a", n_draws=1).fit(fit)
    iso = isoflop(CHINCHILLA_LIKE, (3e19,))
    n, d = np.meshgrid(np.logspace(7.5, 10, 11), np.logspace(18, 20, 9))
    tokens = (d / (6 * n)).ravel()
    keep = (tokens / n.ravel() >= 1) & (tokens / n.ravel() <= 500)
    n, tokens = n.ravel()[keep], tokens[keep]
    chosen = local.select(n, tokens, 6 * n * tokens, budget=1.5e20)
    planned = (n[chosen.index], tokens[chosen.index])
    for cells in (iso, planned):
        sim = simulate_widths(fit, "a", *cells, replicas=150, random_state=3)
        assert sim.replicas == 150
        assert local.width_ratio(*cells) == pytest.approx(sim.ratio, rel=0.15)
    assert local.width_ratio(*planned) < local.width_ratio(*iso)


def test_metric_design_is_exact_least_squares():
    flops = np.array([1e18, 3e18, 1e19, 3e19])
    value = 0.3 * flops**0.02 * np.array([1.0, 1.01, 0.99, 1.0])
    result = MetricPowerLaw(n_bootstrap=200, random_state=0, validate=False).fit(flops, value)
    design = MetricDesign(target_flops=1e22).fit(result.result_)
    x = np.column_stack([np.ones(4), np.log(flops)])
    g = np.array([1.0, np.log(1e22)])
    sd = design.scale_ * math.sqrt(g @ np.linalg.inv(x.T @ x) @ g)
    assert design.delta_width_ == pytest.approx(2 * 1.959964 * sd, rel=1e-5)
    pick = design.select([1e20, 1e21], cost=[1e20, 1e21], budget=1e21)
    assert pick.index.tolist() == [1]  # closest to C*, within budget
    new = np.vstack([x, [1.0, np.log(1e21)]])
    after = design.scale_ * math.sqrt(g @ np.linalg.inv(new.T @ new) @ g)
    assert pick.delta_width[-1] == pytest.approx(2 * 1.959964 * after, rel=1e-5)
