"""Losing the head node of a two-node cluster mid-sweep: the driver ends (Ray terminates a
driver whose GCS is gone), and the same launch against a new head resumes every run from its
last checkpoint — every step once, curves equal to uninterrupted runs, the tail of each curve
written by its last attempt (an attempt orphaned on the surviving worker node writes nothing
after the newer one started: attempt fencing)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
from cluster_helpers import (
    EVERY,
    free_port,
    node_env,
    short_temp_dir,
    start_node,
    stored_steps,
    sweep_driver,
    uninterrupted_curve,
    wait_for_nodes,
)
from sweep_run_helpers import curve, records, specs_of, wait_for, write_grid

from slscale.identity import run_id
from slscale.spec import RunState

HERE = Path(__file__).resolve().parent
STEPS = 80
GCS_RECONNECT_SECONDS = 5
"""How long Ray's processes wait for a lost GCS before they end (Ray's default: 60 s)."""


@pytest.mark.slow
def test_losing_the_head_ends_the_driver_and_a_relaunch_on_a_new_head_finishes(tmp_path):
    gcs_timeout = {"RAY_gcs_rpc_server_reconnect_timeout_s": str(GCS_RECONNECT_SECONDS)}
    env = {**node_env(str(HERE)), **gcs_timeout}
    grid = write_grid(tmp_path / "grid.yaml", seeds=[0, 1], steps=[STEPS])
    specs = {run_id(s): s for s in specs_of(grid)}
    workdir = tmp_path / "w"
    nodes, temp_dirs = [], [short_temp_dir(), short_temp_dir()]
    try:
        port = free_port()
        head = start_node("node_a", env, tmp_path, port, head=True, temp_dir=temp_dirs[0])
        nodes.append(head)
        address = f"127.0.0.1:{port}"
        wait_for_nodes(address, {"node_a"}, 60, env)
        nodes.append(start_node("node_b", env, tmp_path, port, head=False, temp_dir=temp_dirs[0]))
        wait_for_nodes(address, {"node_a", "node_b"}, 60, env)

        driver = sweep_driver(workdir, grid, address, env)
        wait_for(
            lambda: (
                (workdir / "results.db").exists()
                and all(stored_steps(workdir, r) >= 12 for r in specs)
            ),
            120,
            "both runs 12 steps in",
        )
        head.kill()
        lost_at = time.monotonic()
        output = driver.communicate(timeout=120)[0]
        assert driver.returncode != 0, output
        assert time.monotonic() - lost_at < GCS_RECONNECT_SECONDS + 30, output
        assert {r.state for r in records(workdir).values()} == {RunState.RUNNING}

        port = free_port()  # a new head; the old worker node is left to its fate
        nodes.append(start_node("node_a", env, tmp_path, port, head=True, temp_dir=temp_dirs[1]))
        address = f"127.0.0.1:{port}"
        wait_for_nodes(address, {"node_a"}, 60, env)
        relaunch = sweep_driver(workdir, grid, address, env)
        output = relaunch.communicate(timeout=300)[0]
        assert relaunch.returncode == 0, output
    finally:
        for node in reversed(nodes):
            node.stop()
        leftovers = [node.session_pids() for node in nodes]
        for temp_dir in temp_dirs:
            shutil.rmtree(temp_dir, ignore_errors=True)
    assert not any(leftovers), f"processes left running: {leftovers}"

    runs = records(workdir)
    for rid, spec in specs.items():
        assert runs[rid].state == RunState.SUCCEEDED, output
        assert curve(workdir, rid) == uninterrupted_curve(tmp_path, spec, rid)
        assert sorted(curve(workdir, rid)) == list(range(1, STEPS + 1))
        last = runs[rid].attempts
        assert last >= 2
        run_dir = workdir / "runs" / rid
        assert sorted(p.name for p in run_dir.glob("ATTEMPT.*")) == [f"ATTEMPT.{last}"]
        # The last attempt resumed from a checkpoint and wrote every step after it; nothing an
        # older attempt wrote lies after that point.
        writer = curve(workdir, rid, "attempt")
        older = max((s for s, a in writer.items() if a != last), default=0)
        assert {s for s, a in writer.items() if a == last} == set(range(older + 1, STEPS + 1))
        assert older % EVERY == 0 or older == STEPS
