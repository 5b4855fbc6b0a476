"""Plans at a chosen width: --gpus-per-run / --max-hours-per-run snapshots of sims-paper, the
grid's resources: block, the study's makespan on a cluster, and the launch's request shape.

Regenerate the snapshots after an intended change with
``SLSCALE_UPDATE_SNAPSHOTS=1 pytest tests/sweep/test_plan_targets.py`` and review the diff.
"""

import json
import os
import re
from pathlib import Path

import pytest

from slscale.cli import main
from slscale.identity import run_id
from slscale.sweep import plan as plan_mod
from slscale.sweep.grid import GridSpec, expand, expand_with_targets
from slscale.sweep.io import grid_to_yaml, load_grid
from slscale.sweep.launch import LaunchOptions, dry_run, run_requests, with_planned_settings
from slscale.sweep.scheduler.policy import Resources, SimJob, simulate
from slscale.sweep.scheduler.runners import TrainerRun
from slscale.sweep.targets import ResourceTarget

SNAPSHOTS = Path(__file__).parent / "snapshots"
SIMS_BATCH = 256  # SIMS recipe: global batch of 256 sequences


def _plan_json(capsys, *flags: str) -> list[dict]:
    assert main(["grid", "plan", "sims-paper", "--json", *flags]) == 0
    rows = json.loads(capsys.readouterr().out)
    return [
        {k: (float(f"{v:.6g}") if isinstance(v, float) else v) for k, v in r.items()} for r in rows
    ]


def _snapshot(name: str, rows: list[dict]) -> list[dict]:
    path = SNAPSHOTS / f"{name}.json"
    if os.environ.get("SLSCALE_UPDATE_SNAPSHOTS"):
        path.write_text(json.dumps(rows, indent=1) + "\n")
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def narrow():
    return {
        r.run_id: r for r in plan_mod.plan(expand(load_grid("sims-paper"), plan_mod.param_counts))
    }


def test_sims_paper_on_eight_gpus_per_run(capsys, narrow):
    rows = _plan_json(capsys, "--gpus-per-run", "8")
    assert rows == _snapshot("sims-paper--gpus-per-run-8", rows)
    assert {(r["gpus"], r["nodes"]) for r in rows} == {(8, 1)}
    for r in rows:
        micro = r["micro_batch_size"]
        assert micro & (micro - 1) == 0 and micro * r["grad_accum_steps"] * 8 == SIMS_BATCH
        assert r["zero_stage"] <= narrow[r["run_id"]].zero_stage  # never a higher stage
        assert r["gpu_hours"] == pytest.approx(narrow[r["run_id"]].gpu_hours, rel=1e-5)
        assert r["wall_hours"] == pytest.approx(r["gpu_hours"] / 8, rel=1e-5)


