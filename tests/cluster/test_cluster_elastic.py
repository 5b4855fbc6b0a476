"""A two-worker DeepSpeed run on the two-node cluster loses one node mid-run and, launched with
``--min-workers-per-run 1``, goes on with one worker on the surviving node: it resumes from the
checkpoint the two workers wrote (re-partitioned through DeepSpeed's universal checkpoint),
trains every step once, and its loss curve equals the same run trained uninterrupted by one
process within 1e-5 relative per step; the store and ``sweep status`` show each attempt's
number of workers.

Ray declares the lost node dead after 5 missed health checks 3 s apart (its defaults; the other
cluster tests shorten them), so the driver first sees a cluster that still has two nodes: the
run's next attempt asks for two workers, cannot be placed within the wait, and only then does
the run go on with one."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from sweep_run_helpers import curve, records, specs_of, wait_for, write_grid

from slscale.identity import run_id
from slscale.spec import RunState, spec_to_dict
from slscale.store import open_store

STEPS = 60
EVERY = 10
KILL_AFTER = 25
"""Steps logged before node_b is killed: after two checkpoints of the two workers."""
WAIT = 3
"""--elastic-wait: seconds the run waits for its second worker before it goes on with one."""
TOLERANCE = 1e-5
PLACEMENT = 5
"""Seconds Ray may take to place a worker group of the run (the driver's floor, > WAIT)."""
SLOW_NODE_DEATH = {"RAY_health_check_period_ms": "3000", "RAY_health_check_failure_threshold": "5"}
TRAINER = {
    "log_every_steps": 1,
    "export_model": False,
    "device": "cpu",
    "peak_flops_per_device": 183e9,
    "zero_stage": 2,
    "checkpoint_every_steps": EVERY,
}


def local_steps(workdir: Path, rid: str) -> int:
    """Steps the run has logged to its metrics.jsonl (written at once, before the store)."""
    path = workdir / "runs" / rid / "metrics.jsonl"
    if not path.exists():
        return 0
    rows = (json.loads(line) for line in path.read_text().splitlines() if line.strip())
    return sum(1 for row in rows if row["name"] == "loss")


@pytest.mark.slow
@pytest.mark.parametrize("two_nodes", [SLOW_NODE_DEATH], indirect=True, ids=["slow-node-death"])
def test_a_two_worker_run_that_loses_a_node_goes_on_with_one_worker(two_nodes, tmp_path):
    from slscale.sweep.scheduler.runners import markov_trainer

    (spec,) = specs_of(write_grid(tmp_path / "grid.yaml", seeds=[7], steps=[STEPS]))
    rid, workdir = run_id(spec), tmp_path / "w"
    command = [
        sys.executable, "-m", "slscale.cli", "sweep", "launch", str(tmp_path / "grid.yaml"),
        "--workdir", str(workdir), "--address", two_nodes["address"], "--lease-seconds", "10",
        "--workers-per-run", "2", "--cpus-per-run", "1",
        "--min-workers-per-run", "1", "--elastic-wait", str(WAIT),
        "--run-fn", "slscale.sweep.scheduler.runners:markov_trainer",
        "--run-fn-kwargs", json.dumps(TRAINER),
    ]  # fmt: skip
    driver = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=two_nodes["env"]
    )
    killed: dict[str, int] = {}

    def lose_node_b() -> None:
        wait_for(lambda: local_steps(workdir, rid) >= KILL_AFTER, 240, f"step {KILL_AFTER}")
        two_nodes["nodes"]["node_b"].kill()
        killed["steps"] = local_steps(workdir, rid)

    killer = threading.Thread(target=lose_node_b)
    killer.start()
    output = driver.communicate(timeout=480)[0]
    killer.join()
    assert driver.returncode == 0, output
    assert killed and killed["steps"] < STEPS, output

    assert records(workdir)[rid].state == RunState.SUCCEEDED
    with open_store(workdir) as store:
        widths = [a.workers for a in store.list_attempts([rid])]
    # Two workers; two again, while Ray still counted node_b, which could not be placed and
    # trained nothing; then one.
    assert widths == [2, 2, 1], output
    assert f"its 2 workers could not be placed within {PLACEMENT:g} s" in output
    assert f"resumes on 1 of its 2 workers (no more were free {WAIT:g} s" in output
    result = json.loads((workdir / "runs" / rid / "result.json").read_text())
    assert result["runtime"]["world_size"] == 1
    (resumed_at,) = result["resumed_from_steps"]  # one resume: the attempt on one worker
    assert resumed_at % EVERY == 0 and killed["steps"] - EVERY <= resumed_at <= killed["steps"]

    shown = subprocess.run(
        [sys.executable, "-m", "slscale.cli", "sweep", "status", "--workdir", str(workdir),
         "--json"],
        capture_output=True, text=True, env=two_nodes["env"], timeout=120,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)[0]["workers"] == widths

    reference = tmp_path / "reference"
    with open_store(reference) as store:
        store.register({rid: spec_to_dict(spec)})
    markov_trainer(**TRAINER)(spec_to_dict(spec), rid, str(reference), str(reference), 1)
    expected, got = curve(reference, rid), curve(workdir, rid)
    assert sorted(got) == sorted(expected) == list(range(1, STEPS + 1))  # every step once
    worst = max(abs(got[s] - expected[s]) / abs(expected[s]) for s in expected)
    assert worst <= TOLERANCE, f"largest relative per-step loss difference {worst:.3g}"
