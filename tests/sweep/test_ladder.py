"""The wsd_ladder generator: per size one trunk and a branch per budget, branched at (1 − f)·D
in whole steps; branch ids follow their trunk and branch point; `grid plan` shows the ladder."""

import dataclasses
import json

import pytest

from slscale.cli import main
from slscale.compute import flops_6nd
from slscale.errors import ConfigError
from slscale.identity import run_id
from slscale.sweep.generators import wsd_ladder
from slscale.sweep.grid import GridSpec, expand
from slscale.sweep.io import grid_to_yaml, load_grid

SIZES = {"s1": 1_000_000, "s2": 2_000_000}
STEP = 1_000  # tokens per step of BASE's recipe


def counter(partial):
    n = SIZES[partial["size"]]
    return {"n_params": n, "n_params_non_embedding": n // 2}


BASE = {
    "family": "llama",
    "modality": "textless",
    "recipe": {"global_batch_size": 4, "context_length": 250, "warmup_fraction": 0.01},
}


def ladder(**kw) -> GridSpec:
    settings = {"sizes": ["s1", "s2"], "tokens_per_param": [2, 5, 10, 20]} | kw
    return GridSpec(name="ladder", base=BASE, generators=[wsd_ladder(**settings)])


def test_each_size_gets_a_trunk_and_a_branch_per_budget():
    runs = expand(ladder(), counter)
    assert [(r.size, r.is_trunk, r.tokens) for r in runs] == [
        ("s1", True, 16_000_000),
        ("s1", False, 2_000_000),
        ("s1", False, 5_000_000),
        ("s1", False, 10_000_000),
        ("s1", False, 20_000_000),
        ("s2", True, 32_000_000),
        ("s2", False, 4_000_000),
        ("s2", False, 10_000_000),
        ("s2", False, 20_000_000),
        ("s2", False, 40_000_000),
    ]
    trunk, *branches = runs[:5]
    # (1 - 0.2)·D in whole steps of 1,000 tokens; the trunk runs to the last branch point
    assert [b.branch.from_tokens for b in branches] == [1_600_000, 4_000_000, 8_000_000, 16_000_000]
    assert trunk.branch_tokens == (1_600_000, 4_000_000, 8_000_000, 16_000_000)
    assert {b.branch.parent for b in branches} == {run_id(trunk)}
    assert [b.tokens_trained for b in branches] == [400_000, 1_000_000, 2_000_000, 4_000_000]
    # one recipe per ladder: wsd, the warm-up of the longest budget (1% of 20,000 steps) pinned
    assert {r.recipe for r in runs[:5]} == {trunk.recipe}
    assert (trunk.recipe.schedule, trunk.recipe.decay_fraction) == ("wsd", 0.2)
    assert (trunk.recipe.warmup_fraction, trunk.recipe.min_warmup_steps) == (0.0, 200)
    assert runs[5].recipe.min_warmup_steps == 400  # the other size's longest budget


def test_branch_points_round_to_whole_optimizer_steps():
    grid = ladder(sizes=["s1"], tokens_per_param=None, tokens=[12_000, 13_000], decay_fraction=0.3)
    trunk, short, long = expand(grid, counter)
    # 12 steps decay over round(3.6) = 4, 13 over round(3.9) = 4
    assert (short.branch.from_tokens, long.branch.from_tokens) == (8_000, 9_000)
    assert trunk.tokens == 9_000 and trunk.recipe.decay_fraction == 0.3


def test_branch_ids_are_stable_and_follow_the_branch_point(tmp_path):
    ids = [run_id(r) for r in expand(ladder(), counter)]
    assert ids == [run_id(r) for r in expand(ladder(), counter)]
    path = tmp_path / "ladder.yaml"
    path.write_text(grid_to_yaml(ladder()))
    assert load_grid(path) == ladder()
    assert [run_id(r) for r in expand(load_grid(path), counter)] == ids
    moved = [run_id(r) for r in expand(ladder(decay_fraction=0.25), counter)]
    assert not set(moved) & set(ids)
    shaped = [run_id(r) for r in expand(ladder(decay_shape="linear"), counter)]
    assert not set(shaped) & set(ids)


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"tokens": [1e6]}, "give the budgets as one of 'tokens_per_param' and 'tokens'"),
        ({"tokens_per_param": None}, "give the budgets as one of 'tokens_per_param' and 'tokens'"),
        ({"decay_fraction": 1.5}, r"'recipe.decay_fraction' = 1.5: must be in \(0, 1\)"),
        (
            {"tokens_per_param": [0.01, 20]},  # 10 steps, warm-up of 200
            r"size s1: budget 10000 tokens \(10 steps\) would decay from step 8, inside the "
            r"ladder's warm-up of 200 steps",
        ),
    ],
)
def test_bad_ladders_say_what_to_change(kw, message):
    with pytest.raises(ConfigError, match=r"grid 'ladder', generator 'wsd_ladder'.*" + message):
        expand(ladder(**kw), counter)


