"""The figure fits: known laws come back, fits round-trip through their files."""

from __future__ import annotations

import json

import numpy as np
import pytest
from analysis_helpers import LAWS, MARGIN_PER_ACCURACY, METRIC_LAWS

from slscale.analysis.fits import FitSettings
from slscale.analysis.fitset import StudyFits
from slscale.errors import ConfigError
from slscale.fitting.laws import allocation_exponents


@pytest.fixture(scope="module")
def fits(drawn) -> StudyFits:
    return StudyFits.load(drawn[0] / "fits")


@pytest.mark.parametrize("arm", ["interleaved", "textless"])
def test_allocation_exponents_are_recovered(fits, arm):
    true_a, _ = allocation_exponents(LAWS[arm]["alpha"], LAWS[arm]["beta"])
    approach3 = fits.get("approach3", arm)
    low, high = approach3.ci["a"]
    assert low < true_a < high
    assert abs(approach3.exponents["a"] - true_a) < 0.03
    assert abs(fits.get("approach2", arm).exponents["a"] - true_a) < 0.03
    assert approach3.extrapolation["mean_abs_rel_error"] < 0.005  # held-out largest budget


def test_interleaved_puts_more_compute_into_model_size(fits):
    a = {arm: fits.get("approach3", arm).exponents["a"] for arm in ("interleaved", "textless")}
    assert a["interleaved"] > a["textless"] + 0.05


@pytest.mark.parametrize(("arm", "benchmark"), sorted(METRIC_LAWS))
def test_metric_laws_are_recovered(fits, arm, benchmark):
    a, b = METRIC_LAWS[(arm, benchmark)]
    fit = fits.get("metric", arm, benchmark)
    assert fit.n_points == 4  # the best run of each of the four budgets
    assert abs(fit.params["b"] - b) < 0.002
    assert abs(np.log(fit.params["a"] / a)) < 0.1


@pytest.mark.parametrize(("arm", "benchmark"), sorted(METRIC_LAWS))
def test_margin_laws_fit_the_best_margin_per_budget(fits, arm, benchmark):
    metric, margin = fits.get("metric", arm, benchmark), fits.get("margin", arm, benchmark)
    assert margin.law == "margin_log_linear" and margin.n_points == 4
    c = np.asarray(margin.data["flops"])[np.asarray(margin.data["fitted"], bool)]
    m = np.asarray(margin.data["value"])[np.asarray(margin.data["fitted"], bool)]
    best = np.asarray(metric.data["value"])[np.asarray(metric.data["fitted"], bool)]
    np.testing.assert_allclose(m, MARGIN_PER_ACCURACY * (best - 0.5))  # the same runs
    slope, intercept = np.polyfit(np.log10(c) - 12, m, 1)
    assert margin.params["s"] == pytest.approx(slope) and margin.params["m"] == pytest.approx(
        intercept
    )
    assert margin.ci["s"][0] < slope < margin.ci["s"][1] and slope > 0


def test_saved_fits_round_trip(fits, tmp_path):
    fits.save(tmp_path)
    again = StudyFits.load(tmp_path)
    assert [e.name for e in again.entries] == [e.name for e in fits.entries]
    for old, new in zip(fits.entries, again.entries, strict=True):
        assert new.result.to_dict() == old.result.to_dict()
    summary = again.summary().set_index("fit")
    assert (
        summary.loc["approach3-textless", "a"] == fits.get("approach3", "textless").exponents["a"]
    )
    assert set(again.references) >= {"textless_cuervo_marxer2024", "sims2025_pythia_tsc"}


def test_a_foreign_index_is_refused(tmp_path):
    (tmp_path / "index.json").write_text(json.dumps({"schema": "other/1", "fits": []}))
    with pytest.raises(ConfigError, match=r"index\.json: not a figure-fits index"):
        StudyFits.load(tmp_path)
    entry = {"file": "gone.json", "kind": "approach3", "arm": "x"}
    index = {"schema": "slscale.figure-fits/1", "fits": [entry]}
    (tmp_path / "index.json").write_text(json.dumps(index))
    with pytest.raises(ConfigError, match=r"cannot read fit result .*gone\.json"):
        StudyFits.load(tmp_path)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [("n_bootstrap", -2, "must be ≥ 0"), ("seed", -1, "must be ≥ 0"),
     ("confidence", 1.0, "must be in (0, 1)"), ("huber_delta", 0.0, "must be > 0")],
)  # fmt: skip
def test_fit_settings_are_checked(field, value, message):
    with pytest.raises(ConfigError) as err:
        FitSettings(**{field: value})
    assert str(err.value).startswith(f"field '{field}' = {value!r}: {message}")
