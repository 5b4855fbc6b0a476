"""``slscale fit``: from CSV files and from a real SQLite results store."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import DATA, isoflop_grid, synthetic_losses

from slscale.fitting import FitResult
from slscale.fitting.laws import parametric_loss
from slscale.spec import (
    Architecture,
    Modality,
    Recipe,
    RunSpec,
    RunState,
    spec_from_dict,
    spec_to_dict,
)
from slscale.store import EvalResult, Metric, open_store

CHINCHILLA = str(DATA / "chinchilla_epoch_svg_extracted.csv")
ISOFLOPS = str(DATA / "isoflops_open_athena.csv")
OLMO = str(DATA / "olmo_ladder_curves.csv")


@pytest.fixture(autouse=True)
def _no_store_from_the_environment(monkeypatch):
    monkeypatch.delenv("SLSCALE_STORE", raising=False)


def test_approach3_from_csv(run_cli, tmp_path, capsys):
    out = tmp_path / "a3.json"
    code = run_cli(
        [
            "fit",
            "approach3",
            "--csv",
            CHINCHILLA,
            "--params-col",
            "Model Size",
            "--flops-col",
            "Training FLOP",
            "--bootstrap",
            "30",
            "--seed",
            "1",
            "--json",
            str(out),
            "--label",
            "chinchilla",
        ]
    )
    assert code == 0
    text = capsys.readouterr().out
    assert "approach3 fit (parametric_loss) of 245 points — chinchilla" in text
    assert "alpha" in text and "leave-largest-budget-out" in text
    raw = json.loads(out.read_text())
    assert raw["method"] == "approach3" and raw["n_points"] == 245
    assert set(raw["params"]) == {"E", "A", "B", "alpha", "beta"}
    assert set(raw["exponents"]) == {"a", "b"}
    assert {"E", "alpha", "beta", "a", "b", "G"} <= set(raw["ci"])
    assert raw["conventions"]["tokens"] == "C/(6N) from column 'Training FLOP'"
    assert raw["conventions"]["huber_delta"] == 1e-3 and raw["objective"]["reduction"] == "sum"
    assert raw["objective"]["bootstrap"]["seed"] == 1
    assert raw["extrapolation"]["scheme"] == "leave-largest-budget-out"
    assert {"slscale", "numpy", "scipy", "python"} <= set(raw["versions"])
    # tokens derived from FLOPs: D = C/(6N) for every point
    n, c, d = (np.array(raw["data"][k]) for k in ("n_params", "flops", "tokens"))
    np.testing.assert_allclose(d, c / (6 * n), rtol=1e-12)


def test_approach2_from_csv_with_filters(run_cli, tmp_path, capsys):
    out = tmp_path / "a2.json"
    code = run_cli(
        [
            "fit",
            "approach2",
            "--csv",
            ISOFLOPS,
            "--params-col",
            "params",
            "--budget-col",
            "budget",
            "--where",
            "experiment=llama_3__raw_loss",
            "--where",
            "outlier=False",
            "--bootstrap",
            "100",
            "--json",
            str(out),
        ]
    )
    assert code == 0
    result = FitResult.load(out)
    frame = pd.read_csv(ISOFLOPS)
    kept = (frame["experiment"] == "llama_3__raw_loss") & ~frame["outlier"]
    assert result.method == "approach2" and result.n_points == kept.sum()
    assert 0.45 < result.params["a"] < 0.55 and result.ci["a"][0] < result.params["a"]
    assert len(result.details["budgets"]) == 8
    assert "warning: budget C=6e+19: optimum N is off-centre" in capsys.readouterr().out


def test_approach1_and_metric_from_csv(run_cli, tmp_path, capsys):
    out = tmp_path / "a1.json"
    assert (
        run_cli(
            [
                "fit",
                "approach1",
                "--csv",
                OLMO,
                "--params-col",
                "n_params_non_embedding",
                "--flops-col",
                "flops_6nd",
                "--bootstrap",
                "20",
                "--json",
                str(out),
            ]
        )
        == 0
    )
    assert FitResult.load(out).conventions["n_params"].startswith("non-embedding")
    out = tmp_path / "m.json"
    assert (
        run_cli(
            [
                "fit",
                "metric",
                "--csv",
                OLMO,
                "--flops-col",
                "flops_6nd",
                "--metric-col",
                "hellaswag",
                "--selection",
                "envelope",
                "--bootstrap",
                "20",
                "--json",
                str(out),
            ]
        )
        == 0
    )
    metric = FitResult.load(out)
    assert metric.objective["selection"] == "envelope" and metric.params["b"] > 0
    assert metric.extrapolation["n_test"] >= 1  # runs known from the run_id column


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["approach3", "--csv", CHINCHILLA], "--params-col 'n_params': no such column"),
        (["approach3", "--csv", "nope.csv"], "--csv nope.csv: no such file"),
        (["approach3", "--csv", CHINCHILLA, "--where", "loss"], "expected KEY=VALUE"),
        (["approach3", "--csv", CHINCHILLA, "--where", "colour=red"], "no column 'colour'"),
        (["approach3", "--csv", CHINCHILLA, "--workdir", "w"], "either --csv FILE or a store"),
        (
            [
                "approach2",
                "--csv",
                ISOFLOPS,
                "--params-col",
                "params",
                "--budget-col",
                "budget",
                "--where",
                "budget=1e19",
            ],
            "at least two compute budgets",
        ),
        (
            ["approach3", "--csv", CHINCHILLA, "--params-col", "Model Size"],
            "no tokens column 'tokens' and no FLOPs column 'flops'",
        ),
    ],
)
def test_errors_are_one_line(run_cli, argv, message, capsys):
    assert run_cli(["fit", *argv, "--bootstrap", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("slscale: error: ") and message in err and err.count("\n") == 1


def test_no_source_is_an_error(run_cli, capsys):
    assert run_cli(["fit", "metric"]) == 2
    assert "pass --csv FILE, or --workdir DIR" in capsys.readouterr().err


# -- from a real results store ----------------------------------------------------------------
LAWS = {
    Modality.INTERLEAVED: {"E": 1.6, "A": 300.0, "B": 900.0, "alpha": 0.30, "beta": 0.40},
    Modality.TEXTLESS: {"E": 1.73, "A": 13.9, "B": 39.8, "alpha": 0.25, "beta": 0.24},
}


def _spec(modality: Modality, tokens: int, seed: int) -> dict:
    arch = Architecture(
        num_layers=2,
        hidden_size=64,
        num_heads=4,
        num_kv_heads=2,
        intermediate_size=128,
        vocab_size=600,
    )
    return spec_to_dict(
        RunSpec(family="llama", modality=modality, tokens=tokens, arch=arch, seed=seed)
    )


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A study whose store holds two IsoFLOP sweeps (interleaved, textless) of known laws,
    with training curves and an sSC score per run."""
    n, d, c = isoflop_grid([1e16, 1e17, 1e18, 1e19], 7, 1.4, centre=lambda c: 0.3 * (c / 6) ** 0.5)
    with open_store(tmp_path) as store:
        for k, (modality, law) in enumerate(LAWS.items()):
            loss = synthetic_losses(law, n, d, 0.003, seed=k)
            ids = {f"{modality}-{i}": _spec(modality, int(d[i]), i) for i in range(n.size)}
            store.register(ids)
            for i, run in enumerate(ids):
                store.set_state(run, RunState.SUCCEEDED)
                store.set_summary(
                    run,
                    {
                        "n_params": n[i],
                        "n_params_non_embedding": 0.9 * n[i],
                        "tokens": d[i],
                        "flops_6nd": c[i],
                        "loss": loss[i],
                    },
                )
                steps = np.linspace(d[i] / 20, d[i], 12)
                store.log_metrics(
                    Metric(
                        run,
                        s,
                        "loss",
                        float(parametric_loss(n[i], t, **law)),
                        tokens=int(t),
                        flops=6 * n[i] * t,
                    )
                    for s, t in enumerate(steps, start=1)
                )
                store.log_evals(
                    [
                        EvalResult(
                            run,
                            12,
                            "sSC",
                            "S->S",
                            float(0.3 * c[i] ** 0.01 * (1 - 0.01 * abs(i % 7 - 3))),
                            1871,
                            "sum",
                            margin=float(0.005 * np.log10(c[i] / 1e18)) - 0.002 * abs(i % 7 - 3),
                        )
                    ]
                )
        store.register({"pending": _spec(Modality.TEXTLESS, 1000, 99)})
    return tmp_path


