"""FitResult JSON round trips and the shipped reference laws."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from conftest import isoflop_grid, synthetic_losses
from test_reference_cuervo_marxer import TABLE4

from slscale.errors import ConfigError
from slscale.fitting import (
    FitResult,
    IsoFlopFit,
    MetricPowerLaw,
    ParametricLossFit,
    list_references,
    load_reference,
)

PUBLISHED = {
    "chinchilla_hoffmann2022": {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28},
    "chinchilla_epoch2024": {
        "E": 1.8172,
        "A": 482.01,
        "B": 2085.43,
        "alpha": 0.3478,
        "beta": 0.3658,
    },
    "textless_cuervo_marxer2024": {"E": 1.73, "A": 13.9, "B": 39.8, "alpha": 0.25, "beta": 0.24},
    "text_muennighoff2023": {"E": 1.87, "A": 521.0, "B": 1488.0, "alpha": 0.35, "beta": 0.35},
    "sims2025_interleaved_ssc": {"a": 0.19, "b": 0.026},
    "sims2025_interleaved_tsc": {"a": 0.37, "b": 0.018},
    "sims2025_textless_ssc": {"a": 0.26, "b": 0.017},
    "sims2025_textless_tsc": {"a": 0.24, "b": 0.025},
    "sims2025_pythia_ssc": {"a": 0.07, "b": 0.046},
    "sims2025_pythia_tsc": {"a": 0.15, "b": 0.039},
}
EXPONENT_ONLY = TABLE4  # Cuervo & Marxer 2024, Table 4: gamma_q without a prefactor


def test_every_published_law_ships_with_a_citation():
    assert list_references() == sorted([*PUBLISHED, *EXPONENT_ONLY])
    for name, params in PUBLISHED.items():
        law = load_reference(name)
        assert law.method == "reference" and law.params == params, name
        assert "20" in law.source and len(law.source) > 40, name
        assert law.conventions, name
    for name, gamma in EXPONENT_ONLY.items():
        law = load_reference(name)
        assert math.isnan(law.params["a"]) and law.params["b"] == gamma, name
        assert "Table 4" in law.source, name


def test_reference_allocation_exponents_follow_from_alpha_beta():
    law = load_reference("chinchilla_epoch2024")
    assert law.exponents["a"] == pytest.approx(0.3658 / (0.3478 + 0.3658), abs=1e-4)
    assert law.details["se"] == {"alpha": 0.015, "beta": 0.021, "a": 0.020}


def test_unknown_reference_names_the_available_ones():
    with pytest.raises(ConfigError, match="available: chinchilla_epoch2024"):
        load_reference("chinchilla")


@pytest.fixture(scope="module")
def fits():
    n, d, c = isoflop_grid([1e17, 1e18, 1e19, 1e20], 7, 1.4, centre=lambda c: 0.22 * (c / 6) ** 0.5)
    law = {"E": 1.87, "A": 521.0, "B": 1488.0, "alpha": 0.35, "beta": 0.35}
    loss = synthetic_losses(law, n, d, 0.003, seed=0)
    return {
        "approach3": ParametricLossFit(n_bootstrap=40, random_state=0).fit(n, d, loss).result_,
        "approach2": IsoFlopFit(n_bootstrap=40, random_state=0).fit(n, d, loss, budget=c).result_,
        "metric": MetricPowerLaw(n_bootstrap=40, random_state=0).fit(c, 2.5 / loss).result_,
    }


@pytest.mark.parametrize("method", ["approach3", "approach2", "metric"])
def test_json_round_trip(fits, method, tmp_path):
    result = fits[method]
    path = result.save(tmp_path / "fit.json")
    raw = json.loads(path.read_text())
    for key in (
        "method",
        "n_points",
        "params",
        "exponents",
        "ci",
        "objective",
        "conventions",
        "extrapolation",
        "versions",
        "data",
        "bootstrap",
    ):
        assert key in raw, key
    assert raw["versions"]["numpy"] == np.__version__
    back = FitResult.load(path)
    assert back.params == result.params and back.method == method
    assert back.ci == {k: tuple(v) for k, v in result.ci.items()}
    np.testing.assert_allclose(back.data["flops"], result.data["flops"])
    draws = back.draws()
    assert draws is not None and all(v.size == 40 for v in draws.values())


def test_allocation_interval_from_a_loaded_result(fits, tmp_path):
    back = FitResult.load(fits["approach3"].save(tmp_path / "a3.json"))
    band = back.allocation_interval([1e21])
    n_opt, _ = back.optimal_allocation(1e21)
    assert band["n_opt"][0, 0] < n_opt < band["n_opt"][1, 0]


def test_non_finite_numbers_become_null():
    result = FitResult(
        method="metric",
        law="metric_power_law",
        params={"a": 0.2, "b": np.nan},
        ci={"b": (np.nan, np.inf)},
    )
    raw = json.loads(result.to_json())
    assert raw["params"]["b"] is None and raw["ci"]["b"] == [None, None]
    assert np.isnan(FitResult.from_json(result.to_json()).params["b"])


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("not json", "not valid JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"schema": "other/9"}', "'schema' is 'other/9'"),
        (
            '{"schema": "slscale.fit/1", "method": "x", "law": "metric_power_law", "params": {},'
            ' "colour": 1}',
            "unknown keys \\['colour'\\]",
        ),
        (
            '{"schema": "slscale.fit/1", "method": "x", "law": "cubic", "params": {}}',
            "field 'law' = 'cubic'",
        ),
    ],
)
def test_bad_json_is_a_config_error(text, match):
    with pytest.raises(ConfigError, match=match):
        FitResult.from_json(text, source="x.json")


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read fit result"):
        FitResult.load(tmp_path / "absent.json")


def test_wrong_law_for_a_prediction():
    with pytest.raises(ConfigError, match="is a metric_power_law, not a parametric_loss"):
        load_reference("sims2025_pythia_ssc").predict_loss(1e9, 2e10)
