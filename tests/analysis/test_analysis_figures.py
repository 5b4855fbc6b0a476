"""``slscale figures`` end to end on a synthetic study in a real SQLite store."""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import pytest
from analysis_helpers import BOOTSTRAP, WHERE, build_store, run_figures

from slscale import fitting
from slscale.analysis import FIGURES, TABLES
from slscale.analysis.style import COLUMN_WIDTH_IN, PAGE_WIDTH_IN, RC
from slscale.errors import ConfigError
from slscale.store import open_store

FIGURE_NAMES = [name for name, _, _ in FIGURES]
TABLE_NAMES = [name for name, _ in TABLES]
SINGLE_PANEL = {"predicted_vs_observed"}


def png_chunks(path: Path) -> list[tuple[bytes, bytes]]:
    """(type, data) of every chunk of a PNG file."""
    raw = path.read_bytes()
    assert raw[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, pos = [], 8
    while pos < len(raw):
        (length,) = struct.unpack(">I", raw[pos : pos + 4])
        chunks.append((raw[pos + 4 : pos + 8], raw[pos + 8 : pos + 8 + length]))
        pos += 12 + length
    return chunks


def png_width_in(path: Path) -> float:
    width, _height = struct.unpack(">II", png_chunks(path)[0][1][:8])
    return width / RC["savefig.dpi"]


def test_every_figure_and_table_is_written(drawn):
    out, stdout = drawn
    for name in FIGURE_NAMES:
        for fmt in ("pdf", "png"):
            assert (out / f"{name}.{fmt}").stat().st_size > 10_000, name
        assert f"wrote {name}: {name}.pdf, {name}.png" in stdout
    for name in TABLE_NAMES:
        assert (out / "tables" / f"{name}.md").read_text().startswith("**")
        assert "\\begin{tabular}" in (out / "tables" / f"{name}.tex").read_text()
    manifest = json.loads((out / "figures.json").read_text())
    assert [f["name"] for f in manifest["figures"]] == FIGURE_NAMES
    assert not any(f["skipped"] for f in manifest["figures"] + manifest["tables"])
    assert manifest["notes"] == ["left out 1 run(s) that have not SUCCEEDED"]
    assert "skipped" not in stdout


def test_figures_are_sized_for_a_two_column_paper(drawn):
    out, _ = drawn
    for name in FIGURE_NAMES:
        target = COLUMN_WIDTH_IN if name in SINGLE_PANEL else PAGE_WIDTH_IN
        # bbox "tight" trims the margins: within 10 % of the nominal width, never wider
        assert 0.9 * target <= png_width_in(out / f"{name}.png") <= target * 1.01, name


def test_files_carry_no_timestamps_or_software_tags(drawn):
    out, _ = drawn
    for name in FIGURE_NAMES:
        kinds = {kind for kind, _ in png_chunks(out / f"{name}.png")}
        assert not kinds & {b"tEXt", b"iTXt", b"zTXt", b"tIME"}, name
        pdf = (out / f"{name}.pdf").read_bytes()
        assert b"/CreationDate" not in pdf and b"/Producer" not in pdf
        assert b"STIXGeneral" in pdf  # the shipped font, embedded: no system font lookup


def test_second_run_refits_to_byte_identical_files(drawn, workdir, tmp_path):
    out, _ = drawn
    argv = ["--workdir", str(workdir), "--out", str(tmp_path), "--format", "png", *WHERE]
    run_figures([*argv, *BOOTSTRAP])
    for name in FIGURE_NAMES:
        assert (tmp_path / f"{name}.png").read_bytes() == (out / f"{name}.png").read_bytes()
    for fit in (out / "fits").glob("*.json"):
        assert (tmp_path / "fits" / fit.name).read_bytes() == fit.read_bytes(), fit.name
    assert not list(tmp_path.glob("*.pdf"))


def test_drawing_from_saved_fits_never_fits(drawn, workdir, tmp_path, monkeypatch):
    out, _ = drawn
    estimators = (
        fitting.EnvelopeFit,
        fitting.IsoFlopFit,
        fitting.ParametricLossFit,
        fitting.MetricPowerLaw,
    )
    for estimator in estimators:
        monkeypatch.setattr(estimator, "fit", _forbidden)
    monkeypatch.setattr("slscale.fitting.isoflop.fit_vertices", _forbidden)  # parabolas
    argv = ["--workdir", str(workdir), "--out", str(tmp_path), "--fits", str(out / "fits")]
    run_figures([*argv, *WHERE])
    for name in FIGURE_NAMES:
        for fmt in ("png", "pdf"):
            assert (tmp_path / f"{name}.{fmt}").read_bytes() == (out / f"{name}.{fmt}").read_bytes()
    index = json.loads((tmp_path / "fits" / "index.json").read_text())
    # (A1, A2, A3, sSC and tSC metric laws, sSC and tSC margin laws) x 2 arms, copied next to
    # the figures; MarginLaw fits through MetricPowerLaw.fit, forbidden above.
    assert len(index["fits"]) == 14


def _forbidden(*args, **kwargs):
    raise AssertionError("a figure was drawn by fitting instead of from the saved fits")


def test_missing_data_skips_figures_with_reasons(drawn, tmp_path):
    workdir = tmp_path / "sparse"
    build_store(workdir, with_evals=False, with_curves=False)
    out = tmp_path / "figures"
    shutil.copytree(drawn[0], out)  # an earlier drawing: what no longer holds must go
    argv = ["--workdir", str(workdir), "--out", str(out), "--format", "png", "--bootstrap", "0"]
    stdout = run_figures([*argv, *WHERE])
    manifest = {f["name"]: f for f in json.loads((out / "figures.json").read_text())["figures"]}
    reasons = {
        "metric_vs_compute": "no evaluation scores in the store",
        "training_curves": "no training-loss curves in the store",
        "textlm_families": "no sSC/tSC scores for the TextLM-initialised runs",
    }
    for name, reason in reasons.items():
        assert manifest[name]["skipped"].startswith(reason), manifest[name]
        assert f"skipped {name}: {reason}" in stdout
        assert not list(out.glob(f"{name}.*"))
    drawn_now = {"isoflop", "compute_optimal", "isoloss", "predicted_vs_observed"}
    assert {n for n, f in manifest.items() if not f["skipped"]} == drawn_now
    tables = {t["name"]: t for t in json.loads((out / "figures.json").read_text())["tables"]}
    assert tables["synthetic_ablation"]["skipped"] == "no evaluation scores in the store"
    assert tables["crossmodal"]["skipped"] == "no evaluation scores in the store"
    assert not tables["published_comparison"]["skipped"]
    assert not (out / "tables" / "crossmodal.md").exists()
    index = json.loads((out / "fits" / "index.json").read_text())
    assert "no training-loss curves" in index["skipped"]["approach1-interleaved"]
    assert "no sSC scores" in index["skipped"]["metric-textless-sSC"]
    assert not (out / "fits" / "metric-textless-sSC.json").exists()  # the stale fit is gone


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--format", "pdf,jpg"], "--format 'pdf,jpg': use a comma-separated list of pdf, png"),
        (["--fits", "/nonexistent/fits"], "--fits: no /nonexistent/fits/index.json"),
        (
            ["--where", "colour=blue"],
            "--where 'colour=blue': no column 'colour' in the store's runs",
        ),
        (["--where", "family"], "--where 'family': expected KEY=VALUE"),
        (["--where", "family=gpt"], "no succeeded runs match --where family=gpt"),
        (["--convention", "whole"], "--convention 'whole': no scores use it; the store has "),
        (["--bootstrap", "-1"], "field 'n_bootstrap' = -1: must be ≥ 0"),
        (["--confidence", "95"], "field 'confidence' = 95.0: must be in (0, 1)"),
    ],
)
def test_bad_options_name_the_option_and_value(workdir, tmp_path, argv, message):
    with pytest.raises(ConfigError) as err:
        run_figures(["--workdir", str(workdir), "--out", str(tmp_path), *argv])
    assert str(err.value).startswith(message)
    assert "\n" not in str(err.value)


def test_an_empty_store_is_a_one_line_error(tmp_path):
    open_store(tmp_path / "empty").close()
    with pytest.raises(ConfigError, match="the store has no runs; launch a sweep first"):
        run_figures(["--workdir", str(tmp_path / "empty"), "--out", str(tmp_path / "out")])
