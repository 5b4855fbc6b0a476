"""The batched objective and optimisers against finite differences and the plain scipy loop."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import isoflop_grid, scipy_loop, synthetic_losses
from hypothesis import given, settings
from hypothesis import strategies as st

from slscale.fitting.bootstrap import check_warm_starts, distinct_optima, refit_resamples
from slscale.fitting.objective import LogPoints, evaluate, predict_log_loss
from slscale.fitting.optimise import hoffmann_grid, lbfgs_multistart, multistart
from slscale.fitting.powerlaw import resample_counts

DELTA = 1e-3


@pytest.fixture(scope="module")
def points(chinchilla) -> LogPoints:
    return LogPoints.from_arrays(chinchilla["n_params"], chinchilla["tokens"], chinchilla["loss"])


@pytest.fixture(scope="module")
def best(points):
    return multistart(points, DELTA, hoffmann_grid())


def _objective(theta, points, weights=None):
    return evaluate(theta[None, :], points, DELTA, weights, curvature=None).value[0]


def test_hoffmann_grid():
    grid = hoffmann_grid()
    assert grid.shape == (4500, 5)
    assert np.unique(grid, axis=0).shape[0] == 4500
    assert sorted(set(grid[:, 0])) == [0, 5, 10, 15, 20, 25]  # a
    assert sorted(set(grid[:, 2])) == [-1, -0.5, 0, 0.5, 1]  # e
    assert sorted(set(grid[:, 3])) == [0, 0.5, 1, 1.5, 2]  # alpha


def test_gradient_and_exact_hessian_match_finite_differences(points):
    rng = np.random.default_rng(0)
    weights = rng.integers(0, 3, len(points)).astype(float)
    theta = np.array([6.0, 7.5, 0.6, 0.34, 0.37])
    ev = evaluate(theta[None, :], points, DELTA, weights, curvature="exact")
    step = 1e-6
    for k in range(5):
        e = np.zeros(5)
        e[k] = step
        num = _objective(theta + e, points, weights) - _objective(theta - e, points, weights)
        assert ev.gradient[0, k] == pytest.approx(num / (2 * step), rel=1e-5, abs=1e-10)
        up = evaluate((theta + e)[None, :], points, DELTA, weights, curvature=None).gradient[0]
        down = evaluate((theta - e)[None, :], points, DELTA, weights, curvature=None).gradient[0]
        np.testing.assert_allclose(
            ev.hessian[0, k],
            (up - down) / (2 * step),
            rtol=1e-4,
            atol=1e-6 * np.abs(ev.hessian[0]).max(),
        )


def test_prediction_is_the_parametric_law(points):
    theta = np.array([np.log(400.0), np.log(2000.0), np.log(1.8), 0.34, 0.36])
    n, d = np.exp(points.log_params), np.exp(points.log_tokens)
    law = 1.8 + 400.0 / n**0.34 + 2000.0 / d**0.36
    predicted = np.exp(predict_log_loss(theta, points.log_params, points.log_tokens))
    np.testing.assert_allclose(predicted, law, rtol=1e-12)


@settings(max_examples=200, deadline=None)
@given(r0=st.floats(-0.5, 0.5), r=st.floats(-0.5, 0.5))
def test_majorizer_touches_huber_from_above(r0, r):
    """Huber(r) ≤ Huber(r0) + ψ(r0)(r − r0) + ½ρ(r0)(r − r0)² with ρ = ψ(r0)/r0 (IRLS)."""

    def huber(x):
        return 0.5 * x * x if abs(x) <= DELTA else DELTA * (abs(x) - 0.5 * DELTA)

    psi = float(np.clip(r0, -DELTA, DELTA))
    rho = 1.0 if abs(r0) <= DELTA else psi / r0
    bound = huber(r0) + psi * (r - r0) + 0.5 * rho * (r - r0) ** 2
    assert huber(r) <= bound + 1e-15


def test_fast_multistart_equals_the_scipy_loop(chinchilla, best, tmp_path):
    """Same optimum as L-BFGS-B from every 15th Hoffmann start (objective to 1e-9 relative)."""
    cols = [chinchilla[k].to_numpy() for k in ("n_params", "tokens", "loss")]
    loop = scipy_loop(tmp_path, *cols, delta=DELTA, stride=15)
    assert best.value <= loop["value"] * (1 + 1e-9)
    assert loop["value"] == pytest.approx(best.value, rel=1e-9)
    np.testing.assert_allclose(best.theta[2:], loop["theta"][2:], atol=1e-4)  # e, α, β


def test_fast_multistart_equals_the_scipy_loop_on_noisy_synthetic_data(tmp_path):
    n, d, _ = isoflop_grid([1e18, 1e19, 1e20, 1e21], 7, 1.4)
    truth = {"E": 1.73, "A": 13.9, "B": 39.8, "alpha": 0.25, "beta": 0.24}
    loss = synthetic_losses(truth, n, d, 0.01, seed=3)
    fast = multistart(LogPoints.from_arrays(n, d, loss), 0.03, hoffmann_grid())
    loop = scipy_loop(tmp_path, n, d, loss, delta=0.03, stride=15)
    assert fast.value <= loop["value"] * (1 + 1e-9)


def test_reference_loop_runs_in_process(points, best):
    loop = lbfgs_multistart(points, DELTA, hoffmann_grid()[::900])
    assert loop.n_starts == 5 and loop.candidates.shape == (5, 5)
    assert loop.value >= best.value * (1 - 1e-9)


def test_warm_started_bootstrap_finds_the_full_search_optimum(points, best):
    counts = resample_counts(np.random.default_rng(11), len(points), 12)
    fits = refit_resamples(points, DELTA, distinct_optima(best, 4), counts)
    assert fits.converged.all()
    gap = check_warm_starts(points, DELTA, hoffmann_grid(), counts, fits, np.arange(3))
    assert gap < 1e-9


def test_distinct_optima_are_distinct(best):
    starts = distinct_optima(best, 4)
    assert 1 <= starts.shape[0] <= 4
    np.testing.assert_array_equal(starts[0], best.theta)
    for i in range(starts.shape[0]):
        for j in range(i):
            assert np.abs(starts[i] - starts[j]).max() > 1e-4


@pytest.mark.slow
def test_fast_multistart_equals_the_full_scipy_loop(chinchilla, best, tmp_path):
    cols = [chinchilla[k].to_numpy() for k in ("n_params", "tokens", "loss")]
    loop = scipy_loop(tmp_path, *cols, delta=DELTA, stride=1)
    assert loop["value"] == pytest.approx(best.value, rel=1e-9)
    assert best.value <= loop["value"] * (1 + 1e-9)
