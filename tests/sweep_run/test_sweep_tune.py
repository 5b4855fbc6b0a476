"""LR search through the scheduler, and the fitted lr = c·N^k rule."""

from __future__ import annotations

import json
import math

import optuna
import pytest
import yaml
from sweep_run_helpers import ARCH, records

from slscale.cli import main as slscale_cli
from slscale.errors import ConfigError, SlscaleError
from slscale.spec import RunSpec, RunState
from slscale.store.targets import store_url
from slscale.sweep.tune import (
    LRRule,
    SearchSpace,
    SizeResult,
    fit_lr_rule,
    trial_spec,
    with_overrides,
)

pytestmark = pytest.mark.timeout(240)


def result(n, lr):
    return SizeResult(
        size=f"s{n}",
        n_params=2 * n,
        n_params_non_embedding=n,
        lr=lr,
        warmup_fraction=0.01,
        value=3.0,
        run_id=f"r{n}",
        trials=5,
        study="s",
    )


def test_the_rule_recovers_a_known_power_law():
    points = [result(n, 0.2 * n**-0.35) for n in (1e5, 1e6, 1e7, 1e8)]
    rule = fit_lr_rule(points)
    assert rule.k == pytest.approx(-0.35, abs=1e-12)
    assert rule.c == pytest.approx(0.2, rel=1e-9)
    assert rule.lr(1e9) == pytest.approx(0.2 * 1e9**-0.35, rel=1e-9)
    on_total = fit_lr_rule(points, n_kind="n_params")  # N twice as large: same k, c * 2^0.35
    assert on_total.k == pytest.approx(-0.35, abs=1e-12)
    assert on_total.c == pytest.approx(0.2 * 2**0.35, rel=1e-9)


def test_the_rule_round_trips_through_json_and_yaml(tmp_path):
    rule = fit_lr_rule([result(1e6, 1e-3), result(1e7, 5e-4)])
    for name in ("rule.json", "rule.yaml"):
        rule.save(tmp_path / name)
        assert LRRule.load(tmp_path / name) == rule
    assert json.loads((tmp_path / "rule.json").read_text())["rule"] == "lr = c * N^k"


def test_one_size_is_not_enough_for_a_rule():
    with pytest.raises(SlscaleError, match="at least two sizes, got 1"):
        fit_lr_rule([result(1e6, 1e-3), result(1e6, 2e-3)])


def test_a_file_that_is_not_a_rule_names_itself(tmp_path):
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump({"name": "g"}))
    with pytest.raises(ConfigError, match=r"grid\.yaml: not an LR rule file"):
        LRRule.load(path)


def test_search_space_checks_its_ranges():
    with pytest.raises(ConfigError, match=r"--lr-range 0\.1 0\.001"):
        SearchSpace(lr_low=0.1, lr_high=0.001)
    with pytest.raises(ConfigError, match=r"--warmup-range 0\.2 1\.5"):
        SearchSpace(warmup_low=0.2, warmup_high=1.5)


def test_a_trial_keeps_the_floor_ratio_and_overrides_apply():
    base = RunSpec(family="llama", modality="textless", tokens=1000, size="mini-25k")
    trial = trial_spec(base, {"lr": 1e-3, "warmup_fraction": 0.05})
    assert trial.recipe.lr == 1e-3 and trial.recipe.lr_min == pytest.approx(1e-4)
    assert trial.recipe.warmup_fraction == 0.05
    changed = with_overrides(base, ["recipe.context_length=128", "seed=3"])
    assert changed.recipe.context_length == 128 and changed.seed == 3
    with pytest.raises(ConfigError, match="--set 'seed': write FIELD=VALUE"):
        with_overrides(base, ["seed"])


