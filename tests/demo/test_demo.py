"""`slscale demo` end to end: the tiny scale (4 runs) by default, the small scale in `slow`."""

import json

import pytest

from slscale.cli import main
from slscale.store import open_store
from slscale.workflows.demo_checks import science_checks


def _run_demo(workdir, scale):
    assert (
        main(["demo", "--workdir", str(workdir), "--scale", scale, "--quiet", "--num-cpus", "2"])
        == 0
    )


def _check_study(workdir, n_runs):
    with open_store(workdir) as store:
        runs, evals = store.runs_frame(), store.evals_frame()
        curves = store.metrics_frame(names=["loss"])
    assert len(runs) == n_runs and set(runs["state"]) == {"SUCCEEDED"}
    assert set(runs["modality"]) == {"textless", "interleaved"}
    assert set(evals["run_id"]) == set(runs["run_id"])
    assert {"sSC", "tSC", "sBLIMP", "sWUGGY"} <= set(evals["benchmark"])
    assert {"S", "S2T", "T2S", "T"} <= set(evals["variant"])  # cross-modal, interleaved arm
    assert ((evals["value"] >= 0) & (evals["value"] <= 1)).all()
    assert set(curves["run_id"]) == set(runs["run_id"])
    report = (workdir / "report.md").read_text()
    assert "interleaved vs textless" in report and "## Findings" in report
    assert (workdir / "report.html").read_text().startswith("<!doctype html>")
    assert (workdir / "figures" / "training_curves.png").stat().st_size > 10_000
    return runs


def test_tiny_demo_runs_end_to_end_and_again_as_a_no_op(tmp_path):
    workdir = tmp_path / "demo"
    _run_demo(workdir, "tiny")
    before = _check_study(workdir, 4)
    timings = json.loads((workdir / "timings.json").read_text())
    assert {"world", "textlms", "sweep", "eval", "figures", "report"} <= set(timings)

    _run_demo(workdir, "tiny")  # everything cached: nothing retrained or re-evaluated
    after = _check_study(workdir, 4)
    key = ["run_id", "attempts", "updated_at"]
    assert before[key].sort_values("run_id").equals(after[key].sort_values("run_id"))
    assert json.loads((workdir / "timings.json").read_text())["sweep"] == timings["sweep"]


def test_a_workdir_of_another_scale_is_refused(tmp_path, capsys):
    (tmp_path / "demo.json").write_text(json.dumps({"scale": {"name": "other"}, "seed": 0}))
    assert main(["demo", "--workdir", str(tmp_path), "--scale", "tiny"]) == 2
    assert "another scale or seed" in capsys.readouterr().err


@pytest.mark.slow
def test_small_demo_fits_and_draws_every_figure(tmp_path):
    workdir = tmp_path / "demo"
    _run_demo(workdir, "small")
    runs = _check_study(workdir, 26)
    figures = workdir / "figures"
    names = ("metric_vs_compute", "margin_vs_compute", "isoflop", "training_curves")
    for name in (*names, "compute_optimal"):
        assert (figures / f"{name}.png").exists(), name
    report = (workdir / "report.md").read_text()
    assert "Synthetic-speech ablation" in report and "## What the miniature shows" in report
    with open_store(workdir) as store:
        evals = store.evals_frame()
    assert evals["margin"].notna().all() and len(evals) > 0
    assert (evals["n_items"] == 1000).all()
    checks = {c.name: c for c in science_checks(workdir)}
    for check in checks.values():  # every check is in the report with its numbers
        assert check.numbers in report
    # Item 1 of the science issue, from the store's own runs: every budget's IsoFLOP
    # minimum lies inside its sizes in both arms.
    assert checks["centred-interleaved"].holds and checks["centred-textless"].holds
    ok = runs[(runs["state"] == "SUCCEEDED") & (runs["mix.synthetic_share"] == 0.0)]
    assert ok.groupby("modality")["size"].nunique().min() == 4