MINI = """\
name: mini-ladder
base:
  family: llama
  modality: textless
  units_only_vocab: true
  recipe: {context_length: 128, global_batch_size: 16, warmup_fraction: 0.05}
generators:
  - wsd_ladder: {sizes: [mini-25k, mini-50k], tokens_per_param: [5, 10, 20, 40]}
  - ratio_grid: {sizes: [mini-25k], tokens_per_param: [10]}
"""


def test_plan_json_names_parents_and_what_each_run_trains(tmp_path, capsys):
    path = tmp_path / "mini-ladder.yaml"
    path.write_text(MINI)
    assert main(["grid", "plan", str(path), "--json"]) == 0
    rows = {r["run_id"]: r for r in json.loads(capsys.readouterr().out)}
    branches = [r for r in rows.values() if r["parent"] is not None]
    assert len(rows) == 11 and len(branches) == 8
    for row in branches:
        trunk = rows[row["parent"]]
        assert trunk["parent"] is None and trunk["size"] == row["size"]
        assert row["tokens_trained"] < row["tokens"]
        assert row["flops_6nd"] == pytest.approx(flops_6nd(row["n_params"], row["tokens"]))
    trunks = {r["parent"] for r in branches}
    assert all(rows[t]["tokens_trained"] == rows[t]["tokens"] for t in trunks)
    (alone,) = [r for r in rows.values() if r["parent"] is None and r["run_id"] not in trunks]
    assert alone["tokens_trained"] == alone["tokens"]  # the cosine run of the ratio grid

    assert main(["grid", "plan", str(path)]) == 0
    text = capsys.readouterr().out
    trained = sum(flops_6nd(r["n_params"], r["tokens_trained"]) for r in branches)
    trained += sum(rows[t]["flops_6nd"] for t in trunks)
    independent = sum(r["flops_6nd"] for r in branches)
    assert (
        f"WSD ladders: 2 trunks and 8 branches train {trained:.3g} FLOPs (6ND); independent "
        f"runs of the same 8 cells would train {independent:.3g} ({trained / independent:.2f}×)"
    ) in text
    assert " trains " in text.splitlines()[1]


def test_a_plan_without_ladders_has_no_trains_column(capsys):
    assert main(["grid", "plan", "mini-cpu"]) == 0
    out = capsys.readouterr().out
    assert " D/N " in out.splitlines()[1] and " trains " not in out and "WSD" not in out


def test_the_makespan_lets_each_branch_wait_for_its_trunks_branch_point():
    from slscale.sweep import plan as plan_mod

    family = {"family": "llama", "modality": "textless", "units_only_vocab": True}
    grid = GridSpec(
        name="ladder",
        base={**family, "recipe": {"global_batch_size": 8, "context_length": 256}},
        generators=[wsd_ladder(sizes=["mini-25k"], tokens=[2_048_000, 4_096_000])],
    )
    rows = plan_mod.plan(expand(grid, plan_mod.param_counts), gpu="a100-80gb")
    (trunk,) = [r for r in rows if r.parent is None]
    branches = [r for r in rows if r.parent == trunk.run_id]
    result = plan_mod.makespan(rows, [(0.0, 8.0)])  # a GPU for every run
    assert result is not None
    for b in branches:
        share = (b.tokens - b.tokens_trained) / trunk.tokens  # where it branches off the trunk
        assert result.starts[b.run_id] == pytest.approx(trunk.wall_hours * share, rel=1e-9)
    ends = [result.starts[r.run_id] + r.wall_hours for r in rows]
    assert result.makespan_hours == pytest.approx(max(ends), rel=1e-9)
    assert result.makespan_hours > max(r.wall_hours for r in rows)  # the chain, not one run
    # a launch on GPUs estimates the same (its requests' work: the planned hours)
    from slscale.sweep.launch import _estimate
    from slscale.sweep.scheduler.api import RunRequest
    from slscale.sweep.scheduler.policy import Resources

    big = [dataclasses.replace(r, wall_hours=r.wall_hours * 1e9) for r in rows]  # whole hours
    gpu = Resources(workers=1, cpus_per_worker=0.0, gpus_per_worker=1.0)
    requests = [
        RunRequest(run_id=r.run_id, spec={}, resources=gpu, work=r.wall_hours, tokens=1, flops=1)
        for r in big
    ]
    line = _estimate(requests, big, [(0.0, 8.0)], "largest-first")
    hours = result.makespan_hours * 1e9
    assert hours > 1.05 * max(r.wall_hours for r in big)
    assert line is not None and f"expected makespan {hours:,.0f} h" in line
