"""``slscale plan-next`` and ``slscale recommend`` on a real SQLite store and on CSV files."""

from __future__ import annotations

import dataclasses
import json
import warnings

import numpy as np
import pandas as pd
import pytest
from plan_next_helpers import CHINCHILLA, small_fit, study_cells, write_study

from slscale.fitting import ParametricLossFit
from slscale.store import open_store
from slscale.sweep.grid import expand
from slscale.sweep.io import load_grid
from slscale.sweep.plan import param_counts
from slscale.workflows.plan_next_data import StudyInputs, load_study

BOOT = ["--bootstrap", "200"]


def _plan(run_cli, workdir, tmp_path, *extra: str) -> tuple[int, dict]:
    out = tmp_path / "plan.json"
    code = run_cli(["plan-next", "--workdir", str(workdir), *BOOT, "--json", str(out), *extra])
    return code, json.loads(out.read_text()) if code == 0 else {}


def test_plan_next_writes_a_grid_of_the_chosen_cells(run_cli, textless_study, tmp_path, capsys):
    grid = tmp_path / "next.yaml"
    code, plan = _plan(
        run_cli, textless_study, tmp_path, "--budget-flops", "3e16", "--out", str(grid)
    )
    assert code == 0
    text = capsys.readouterr().out
    assert "plan-next: a = " in text and f"wrote {grid}" in text
    cells = plan["cells"]
    assert cells and plan["spent"] <= 3e16 and plan["n_runs"] == 20  # the pending run is left out
    assert plan["spent"] == pytest.approx(sum(c["flops_6nd"] for c in cells))
    assert plan["width_after"] < plan["width_now"]["reference"]
    widths = [c["width_after"] for c in cells]
    assert widths == sorted(widths, reverse=True)
    specs = expand(load_grid(grid), param_counts)
    assert sorted((s.size, s.tokens) for s in specs) == sorted(
        (c["size"], c["tokens"]) for c in cells
    )
    assert all(s.units_only_vocab and s.recipe.global_batch_size == 8 for s in specs)
    done = {(size, tokens) for size, tokens in study_cells()}
    assert not done & {(s.size, s.tokens) for s in specs}
    for s, c in zip(
        sorted(specs, key=lambda s: (s.size, s.tokens)),
        sorted(cells, key=lambda c: (c["size"], c["tokens"])),
        strict=True,
    ):
        assert (
            param_counts({"family": "llama", "size": s.size, "units_only_vocab": True})["n_params"]
            == c["n_params"]
        )


def test_plan_for_n_opt_with_a_run_limit_and_sizes(run_cli, textless_study, tmp_path):
    code, plan = _plan(
        run_cli,
        textless_study,
        tmp_path,
        "--quantity",
        "n_opt",
        "--target-flops",
        "1e19",
        "--budget-flops",
        "1e17",
        "--max-runs",
        "3",
        "--sizes",
        "2M,8M",
        "--sizes",
        "32M",
    )
    assert code == 0 and len(plan["cells"]) == 3 and plan["log_scale"]
    assert {c["size"] for c in plan["cells"]} <= {"2M", "8M", "32M"}


def test_plan_in_gpu_hours(run_cli, textless_study, tmp_path):
    code, plan = _plan(
        run_cli, textless_study, tmp_path, "--budget-gpu-hours", "2", "--gpu", "h100-80gb"
    )
    assert code == 0 and plan["unit"] == "GPU-hours" and 0 < plan["spent"] <= 2
    assert all(c["cost"] < c["flops_6nd"] for c in plan["cells"])  # hours, not FLOPs


def test_plan_for_a_metric(run_cli, textless_study, tmp_path, capsys):
    code, plan = _plan(
        run_cli,
        textless_study,
        tmp_path,
        "--quantity",
        "metric",
        "--benchmark",
        "sSC",
        "--target-flops",
        "1e19",
        "--budget-flops",
        "1e17",
    )
    assert code == 0, capsys.readouterr().err
    levels = sorted(c["level"] for c in plan["cells"])
    assert len(levels) == len(set(levels))  # one compute-optimal run per new budget
    assert plan["width_after"] < plan["width_now"]["reference"]


def test_check_simulates_the_expected_width(run_cli, textless_study, tmp_path, capsys):
    code, plan = _plan(run_cli, textless_study, tmp_path, "--budget-flops", "3e16", "--check", "48")
    assert code == 0 and plan["check"]["replicas"] == 48
    assert plan["check"]["after"] < plan["check"]["before"]
    assert "simulated studies" in capsys.readouterr().out