def test_tune_finds_each_sizes_optimum_and_fits_the_rule(ray_address, tmp_path, capsys):
    grid = tmp_path / "grid.yaml"
    wide = {
        **ARCH,
        "num_layers": 2,
        "hidden_size": 64,
        "num_heads": 4,
        "num_kv_heads": 2,
        "intermediate_size": 128,
    }
    grid.write_text(
        yaml.safe_dump(
            {
                "name": "tune",
                "base": {
                    "family": "llama",
                    "modality": "textless",
                    "tokens": 4 * 32 * 4,
                    "recipe": {"global_batch_size": 4, "context_length": 32},
                },
                "axes": {"arch": [ARCH, wide]},
            }
        )
    )
    workdir, out = tmp_path / "w", tmp_path / "rule.yaml"
    # The synthetic loss is lowest at lr = 1.0 * N^-0.5 (N: non-embedding parameters).
    argv = [
        "tune",
        "--grid",
        str(grid),
        "--trials",
        "12",
        "--parallel",
        "3",
        "--lr-range",
        "1e-3",
        "1e-1",
        "--workdir",
        str(workdir),
        "--out",
        str(out),
        "--address",
        ray_address,
        "--quiet",
        "--run-fn",
        "slscale.sweep.scheduler.runners:SyntheticRun",
        "--run-fn-kwargs",
        json.dumps({"lr_optimum": [1.0, -0.5], "store": False}),
    ]
    assert slscale_cli(argv) == 0
    rule = LRRule.load(out)
    for point in rule.points:
        optimum = point["n_params_non_embedding"] ** -0.5
        assert abs(math.log(point["lr"] / optimum)) < 0.7
    # k is the slope through the two sizes' best LRs, ln(74k / 2.3k) = 3.5 apart in ln N, so
    # per-size errors within ±0.7 (above: a factor 2, what 12 TPE trials over two decades
    # reach) bound it to ±1.4 / 3.5 = ±0.40; ±0.35 asks a little more than that bound.
    assert rule.k == pytest.approx(-0.5, abs=0.35)

    # The studies live in the store's database; every trial is a run in the store.
    url = store_url(workdir).render_as_string(hide_password=False)
    studies = optuna.get_all_study_summaries(storage=url)
    assert sorted(s.n_trials for s in studies) == [12, 12]
    runs = records(workdir)
    assert {r.state for r in runs.values()} == {RunState.SUCCEEDED}
    assert {p["run_id"] for p in rule.points} <= set(runs)

    # Tuning again with the same target runs nothing new and gives the same rule.
    assert slscale_cli(argv) == 0
    assert records(workdir).keys() == runs.keys()
    assert LRRule.load(out) == rule


def test_tune_on_a_ladder_grid_tries_plain_wsd_runs_at_its_smallest_budget(ray_address, tmp_path):
    """A WSD ladder's budgets are its branches: each size's trials are ordinary wsd runs of
    the ladder's recipe at the smallest branch budget, neither trunks nor branches."""
    grid = tmp_path / "ladder.yaml"
    budgets = [4 * 32 * 4, 4 * 32 * 8]
    grid.write_text(
        yaml.safe_dump(
            {
                "name": "ladder",
                "base": {
                    "family": "llama",
                    "modality": "textless",
                    "units_only_vocab": True,
                    "recipe": {"global_batch_size": 4, "context_length": 32},
                },
                "generators": [
                    {"wsd_ladder": {"sizes": ["mini-25k", "mini-50k"], "tokens": budgets}}
                ],
            }
        )
    )
    workdir, out = tmp_path / "w", tmp_path / "rule.yaml"
    argv = ["tune", "--grid", str(grid), "--trials", "3", "--parallel", "3"]
    argv += ["--workdir", str(workdir), "--out", str(out), "--address", ray_address, "--quiet"]
    argv += ["--run-fn", "slscale.sweep.scheduler.runners:SyntheticRun"]
    argv += ["--run-fn-kwargs", json.dumps({"lr_optimum": [1.0, -0.5], "store": False})]
    assert slscale_cli(argv) == 0
    runs = records(workdir)
    assert len(runs) == 6 and {r.state for r in runs.values()} == {RunState.SUCCEEDED}
    for record in runs.values():
        spec = record.spec
        assert spec["tokens"] == budgets[0]
        assert spec.get("branch") is None and not spec.get("branch_tokens")
        assert spec["recipe"]["schedule"] == "wsd"
    assert len(LRRule.load(out).points) == 2
