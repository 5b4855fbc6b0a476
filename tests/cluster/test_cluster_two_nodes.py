"""A sweep on a two-node Ray cluster started on this machine: runs are placed on both nodes;
losing a node mid-run preempts its run, which resumes from its checkpoint on the surviving
node, and no step is lost or written twice — with the synthetic run, and with the real
DeepSpeed trainer (whose resumed curve equals an uninterrupted one to 1e-6)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from cluster_helpers import EVERY, placements, stored_steps, sweep_driver, uninterrupted_curve
from sweep_run_helpers import curve, executions, records, specs_of, wait_for, write_grid

from slscale.identity import run_id
from slscale.spec import RunState, spec_to_dict
from slscale.store import open_store

STEPS = 40


TRAINER = {
    "log_every_steps": 1,
    "export_model": False,
    "device": "cpu",
    "peak_flops_per_device": 183e9,
}
TRAINER_STEPS = 1200
TRAINER_EVERY = 50


def local_steps(workdir: Path, rid: str) -> int:
    """Steps the run has logged to its own metrics.jsonl (written at once, unlike the store,
    which receives the trainer's rows in batches)."""
    path = workdir / "runs" / rid / "metrics.jsonl"
    if not path.exists():
        return 0
    lines = path.read_text().splitlines()
    return sum(1 for line in lines if line.strip() and json.loads(line)["name"] == "loss")


def lose_node_b_midrun(
    two_nodes: dict[str, Any],
    workdir: Path,
    run_ids: Any,
    progress: Any,
    steps: tuple[int, int],
    timeout: float,
) -> tuple[threading.Thread, dict[str, Any]]:
    """A started thread that kills node_b once one of ``run_ids`` is running there, unfinished,
    with ``progress(workdir, run_id)`` steps within ``steps``; it records that run and its
    steps when the node died."""
    killed: dict[str, Any] = {}

    def victim() -> str | None:
        for rid in run_ids:
            attempts = placements(workdir, rid)
            on_b = bool(attempts) and attempts[-1]["node"] == ["node_b"]
            finished = (workdir / "runs" / rid / "result.json").exists()
            if on_b and not finished and steps[0] <= progress(workdir, rid) <= steps[1]:
                return rid
        return None

    def lose() -> None:
        rid = wait_for(victim, timeout, f"a run {steps[0]} steps into its attempt on node_b")
        two_nodes["nodes"]["node_b"].kill()
        killed["run_id"], killed["steps"] = rid, progress(workdir, rid)

    thread = threading.Thread(target=lose)
    thread.start()
    return thread, killed


@pytest.mark.slow
def test_runs_spread_over_two_nodes_and_survive_losing_one(two_nodes, tmp_path):
    grid = write_grid(tmp_path / "grid.yaml", seeds=[1, 2, 3, 4], steps=[STEPS])
    specs = {run_id(s): s for s in specs_of(grid)}
    workdir = tmp_path / "w"
    driver = sweep_driver(workdir, grid, two_nodes["address"], two_nodes["env"])
    killer, killed = lose_node_b_midrun(two_nodes, workdir, specs, stored_steps, (12, STEPS), 120)
    output = driver.communicate(timeout=300)[0]
    killer.join()
    assert driver.returncode == 0, output
    assert killed, output

    runs = records(workdir)
    assert {runs[r].state for r in specs} == {RunState.SUCCEEDED}
    nodes = {r: [p["node"] for p in placements(workdir, r)] for r in specs}
    assert {n[0] for attempts in nodes.values() for n in attempts} == {"node_a", "node_b"}

    # The run of the lost node was preempted once and resumed on the surviving node.
    victim = killed["run_id"]
    assert nodes[victim] == [["node_b"], ["node_a"]]
    assert runs[victim].attempts == 2 and runs[victim].summary["preemptions"] == 1
    assert [e["attempt"] for e in executions(workdir, victim)] == [1, 2]
    writer = curve(workdir, victim, "attempt")
    resumed_at = max(step for step, attempt in writer.items() if attempt == 1)
    assert killed["steps"] - EVERY <= resumed_at and resumed_at % EVERY == 0
    assert all(writer[s] == 2 for s in range(resumed_at + 1, STEPS + 1))

    # Every run: each step once, and the curve of an uninterrupted run.
    for rid, spec in specs.items():
        assert curve(workdir, rid) == uninterrupted_curve(tmp_path, spec, rid)
        assert sorted(curve(workdir, rid)) == list(range(1, STEPS + 1))
    for rid in specs:
        if rid != victim:
            assert runs[rid].attempts == 1, (rid, nodes[rid])


@pytest.mark.slow
def test_the_real_trainer_resumes_on_the_other_node_with_an_identical_curve(two_nodes, tmp_path):
    """Two DeepSpeed trainer runs, one per node; node_b is lost mid-run: its run resumes on
    node_a from its last DeepSpeed checkpoint, and its loss curve equals the same run trained
    uninterrupted in this process (to 1e-6 per step), every step once."""
    from slscale.sweep.scheduler.runners import markov_trainer

    grid = write_grid(tmp_path / "grid.yaml", seeds=[5, 6], steps=[TRAINER_STEPS])
    specs = {run_id(s): s for s in specs_of(grid)}
    workdir = tmp_path / "w"
    kwargs = {"trainer": TRAINER, "checkpoint_every_steps": TRAINER_EVERY}
    driver = sweep_driver(workdir, grid, two_nodes["address"], two_nodes["env"], kwargs)
    window = (2 * TRAINER_EVERY, TRAINER_STEPS // 2)
    killer, killed = lose_node_b_midrun(two_nodes, workdir, specs, local_steps, window, 180)
    output = driver.communicate(timeout=600)[0]
    killer.join()
    assert driver.returncode == 0, output
    assert killed, output

    runs = records(workdir)
    victim = killed["run_id"]
    assert {runs[r].state for r in specs} == {RunState.SUCCEEDED}
    assert [p["node"] for p in placements(workdir, victim)] == [["node_b"], ["node_a"]]
    assert runs[victim].attempts == 2 and runs[victim].summary["preemptions"] == 1
    result = json.loads((workdir / "runs" / victim / "result.json").read_text())
    (resumed_at,) = result["resumed_from_steps"]
    # The run had logged this many steps when node_b died: it resumed from the last checkpoint
    # before them (a step is logged after the checkpoint of the step before it is complete).
    assert resumed_at % TRAINER_EVERY == 0
    assert killed["steps"] - TRAINER_EVERY <= resumed_at <= killed["steps"]

    reference = tmp_path / "reference"
    with open_store(reference) as store:
        store.register({victim: spec_to_dict(specs[victim])})
    run = markov_trainer(**TRAINER, checkpoint_every_steps=TRAINER_EVERY)
    run(spec_to_dict(specs[victim]), victim, str(reference), str(reference), 1)
    expected, got = curve(reference, victim), curve(workdir, victim)
    assert sorted(got) == list(range(1, TRAINER_STEPS + 1))
    assert got == pytest.approx(expected, rel=0, abs=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("stage", [2, 3])
def test_a_two_worker_trainer_run_spans_both_nodes_and_matches_one_process(
    two_nodes, tmp_path, stage
):
    """One run of two workers (``--workers-per-run 2``, 1 CPU each) on two 1-CPU nodes: Ray
    Train can only place one worker per node, so the DeepSpeed process group (gloo) spans the
    nodes. With ZeRO-2 and ZeRO-3 it trains every step once, and its loss curve matches the
    same run trained by one process (two micro-batches a step): the trainer deals the same
    global batches out to however many workers a run has."""
    from slscale.sweep.scheduler.runners import markov_trainer

    grid = write_grid(tmp_path / "grid.yaml", seeds=[7], steps=[40])
    (spec,) = specs_of(grid)
    rid, workdir = run_id(spec), tmp_path / "w"
    kwargs = {**TRAINER, "zero_stage": stage, "micro_batch_size": 2}
    command = [
        sys.executable, "-m", "slscale.cli", "sweep", "launch", str(grid),
        "--workdir", str(workdir), "--address", two_nodes["address"],
        "--workers-per-run", "2", "--cpus-per-run", "1",
        "--run-fn", "slscale.sweep.scheduler.runners:markov_trainer",
        "--run-fn-kwargs", json.dumps(kwargs),
    ]  # fmt: skip
    done = subprocess.run(
        command, capture_output=True, text=True, env=two_nodes["env"], timeout=600
    )
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads((workdir / "runs" / rid / "result.json").read_text())
    assert result["runtime"]["world_size"] == 2 and result["runtime"]["zero_stage"] == stage
    assert records(workdir)[rid].state == RunState.SUCCEEDED
    losses = curve(workdir, rid)
    assert sorted(losses) == list(range(1, 41))
    assert losses[40] < losses[1] - 0.5

    reference = tmp_path / "reference"
    with open_store(reference) as store:
        store.register({rid: spec_to_dict(spec)})
    markov_trainer(**kwargs)(spec_to_dict(spec), rid, str(reference), str(reference), 1)
    one = json.loads((reference / "runs" / rid / "result.json").read_text())["runtime"]
    assert one["world_size"] == 1 and one["micro_batch_size"] == 2
    assert losses == pytest.approx(curve(reference, rid), rel=1e-5)