def test_chinchilla_csv_ten_runs(run_cli, tmp_path, capsys):
    raw = pd.read_csv(CHINCHILLA).sort_values("loss").iloc[:-5]
    path = tmp_path / "chinchilla.csv"
    raw.to_csv(path, index=False)
    out = tmp_path / "plan.json"
    argv = [
        "plan-next",
        "--csv",
        str(path),
        "--params-col",
        "Model Size",
        "--flops-col",
        "Training FLOP",
        "--budget-flops",
        "1e22",
        "--max-runs",
        "10",
        *BOOT,
        "--json",
        str(out),
    ]
    assert run_cli(argv) == 0
    plan = json.loads(out.read_text())
    assert plan["n_runs"] == 240 and len(plan["cells"]) == 10
    n_done, d_done = raw["Model Size"], raw["Training FLOP"] / (6 * raw["Model Size"])
    assert all(c["n_fit"] >= n_done.min() for c in plan["cells"])  # inside or above the data
    assert all(c["tokens"] >= d_done.min() - 1 for c in plan["cells"])
    # no run specs in a CSV file: a grid needs a family
    assert run_cli([*argv, "--out", str(tmp_path / "x.yaml")]) == 2
    assert "--out needs to know the runs: give --family" in capsys.readouterr().err


def test_recommend_matches_the_fit_and_builds_the_nearest_model(
    run_cli, textless_study, tmp_path, capsys
):
    out = tmp_path / "rec.json"
    code = run_cli(
        [
            "recommend",
            "--workdir",
            str(textless_study),
            "--target-flops",
            "1e18",
            "--benchmark",
            "sSC",
            *BOOT,
            "--json",
            str(out),
        ]
    )
    assert code == 0, capsys.readouterr().err
    rec = json.loads(out.read_text())
    with open_store(textless_study) as store:
        runs = store.runs_frame()
    runs = runs[runs["state"] == "SUCCEEDED"]
    fit = ParametricLossFit(n_bootstrap=200, random_state=0, validate=False).fit(
        runs["n_params"], runs["summary.tokens"], runs["loss"]
    )
    n_opt, d_opt = fit.result_.optimal_allocation(1e18)
    assert rec["n_opt"]["value"] == pytest.approx(float(n_opt), rel=1e-9)
    assert rec["d_opt"]["value"] == pytest.approx(float(d_opt), rel=1e-9)
    ci = fit.result_.allocation_interval(1e18)["n_opt"]
    assert rec["n_opt"]["ci"] == pytest.approx(list(ci), rel=1e-9)
    assert rec["loss"]["ci"][0] < rec["loss"]["value"] < rec["loss"]["ci"][1]
    assert 0 < rec["metrics"]["sSC"]["value"] < 1
    model = rec["model"]
    built = param_counts({"family": "llama", "size": model["size"], "units_only_vocab": True})
    assert model["n_params"] == built["n_params"]  # total N, the fit's convention
    assert abs(np.log(model["n_params"] / n_opt)) < np.log(1.02)
    assert model["tokens"] % 1024 == 0
    assert model["flops_6nd"] == pytest.approx(1e18, rel=0.01)
    assert model["gpus"] >= 1 and model["gpu_hours"] > 0 and model["zero_stage"] in (0, 1, 2, 3)
    text = capsys.readouterr().out
    assert "nearest llama model: size" in text and "N is total parameters" in text


def test_the_study_loads_from_python_as_from_the_cli(run_cli, textless_study, tmp_path, capsys):
    """``load_study`` takes typed inputs (no argparse); the Study it returns is frozen and a
    recommendation does not change it."""
    out = tmp_path / "rec.json"
    argv = ["recommend", "--workdir", str(textless_study), "--target-flops", "1e18", *BOOT]
    assert run_cli([*argv, "--json", str(out)]) == 0, capsys.readouterr().err
    inputs = StudyInputs(workdir=str(textless_study), bootstrap=200)
    study = load_study(inputs, metric=False)
    before = study.notes
    rec = study.recommend(1e18, "a100-80gb", 0.4)
    cli = json.loads(out.read_text())["n_opt"]
    assert rec["n_opt"]["value"] == pytest.approx(cli["value"], rel=1e-12)
    assert rec["n_opt"]["ci"] == pytest.approx(cli["ci"], rel=1e-12)
    assert study.notes == before
    with pytest.raises(dataclasses.FrozenInstanceError):
        study.notes = ("changed",)  # type: ignore[misc]


