"""Plans of the shipped grids (snapshots), `grid plan` output, and its bad-input errors.

Regenerate the snapshots after an intended change with
``SLSCALE_UPDATE_SNAPSHOTS=1 pytest tests/sweep/test_plan.py`` and review the diff.
"""

import json
import os
import sqlite3
from pathlib import Path

import pytest

from slscale.cli import main
from slscale.spec import RunState
from slscale.store import open_store
from slscale.sweep.examples import EXAMPLES
from slscale.sweep.grid import expand
from slscale.sweep.io import load_grid
from slscale.sweep.plan import param_counts, plan

SNAPSHOTS = Path(__file__).parent / "snapshots"
KEYS = (
    "run_id",
    "n_params",
    "n_params_non_embedding",
    "tokens",
    "flops_6nd",
    "flops_exact",
    "gpus",
    "zero_stage",
    "gpu_hours",
    "state",
)


def _rounded(row: dict) -> dict:
    return {k: (float(f"{v:.6g}") if isinstance(v, float) else v) for k, v in row.items()}


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_shipped_grid_plan_matches_snapshot(name):
    rows = [_rounded(r.to_json()) for r in plan(expand(load_grid(name), param_counts))]
    path = SNAPSHOTS / f"{name}.json"
    if os.environ.get("SLSCALE_UPDATE_SNAPSHOTS"):
        path.write_text(json.dumps(rows, indent=1) + "\n")
    assert rows == json.loads(path.read_text())


def test_sims_grid_is_a_real_study():
    rows = plan(expand(load_grid("sims-paper"), param_counts))
    assert len(rows) >= 30  # dozens of runs
    assert {r.modality for r in rows} == {"textless", "interleaved"}
    budgets = {round(r.flops_6nd, -17) for r in rows}
    assert min(r.flops_6nd for r in rows) >= 0.95 * 2e18
    assert max(r.flops_6nd for r in rows) <= 1.05 * 7e20
    assert len(budgets) >= 5
    seven_b = [r for r in rows if r.size == "qwen2.5-7b"]
    assert seven_b and all(r.gpus >= 2 or r.zero_stage >= 1 for r in seven_b)


def test_plan_json_has_the_documented_keys(capsys):
    assert main(["grid", "plan", "mini-cpu", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows and all(set(KEYS) <= set(r) for r in rows)
    assert all(r["state"] == "new" for r in rows)


def test_plan_shows_store_states(tmp_path, capsys):
    specs = expand(load_grid("mini-cpu"), param_counts)
    from slscale.identity import run_id
    from slscale.spec import spec_to_dict

    ids = [run_id(s) for s in specs]
    with open_store(tmp_path) as store:
        store.register({rid: spec_to_dict(s) for rid, s in zip(ids, specs, strict=True)})
        store.set_state(ids[0], RunState.SUCCEEDED)
        store.set_state(ids[1], RunState.FAILED, error="boom")
    assert main(["grid", "plan", "mini-cpu", "--json", "--workdir", str(tmp_path)]) == 0
    states = {r["run_id"]: r["state"] for r in json.loads(capsys.readouterr().out)}
    assert states[ids[0]] == "done" and states[ids[1]] == "failed"
    assert states[ids[2]] == "pending"


def test_explain_names_the_varying_fields(capsys):
    assert main(["grid", "plan", "mini-cpu", "--explain"]) == 0
    out = capsys.readouterr().out
    assert "fields that vary across the grid: init, mix.interleaved_share" in out
    assert "tokens" in out and "units_only_vocab" in out


RATIO = "generators: [{ratio_grid: {sizes: [%s], tokens_per_param: [2]}}]"
GRID_HEAD = (
    "name: bad\nbase: {modality: textless, recipe: {global_batch_size: 4, context_length: 8}}\n"
)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            "axes: {family: [gpt9]}\n" + RATIO % "1M",
            "gpt9",
        ),
        (
            "axes: {family: [llama]}\n" + RATIO % "1e30",
            r"bad.yaml: grid 'bad', generator 'ratio_grid': size 1e+30",
        ),
        (
            "axes: {family: [llama]}\n" + RATIO % "huge",
            "huge",
        ),
        (
            "axes: {family: [llama]}\ngenerators: [{isoflop_grid: {budgets: [-3], sizes: [1M]}}]",
            "budgets = -3",
        ),
    ],
)
def test_bad_grids_exit_2_with_one_line(tmp_path, capsys, body, message):
    path = tmp_path / "bad.yaml"
    path.write_text(GRID_HEAD + body + "\n")
    assert main(["grid", "plan", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("slscale: error:") and "\n" not in err
    assert message in err


def test_malformed_yaml_exits_2(tmp_path, capsys):
    path = tmp_path / "broken.yaml"
    path.write_text("name: x\nbase: [unclosed\n")
    assert main(["grid", "plan", str(path)]) == 2
    err = capsys.readouterr().err
    assert "broken.yaml" in err and "line" in err


def test_unopenable_store_exits_2(tmp_path, capsys):
    url = "postgresql://user:secret@127.0.0.1:1/nodb"
    assert main(["grid", "plan", "mini-cpu", "--store", url]) == 2
    err = capsys.readouterr().err
    assert "secret" not in err and "127.0.0.1" in err


def test_store_file_is_not_created_by_planning(tmp_path):
    assert main(["grid", "plan", "mini-cpu", "--workdir", str(tmp_path / "w")]) == 0
    assert not (tmp_path / "w" / "results.db").exists()
    assert sqlite3  # the store is only created when a sweep registers runs