def test_sims_paper_within_a_week_per_run(capsys, narrow):
    rows = _plan_json(capsys, "--max-hours-per-run", "168")
    assert rows == _snapshot("sims-paper--max-hours-per-run-168", rows)
    assert max(r["wall_hours"] for r in rows) <= 168
    assert max(r["gpus"] for r in rows) == 16  # the 1,835 GPU-hour runs: 229 h on 8 GPUs
    for r in rows:
        before = narrow[r["run_id"]]
        assert r["gpu_hours"] == pytest.approx(before.gpu_hours, rel=1e-5)
        assert r["gpus"] == before.gpus or before.wall_hours > 168  # only slow runs widen
        assert r["gpus"] == before.gpus or r["wall_hours"] * 2 > 168  # and no further
        assert r["nodes"] == max(1, r["gpus"] // 8)


def test_the_table_shows_width_and_wall_clock_and_the_makespan(capsys):
    assert (
        main(["grid", "plan", "sims-paper", "--max-hours-per-run", "168", "--cluster-gpus", "64"])
        == 0
    )
    out = capsys.readouterr().out
    header = out.splitlines()[1].split()
    assert header[6:12] == ["GPUs", "nodes", "ZeRO", "mb×acc", "GPU-h", "wall-h"]
    specs = expand(load_grid("sims-paper"), plan_mod.param_counts)
    target = ResourceTarget(max_hours_per_run=168)
    rows = plan_mod.plan(specs, targets={run_id(s): target for s in specs})
    jobs = [
        SimJob(
            run_id=r.run_id,
            hours=r.gpu_hours / r.gpus,
            resources=Resources(workers=r.gpus, gpus_per_worker=1, cpus_per_worker=0),
        )
        for r in rows
    ]
    expected = simulate(jobs, [(0.0, 8.0)] * 8, "largest-first").makespan_hours
    line = "makespan on 64 GPUs (8 per node), largest-first as the driver places runs"
    assert f"{line}: {expected:,.0f} h" in out
    assert 417 <= expected <= 1.1 * 417  # the bound: 26,671 GPU-hours / 64 GPUs


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (
            ["--gpus-per-run", "2"],
            r"run qwen2-qwen2.5-7b-\S+: does not fit in memory on 2 x a100-80gb",
        ),
        (
            ["--gpus-per-run", "8", "--cluster-gpus", "4"],
            r"needs 8 GPUs but the cluster has 4: raise --cluster-gpus",
        ),
        (["--max-hours-per-run", "10"], r"takes 29 h even on 64 x a100-80gb"),
        (
            ["--max-hours-per-run", "100", "--max-nodes-per-run", "1"],
            r"raise --max-hours-per-run or --max-nodes-per-run",
        ),
        (["--gpus-per-node", "0"], r"gpus_per_node \(--gpus-per-node\) = 0"),
    ],
)
def test_unmeetable_targets_exit_2_with_one_line(capsys, flags, message):
    assert main(["grid", "plan", "sims-paper", *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("slscale: error:") and "\n" not in err
    assert re.search(message, err), err


GRID = """\
name: widths
base: {family: llama, modality: textless, size: cm-85m, tokens: 1.0e+11}
resources: {max_hours_per_run: 24, gpus_per_node: 4}
axes:
  seed: [0]
  arm:
  - {recipe: {lr: 5.0e-4}}
  - {recipe: {lr: 1.0e-3}, resources: {gpus_per_run: 2}}
"""


def test_grid_resources_apply_per_axis_value_and_flags_override(tmp_path, capsys):
    path = tmp_path / "widths.yaml"
    path.write_text(GRID)
    grid = load_grid(path)
    runs = expand_with_targets(grid, plan_mod.param_counts)
    assert [t for _, t in runs] == [
        ResourceTarget(max_hours_per_run=24.0, gpus_per_node=4),
        ResourceTarget(gpus_per_run=2, gpus_per_node=4),
    ]
    assert main(["grid", "plan", str(path), "--json"]) == 0
    widths = [(r["gpus"], r["wall_hours"] <= 24) for r in json.loads(capsys.readouterr().out)]
    assert widths == [(8, True), (2, False)]  # 85M on 1e11 tokens: 165 GPU-hours
    assert main(["grid", "plan", str(path), "--json", "--gpus-per-run", "16"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["gpus"], r["nodes"]) for r in rows] == [(16, 4), (16, 4)]  # 4-GPU nodes


def test_resources_never_enter_run_ids_and_round_trip(tmp_path):
    path = tmp_path / "widths.yaml"
    path.write_text(GRID)
    grid = load_grid(path)
    bare = GridSpec.from_dict(
        {
            **grid.to_dict(),
            "resources": {},
            "axes": {"seed": [0], "arm": [{"recipe": {"lr": 5.0e-4}}, {"recipe": {"lr": 1.0e-3}}]},
        }
    )
    ids = [run_id(s) for s in expand(grid, plan_mod.param_counts)]
    assert ids == [run_id(s) for s in expand(bare, plan_mod.param_counts)]
    again = tmp_path / "again.yaml"
    again.write_text(grid_to_yaml(grid))
    assert load_grid(again) == grid
    assert "resources: {max_hours_per_run: 24, gpus_per_node: 4}" in grid_to_yaml(grid)


def test_bad_resources_blocks_name_the_grid_and_key(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text(GRID.replace("gpus_per_run: 2", "gpus_per_rnu: 2"))
    assert main(["grid", "plan", str(path)]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml: grid 'widths', axis 'arm': unknown key 'resources.gpus_per_rnu'" in err
    path.write_text(GRID.replace("max_hours_per_run: 24", "max_hours_per_run: 24, gpus_per_run: 2"))
    assert main(["grid", "plan", str(path)]) == 2
    assert "both set" in capsys.readouterr().err


def test_launch_asks_ray_for_the_planned_width_and_trains_at_it(tmp_path):
    """Wide runs are worker groups of one GPU per worker, the request shape of the CPU
    ``--workers-per-run`` runs; the trainer gets each run's planned ZeRO stage and micro-batch."""
    specs = expand(load_grid("sims-paper"), plan_mod.param_counts)
    options = LaunchOptions(
        workdir=str(tmp_path), resources=ResourceTarget(max_hours_per_run=168), cluster_gpus=64
    )
    plan = dry_run(specs, options)
    assert plan.makespan is not None and 417 <= plan.makespan.makespan_hours <= 1.1 * 417
    requests = {r.run_id: r for r in run_requests(plan, options, gpus_in_cluster=True)}
    wide = [row for row in plan.rows if row.gpus == 16]
    assert wide and all(
        requests[row.run_id].resources
        == Resources(workers=16, cpus_per_worker=1.0, gpus_per_worker=1.0)
        and requests[row.run_id].work == pytest.approx(row.wall_hours)
        for row in wide
    )
    trainer = with_planned_settings(
        TrainerRun(job_builder=dict, plan_gpu="a100-80gb"),
        plan,
        list(requests.values()),
        "a100-80gb",
    )
    assert isinstance(trainer, TrainerRun)
    assert trainer.planned[wide[0].run_id] == {
        16: {"zero_stage": wide[0].zero_stage, "micro_batch_size": wide[0].micro_batch_size}
    }


def test_dry_run_prints_widths_and_makespan(tmp_path, capsys):
    argv = ["sweep", "launch", "sims-paper", "--workdir", str(tmp_path), "--dry-run"]
    assert main([*argv, "--gpus-per-run", "8", "--cluster-gpus", "32"]) == 0
    out = capsys.readouterr().out
    assert out.count("GPUs=8  nodes=1") == 34
    assert "makespan of the runs to run:" in out
    assert not (tmp_path / "results.db").exists()