def test_approach3_from_the_store_per_arm(run_cli, workdir, tmp_path):
    for modality, law in LAWS.items():
        out = tmp_path / f"{modality}.json"
        assert (
            run_cli(
                [
                    "fit",
                    "approach3",
                    "--workdir",
                    str(workdir),
                    "--where",
                    f"modality={modality}",
                    "--bootstrap",
                    "40",
                    "--json",
                    str(out),
                ]
            )
            == 0
        )
        result = FitResult.load(out)
        assert result.n_points == 28  # the PENDING run is not fitted
        assert result.conventions["n_params"] == "total (column 'n_params')"
        assert result.conventions["tokens"] == "column 'summary.tokens'"
        a_true = law["beta"] / (law["alpha"] + law["beta"])
        assert abs(result.exponents["a"] - a_true) < 0.1


def test_approach2_from_the_store(run_cli, workdir, tmp_path):
    out = tmp_path / "a2.json"
    assert (
        run_cli(
            [
                "fit",
                "approach2",
                "--workdir",
                str(workdir),
                "--where",
                "modality=interleaved",
                "--bootstrap",
                "50",
                "--json",
                str(out),
            ]
        )
        == 0
    )
    result = FitResult.load(out)
    assert result.n_points == 28 and len(result.details["budgets"]) == 4  # grouped from FLOPs
    assert result.conventions["flops"] == "6ND (column 'flops_6nd')"
    assert abs(result.params["a"] - 0.4 / 0.7) < 0.1


