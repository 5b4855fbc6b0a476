"""The demo's science checks: best run per budget and binomial standard errors, by hand."""

import math

import pandas as pd
import pytest

from slscale.models.evaluate import Convention
from slscale.workflows.demo_checks import (
    Best,
    _above_chance,
    _arms_apart,
    _rising,
    best_per_budget,
)

SLAMKIT = Convention.parse("slamkit").name


def _frames():
    runs, evals = [], []
    # Two arms x two budgets x two sizes; the ablation run (synthetic share 1) and a FAILED
    # run score best but must not count.
    table = [
        ("t-a", "textless", 1e11, 0.0, "SUCCEEDED", 0.52),
        ("t-b", "textless", 1.05e11, 0.0, "SUCCEEDED", 0.55),
        ("t-c", "textless", 1e12, 0.0, "SUCCEEDED", 0.60),
        ("t-d", "textless", 0.98e12, 0.0, "FAILED", 0.99),
        ("i-a", "interleaved", 1e11, 0.0, "SUCCEEDED", 0.56),
        ("i-b", "interleaved", 1e12, 0.0, "SUCCEEDED", 0.70),
        ("i-c", "interleaved", 1.02e12, 1.0, "SUCCEEDED", 0.95),
    ]
    for rid, arm, flops, share, state, acc in table:
        runs.append(
            {
                "run_id": rid,
                "modality": arm,
                "flops_6nd": flops,
                "mix.synthetic_share": share,
                "state": state,
            }
        )
        for convention, value in ((SLAMKIT, acc), ("other", 1.0)):
            evals.append(
                {
                    "run_id": rid,
                    "benchmark": "tSC",
                    "variant": "S",
                    "convention": convention,
                    "value": value,
                    "n_items": 400,
                }
            )
        evals.append({**evals[-1], "variant": "T", "convention": SLAMKIT, "value": 1.0})
    return pd.DataFrame(runs), pd.DataFrame(evals)


def test_best_per_budget_keeps_succeeded_real_speech_runs_in_slamkits_convention():
    best = best_per_budget(*_frames())
    assert [(b.run_id, b.accuracy) for b in best[("textless", "tSC")]] == [
        ("t-b", 0.55),
        ("t-c", 0.60),
    ]
    assert [b.run_id for b in best[("interleaved", "tSC")]] == ["i-a", "i-b"]


def test_checks_use_binomial_standard_errors():
    best = best_per_budget(*_frames())
    se = {k: math.sqrt(p * (1 - p) / 400) for k, p in (("t1", 0.55), ("t2", 0.60))}
    rising = {c.name: c for c in _rising(best, "tSC")}
    # textless: +0.05 against 2*sqrt(se1^2 + se2^2) = 0.069 -> does not hold
    assert not rising["rising-tSC-textless"].holds
    assert f"{2 * math.hypot(se['t1'], se['t2']):.3f}" in rising["rising-tSC-textless"].numbers
    assert rising["rising-tSC-interleaved"].holds  # 0.56 -> 0.70
    apart = _arms_apart(best, "tSC")
    diff, spread = 0.10, 1.959964 * math.hypot(math.sqrt(0.21 / 400), math.sqrt(0.24 / 400))
    assert apart.holds == (diff - spread > 0)
    assert f"[{diff - spread:+.3f}, {diff + spread:+.3f}]" in apart.numbers
    assert _above_chance(best, "interleaved", "tSC").holds
    assert not _above_chance(
        {("interleaved", "tSC"): [Best(budget=1, run_id="x", accuracy=0.53, n_items=400)]},
        "interleaved",
        "tSC",
    ).holds  # 0.03 < 2 SE = 0.05


def test_standard_error_never_collapses_at_a_perfect_score():
    assert Best(budget=1.0, run_id="r", accuracy=1.0, n_items=100).se == pytest.approx(0.005)
