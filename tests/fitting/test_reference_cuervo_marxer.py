"""The γ_q exponents of Cuervo & Marxer 2024, Table 4, shipped as exponent-only metric laws."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from slscale.errors import ConfigError
from slscale.fitting import FitResult, compare_arms, list_references, load_reference

# Table 4: "γ_q power law coefficients of downstream performance with compute" (Q ∝ C^γ_q).
TABLE4 = {
    "cuervo_marxer2024_textless_sblimp": 0.021,
    "cuervo_marxer2024_textless_tsc": 0.025,
    "cuervo_marxer2024_textless_ssc": 0.017,
    "cuervo_marxer2024_pythia_blimp": 0.066,
    "cuervo_marxer2024_pythia_tsc": 0.039,
    "cuervo_marxer2024_pythia_ssc": 0.046,
}
# Section 4.3.1: text γ over speech γ, as the paper rounds them.
PAPER_RATIOS = {"blimp": (3.14, 2), "tsc": (1.56, 2), "ssc": (2.7, 1)}
SPEECH_TO_TEXT = {"sblimp": "blimp", "tsc": "tsc", "ssc": "ssc"}


@pytest.mark.parametrize("name", sorted(TABLE4))
def test_table4_exponents_ship_with_their_citation(name):
    law = load_reference(name)
    assert name in list_references()
    assert law.method == "reference" and law.law == "metric_power_law"
    assert law.params["b"] == TABLE4[name] and law.exponents == {"b": TABLE4[name]}
    assert math.isnan(law.params["a"])
    assert "Cuervo & Marxer 2024" in law.source and "Table 4" in law.source
    assert law.details["table"].startswith("Table 4, row ")
    assert law.conventions["higher_is_better"] is True
    assert any("prefactor a not published" in w for w in law.warnings)


def test_rows_and_columns_match_the_names():
    for name in TABLE4:
        law = load_reference(name)
        row = "SPEECH" if "_textless_" in name else "TEXT"
        column = {"sblimp": "BLIMP", "blimp": "BLIMP", "tsc": "TCLOZE", "ssc": "SCLOZE"}
        assert law.details["table"] == f"Table 4, row {row}, column {column[name.split('_')[-1]]}"


@pytest.mark.parametrize("speech", sorted(SPEECH_TO_TEXT))
def test_text_over_speech_exponent_ratio_is_the_papers(speech):
    text = SPEECH_TO_TEXT[speech]
    comparison = compare_arms(
        load_reference(f"cuervo_marxer2024_pythia_{text}"),
        load_reference(f"cuervo_marxer2024_textless_{speech}"),
    )
    expected, digits = PAPER_RATIOS[text]
    assert comparison.exponent_name == "b"
    assert round(comparison.exponent_ratio.value, digits) == expected
    assert comparison.exponent_ratio.ci is None  # published point values: no draws


@pytest.mark.parametrize("arm", ["textless", "pythia"])
@pytest.mark.parametrize("metric", ["ssc", "tsc"])
def test_sims_fig1_draws_the_same_exponents(arm, metric):
    """SIMS Fig. 1 prints the textless and Pythia sSC/tSC laws with Table 4's exponents."""
    table4 = load_reference(f"cuervo_marxer2024_{arm}_{metric}")
    sims = load_reference(f"sims2025_{arm}_{metric}")
    assert table4.params["b"] == sims.params["b"]
    assert table4.details["see_also"].startswith(f"sims2025_{arm}_{metric}:")


def test_exponents_give_score_ratios_but_no_absolute_score():
    law = load_reference("cuervo_marxer2024_textless_sblimp")
    flops = np.array([1e18, 1e19, 1e20, 1e21])
    assert np.isnan(law.predict_metric(flops)).all()
    # Ten times the compute multiplies the sBLIMP envelope by 10^0.021 ≈ 1.049 (textless) and
    # BLIMP by 10^0.066 ≈ 1.164 (Pythia): the slower speech scaling the paper reports.
    speech = 10.0 ** law.exponents["b"]
    text = 10.0 ** load_reference("cuervo_marxer2024_pythia_blimp").exponents["b"]
    assert speech == pytest.approx(1.0495, abs=1e-4) and text == pytest.approx(1.1641, abs=1e-4)


def test_a_target_score_cannot_be_reached_without_a_prefactor():
    with pytest.raises(ConfigError, match="never reached"):
        compare_arms(
            load_reference("cuervo_marxer2024_pythia_ssc"),
            load_reference("cuervo_marxer2024_textless_ssc"),
            target=0.6,
        )


@pytest.mark.parametrize("name", sorted(TABLE4))
def test_exponent_only_laws_round_trip_through_json(name):
    law = load_reference(name)
    text = law.to_json()
    assert json.loads(text)["params"] == {"a": None, "b": TABLE4[name]}
    again = FitResult.from_json(text)
    assert again.params["b"] == law.params["b"] and math.isnan(again.params["a"])
    assert again.warnings == law.warnings and again.details == law.details
