"""Approach 1: envelope of training curves, on a known law and on AI2's OLMo ladder."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import isoflop_grid

from slscale.errors import ConfigError
from slscale.fitting import EnvelopeFit
from slscale.fitting.laws import optimal_allocation, parametric_loss

TEXT = {"E": 1.87, "A": 521.0, "B": 1488.0, "alpha": 0.35, "beta": 0.35}


def _curves(law, budgets=(1e17, 1e18, 1e19, 1e20), sizes_per_budget=11, points=60):
    """IsoFLOP-style sweep: per budget, sizes around the optimum trained to that budget; each
    run logs the law's loss along training (no schedule effects), in long format."""
    n, d, _ = isoflop_grid(budgets, sizes_per_budget, 1.6, centre=lambda c: _optimum(law, c))
    rows = []
    for i, (size, tokens_max) in enumerate(zip(n, d, strict=True)):
        tokens = np.logspace(np.log10(tokens_max) - 2, np.log10(tokens_max), points)
        rows.append(
            pd.DataFrame(
                {
                    "run_id": f"run{i}",
                    "n_params": size,
                    "tokens": tokens,
                    "flops": 6 * size * tokens,
                    "loss": parametric_loss(size, tokens, **law),
                }
            )
        )
    return pd.concat(rows, ignore_index=True)


def _optimum(law, c):
    return optimal_allocation(c, A=law["A"], B=law["B"], alpha=law["alpha"], beta=law["beta"])[0]


def _fit(frame, **kw):
    return EnvelopeFit(random_state=0, **kw).fit(
        frame["run_id"], frame["n_params"], frame["flops"], frame["loss"], tokens=frame["tokens"]
    )


def test_recovers_allocation_exponents_of_a_known_law():
    # N_opt ∝ C^a with a = β/(α+β) = 0.5; sizes 0.16 dex apart make the envelope's stairs
    # fine enough for ±0.03.
    fit = _fit(_curves(TEXT), n_bootstrap=200)
    assert fit.params_["a"] == pytest.approx(0.5, abs=0.03)
    assert fit.params_["b"] == pytest.approx(0.5, abs=0.03)
    assert fit.ci_["a"][0] <= fit.params_["a"] <= fit.ci_["a"][1]
    ex = fit.extrapolation_
    assert ex["n_test"] >= 2 and ex["held_out_flops"][0] > 1e19
    assert ex["mean_abs_rel_error"] < 0.25  # one stair of the envelope is 0.16 dex = 45%


def test_olmo_ladder_envelope(olmo_curves):
    """Real curves: 5 sizes × 5 token budgets of AI2's OLMo ladder (C4 validation loss)."""
    fit = _fit(
        olmo_curves.rename(columns={"n_params_non_embedding": "n_params", "flops_6nd": "flops"}),
        n_bootstrap=200,
    )
    env = fit.envelope_
    # Bigger models take over as compute grows; with FLOPs = 6ND exactly, a + b = 1.
    assert np.corrcoef(np.log(env["flops"]), np.log(env["n_opt"]))[0, 1] > 0.8
    assert fit.params_["a"] + fit.params_["b"] == pytest.approx(1.0, abs=1e-6)
    assert 0.2 < fit.params_["a"] < 0.6
    assert set(env["run_id"]) <= set(olmo_curves["run_id"])
    # Beyond the 5xC runs only the 3B model (the largest) wins: nothing interior to check.
    assert "no interior point" in fit.result_.extrapolation["skipped"]


def test_tokens_default_to_flops_over_6n():
    frame = _curves(TEXT, budgets=(1e17, 1e18))
    with_tokens = _fit(frame, n_bootstrap=0)
    without = EnvelopeFit(n_bootstrap=0).fit(
        frame["run_id"], frame["n_params"], frame["flops"], frame["loss"]
    )
    assert without.params_ == pytest.approx(with_tokens.params_, rel=1e-9)


def test_degenerate_curves_raise():
    frame = _curves(TEXT, budgets=(1e18,), sizes_per_budget=1)
    with pytest.raises(ConfigError, match="at least two runs"):
        _fit(frame)
    two = pd.concat([frame, frame.assign(run_id="again")])
    with pytest.raises(ConfigError, match="1 size"):
        _fit(two)
    frame = _curves(TEXT, budgets=(1e18,), sizes_per_budget=2)
    with pytest.raises(ConfigError, match="neither the smallest nor the largest"):
        _fit(frame)
    frame.loc[3, "loss"] = np.nan
    with pytest.raises(ConfigError, match="column 'loss': row 3"):
        _fit(frame)
    frame = _curves(TEXT, budgets=(1e18,), sizes_per_budget=3)
    frame.loc[frame["run_id"] == "run0", "n_params"] = [1e8] * 59 + [3e8]
    with pytest.raises(ConfigError, match="run 'run0' has several n_params"):
        _fit(frame)