def test_approach1_and_metric_from_the_store(run_cli, workdir, tmp_path, capsys):
    out = tmp_path / "a1.json"
    assert (
        run_cli(
            [
                "fit",
                "approach1",
                "--workdir",
                str(workdir),
                "--where",
                "modality=textless",
                "--bootstrap",
                "20",
                "--json",
                str(out),
            ]
        )
        == 0
    )
    curves = FitResult.load(out)
    assert curves.n_points == 28 * 12 and curves.objective["n_runs"] == 28
    out = tmp_path / "m.json"
    assert (
        run_cli(
            [
                "fit",
                "metric",
                "--workdir",
                str(workdir),
                "--benchmark",
                "sSC",
                "--bootstrap",
                "20",
                "--json",
                str(out),
            ]
        )
        == 0
    )
    metric = FitResult.load(out)
    assert metric.n_points == 4 and metric.params["b"] == pytest.approx(0.01, abs=1e-9)
    assert (
        run_cli(
            [
                "fit",
                "metric",
                "--workdir",
                str(workdir),
                "--benchmark",
                "sSC",
                "--selection",
                "envelope",
                "--bootstrap",
                "0",
            ]
        )
        == 0
    )
    assert run_cli(["fit", "metric", "--workdir", str(workdir), "--benchmark", "tSC"]) == 2
    assert "no 'tSC' evaluations" in capsys.readouterr().err


def test_margin_law_from_the_store(run_cli, workdir, tmp_path, capsys):
    out = tmp_path / "margin.json"
    argv = ["fit", "metric", "--workdir", str(workdir), "--benchmark", "sSC"]
    law = ["--metric-col", "margin", "--law", "margin", "--bootstrap", "50", "--json", str(out)]
    assert run_cli(argv + law) == 0
    margin = FitResult.load(out)
    assert margin.law == "margin_log_linear" and margin.n_points == 4
    assert margin.params["m"] == pytest.approx(-0.03, abs=1e-9)  # 0 at 1e18, 6 decades up
    assert margin.params["s"] == pytest.approx(0.005, abs=1e-9)
    assert "sSC" in margin.conventions["metric"] and "margin" in margin.conventions["metric"]
    # The margins run from -0.016 to +0.005 nats: a power law refuses them in one line.
    assert run_cli([*argv, "--metric-col", "margin"]) == 2
    assert "must be finite and > 0" in capsys.readouterr().err
    assert run_cli([*argv, "--metric-col", "nope"]) == 2
    assert "--metric-col nope" in capsys.readouterr().err


def test_store_with_no_finished_runs(run_cli, tmp_path, capsys):
    with open_store(tmp_path) as store:
        store.register({"pending": _spec(Modality.TEXTLESS, 1000, 1)})
    assert run_cli(["fit", "approach3", "--workdir", str(tmp_path)]) == 2
    assert "no SUCCEEDED runs" in capsys.readouterr().err


def test_csv_frame_written_by_pandas_round_trips(run_cli, tmp_path):
    n, d, _ = isoflop_grid([1e17, 1e18, 1e19], 7, 1.4)
    path = tmp_path / "runs.csv"
    pd.DataFrame(
        {
            "n_params": n,
            "tokens": d,
            "loss": parametric_loss(n, d, E=1.8, A=400.0, B=2000.0, alpha=0.35, beta=0.37),
        }
    ).to_csv(path, index=False)
    out = tmp_path / "fit.json"
    assert (
        run_cli(["fit", "approach3", "--csv", str(path), "--bootstrap", "0", "--json", str(out)])
        == 0
    )
    assert FitResult.load(out).params["alpha"] == pytest.approx(0.35, rel=1e-6)


def test_wsd_trunks_are_not_fitted_unless_asked_for(run_cli, workdir, tmp_path):
    """A ladder's trunk ran at the peak rate to its end: its final loss is no point of a law."""
    recipe = Recipe(schedule="wsd", global_batch_size=1, context_length=100)
    trunk = dataclasses.replace(
        spec_from_dict(_spec(Modality.INTERLEAVED, 800, 0)),
        recipe=recipe,
        branch_tokens=(400, 800),
    )
    with open_store(workdir) as store:
        store.register({"trunk": spec_to_dict(trunk)})
        store.set_state("trunk", RunState.SUCCEEDED)
        summary = {"n_params": 5e7, "tokens": 2e9, "flops_6nd": 6e17, "loss": 2.5}
        store.set_summary("trunk", summary)
    points = {}
    for flags in ((), ("--include-trunks",)):
        out = tmp_path / f"a3{len(flags)}.json"
        where = ["--where", "modality=interleaved", "--bootstrap", "0", "--json", str(out)]
        command = ["fit", "approach3", "--workdir", str(workdir), *where, *flags]
        assert run_cli(command) == 0
        points[flags] = FitResult.load(out).n_points
    assert points == {(): 28, ("--include-trunks",): 29}