# -- bad input --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--budget-flops", "1e9"], "budget 1e+09 FLOPs is smaller than the cheapest candidate"),
        ([], "give the next round's budget: --budget-flops"),
        (["--budget-flops", "-1"], "must be a positive number"),
        (["--budget-flops", "1e17", "--sizes", "10"], "--sizes 10: llama cannot build it"),
        (["--budget-flops", "1e17", "--quantity", "loss"], "give --target-flops"),
        (["--budget-flops", "1e17", "--quantity", "metric"], "--quantity metric needs the score"),
        (["--budget-flops", "1e17", "--sizes", "1M", "--max-tokens-per-param", "2"], "no candi"),
        (["--budget-flops", "1e15", "--min-tokens-per-param", "400"], "smaller than the cheap"),
        (["--budget-flops", "1e17", "--max-tokens-per-param", "0.5"], "need 0 < min ≤ max"),
        (["--budget-flops", "1e17", "--check", "3"], "--check 3: simulate at least 10"),
        (["--budget-flops", "1e17", "--mfu", "2"], "--mfu 2.0: must be in (0, 1]"),
        (
            ["--budget-flops", "1e17", "--where", "modality=text"],
            "no rows of store",
        ),
    ],
)
def test_bad_input_is_one_line(run_cli, textless_study, extra, message, capsys):
    assert run_cli(["plan-next", "--workdir", str(textless_study), *BOOT, *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("slscale: error: ") and message in err and err.count("\n") == 1


def test_too_few_runs_to_fit(run_cli, tmp_path, capsys):
    write_study(tmp_path, cells=study_cells()[:4])
    assert run_cli(["plan-next", "--workdir", str(tmp_path), "--budget-flops", "1e17"]) == 2
    err = capsys.readouterr().err
    assert "cannot fit the runs: Approach 3 (5 parameters) needs at least 6 points, got 4" in err


def test_no_runs_at_all(run_cli, tmp_path, capsys):
    assert run_cli(["recommend", "--target-flops", "1e19"]) == 2
    assert "no runs to plan from: pass --workdir" in capsys.readouterr().err
    assert run_cli(["recommend", "--workdir", str(tmp_path), "--target-flops", "1e19"]) == 2
    assert f"no study at {tmp_path}: " in capsys.readouterr().err
    open_store(tmp_path).close()
    assert run_cli(["recommend", "--workdir", str(tmp_path), "--target-flops", "1e19"]) == 2
    assert "no SUCCEEDED runs" in capsys.readouterr().err


def test_recommend_with_overflowing_draws_says_how_many_and_prints_no_warning(
    run_cli, tmp_path, capsys
):
    """Bootstrap draws whose B overflowed to inf (a drifting resample) give no finite loss: the
    interval leaves them out, a note counts them, and no numpy warning reaches the terminal."""
    fit = small_fit(bootstrap=100)
    drifted = np.asarray(fit.bootstrap["B"], float).copy()
    drifted[:3] = np.inf
    saved = tmp_path / "fit.json"
    dataclasses.replace(fit, bootstrap={**fit.bootstrap, "B": drifted}).save(saved)
    out = tmp_path / "rec.json"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any RuntimeWarning fails the command
        assert run_cli(["recommend", "--fit", str(saved), "--target-flops", "1e20",
                        "--json", str(out)]) == 0  # fmt: skip
    captured = capsys.readouterr()
    assert "Warning" not in captured.err
    rec = json.loads(out.read_text())
    assert "3 of 100 bootstrap draws give no finite loss at C*" in " ".join(rec["notes"])
    low, high = rec["loss"]["ci"]
    assert np.isfinite(low) and np.isfinite(high) and low < rec["loss"]["value"] < high


def test_plan_and_recommend_from_a_saved_fit(run_cli, textless_study, tmp_path, capsys):
    saved = tmp_path / "fit.json"
    argv = ["fit", "approach3", "--workdir", str(textless_study), *BOOT, "--json", str(saved)]
    assert run_cli(argv) == 0
    grid = tmp_path / "next.yaml"
    plan = ["plan-next", "--fit", str(saved), "--budget-flops", "3e16", "--max-runs", "4"]
    assert run_cli([*plan, "--family", "llama", "--out", str(grid)]) == 0
    specs = expand(load_grid(grid), param_counts)
    assert len(specs) == 4 and {s.family for s in specs} == {"llama"}
    assert run_cli([*plan, "--quantity", "metric", "--benchmark", "sSC"]) == 2
    assert "--fit holds only the loss law" in capsys.readouterr().err
    out = tmp_path / "rec.json"
    rec = ["recommend", "--fit", str(saved), "--target-flops", "1e18", "--json", str(out)]
    assert run_cli(rec) == 0
    assert "model" not in json.loads(out.read_text())  # no family: no architecture to build
