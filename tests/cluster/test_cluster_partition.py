"""A node cut off from the cluster mid-run, and back after its run was retried elsewhere — what
a network partition does. The raylet of node_b and the run's process there are frozen
(SIGSTOP): the GCS declares the node dead and the driver retries the run on node_a. The retry
marks the run folder as its own; then the frozen run process is let go (SIGCONT), as when a
partition heals, and goes on from where it stood, with the store and the run folder in reach.
It writes nothing more (attempt fencing): the run's rows, checkpoints and result are the
retry's."""

from __future__ import annotations

import contextlib
import os
import signal
import threading

import psutil
import pytest
from cluster_helpers import placements, sweep_driver, uninterrupted_curve
from sweep_run_helpers import curve, records, specs_of, wait_for, write_grid

from slscale import fence
from slscale.identity import run_id
from slscale.spec import RunState

SHORT, LONG = 20, 300


def raylet_of(node) -> int:
    (pid,) = [p for p in node.session_pids() if psutil.Process(p).name() == "raylet"]
    return pid


@pytest.mark.slow
def test_an_attempt_cut_off_by_a_partition_stops_writing_once_its_retry_starts(two_nodes, tmp_path):
    grid = write_grid(tmp_path / "grid.yaml", seeds=[0], steps=[SHORT, LONG])
    specs = {run_id(s): s for s in specs_of(grid)}
    victim = next(r for r, s in specs.items() if s.tokens > min(x.tokens for x in specs.values()))
    workdir = tmp_path / "w"
    run_dir = workdir / "runs" / victim
    # The short run starts first and goes to the head node; the long one to node_b.
    kwargs = {"step_seconds": 0.1, "checkpoint_every_steps": 5}
    driver = sweep_driver(
        workdir, grid, two_nodes["address"], two_nodes["env"], kwargs, "--order", "smallest-first"
    )
    seen: dict[str, list[int]] = {"orphan": []}
    done = threading.Event()

    def orphan_rows() -> int:
        """The highest step the store holds from attempt 1 of the victim."""
        writer = curve(workdir, victim, "attempt")
        return int(max((s for s, a in writer.items() if a == 1), default=0))

    def cut_off_node_b() -> None:
        wait_for(lambda: placements(workdir, victim), 90, "the long run to start")
        wait_for(lambda: len(curve(workdir, victim)) >= 12, 60, "the long run 12 steps in")
        seen["node"] = placements(workdir, victim)[0]["node"]
        if seen["node"] != ["node_b"]:
            return
        orphan = placements(workdir, victim)[0]["pid"]
        os.kill(raylet_of(two_nodes["nodes"]["node_b"]), signal.SIGSTOP)
        os.kill(orphan, signal.SIGSTOP)
        wait_for(lambda: fence.owner(run_dir) == 2, 60, "the retry to mark the run folder")
        seen["at_mark"] = [orphan_rows()]
        os.kill(orphan, signal.SIGCONT)  # the partition heals for the run's process
        seen["orphan_alive"] = [psutil.pid_exists(orphan)]
        while not done.wait(0.2):  # from now on the orphan may not get any further
            seen["orphan"].append(orphan_rows())

    watcher = threading.Thread(target=cut_off_node_b)
    watcher.start()
    try:
        output = driver.communicate(timeout=240)[0]
    finally:
        done.set()
        watcher.join()
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(raylet_of(two_nodes["nodes"]["node_b"]), signal.SIGCONT)
    assert driver.returncode == 0, output
    assert seen.get("node") == ["node_b"], f"the long run went to {seen.get('node')}: {output}"

    runs = records(workdir)
    assert {runs[r].state for r in specs} == {RunState.SUCCEEDED}
    assert runs[victim].attempts == 2 and runs[victim].summary["preemptions"] == 1
    assert [p["node"] for p in placements(workdir, victim)] == [["node_b"], ["node_a"]]
    # The orphan was mid-run when the retry started, alive when let go, and from then on it
    # wrote at most the one step it was frozen in.
    (at_mark,) = seen["at_mark"]
    assert 12 <= at_mark < LONG and seen["orphan_alive"] == [True]
    assert seen["orphan"] and max(seen["orphan"]) <= at_mark + 1
    assert curve(workdir, victim) == uninterrupted_curve(tmp_path, specs[victim], victim)
    assert sorted(curve(workdir, victim)) == list(range(1, LONG + 1))
