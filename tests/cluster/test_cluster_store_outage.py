"""The driver's own store calls meet an outage (PostgreSQL crashes mid-sweep, comes back).

The runs here log nothing to the store (files only), so every store call of the sweep is the
driver's: claims, state changes, lease renewals, the outcomes of attempts that end during the
outage. Short leases make the renewals fall inside the outage.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from sweep_run_helpers import executions, run_sweep, specs_of, wait_for, write_grid

from slscale.errors import StoreError
from slscale.identity import run_id
from slscale.spec import RunState
from slscale.store import open_store
from slscale.sweep.scheduler.runners import SyntheticRun

pytestmark = pytest.mark.postgres


def started(workdir: Path, rid: str) -> bool:
    return bool(executions(workdir, rid))


def outage_after(condition: Any, server: Any, seconds: float) -> threading.Thread:
    """Crash the server once ``condition()`` holds, start it again ``seconds`` later."""

    def outage() -> None:
        wait_for(condition, 120, "the runs to start")
        server.stop()
        time.sleep(seconds)
        server.start()

    thread = threading.Thread(target=outage)
    thread.start()
    return thread


def final_records(url: str) -> dict[str, Any]:
    with open_store(url) as store:
        return {r.run_id: r for r in store.list_runs()}


def test_a_short_outage_is_ridden_out_and_outcomes_recorded_after_it(
    ray_eight_cpus, outage_server, tmp_path
):
    """Outage (8 s) shorter than half a lease (15 s): the runs train through it in one
    attempt; the short run ends during the outage and its outcome is recorded afterwards."""
    grid = write_grid(tmp_path / "grid.yaml", seeds=[1], steps=[60, 300])
    short, long = [run_id(s) for s in specs_of(grid)]
    workdir = tmp_path / "w"
    thread = outage_after(
        lambda: started(workdir, short) and started(workdir, long), outage_server, 8.0
    )
    run_fn = SyntheticRun(step_seconds=0.05, store=False)
    report, events = run_sweep(
        workdir, grid, run_fn, ray_eight_cpus, store=outage_server.url, lease_seconds=30.0
    )
    thread.join()
    assert report.ok, events.lines
    assert any("results store unreachable" in m for _, m in events.lines), events.lines
    runs = final_records(outage_server.url)
    for rid in (short, long):
        assert runs[rid].state == RunState.SUCCEEDED, runs[rid]
        assert runs[rid].attempts == 1 and len(executions(workdir, rid)) == 1
        assert runs[rid].lease_owner is None
    assert not any("stopping" in m for _, m in events.lines), events.lines


def test_a_long_outage_stops_runs_before_their_leases_lapse_then_resumes_them(
    ray_eight_cpus, outage_server, tmp_path
):
    """Outage (12 s) longer than half a lease (4 s): the driver stops its runs (they
    checkpoint) so that no other driver could take one over while it trains here; when the
    store is back it records them PREEMPTED and resumes them from their checkpoints."""
    grid = write_grid(tmp_path / "grid.yaml", seeds=[2, 3], steps=[200])
    ids = [run_id(s) for s in specs_of(grid)]
    workdir = tmp_path / "w"
    thread = outage_after(lambda: all(started(workdir, r) for r in ids), outage_server, 12.0)
    run_fn = SyntheticRun(step_seconds=0.05, store=False)
    report, events = run_sweep(
        workdir, grid, run_fn, ray_eight_cpus, store=outage_server.url, lease_seconds=8.0
    )
    thread.join()
    assert report.ok, events.lines
    runs = final_records(outage_server.url)
    for rid in ids:
        assert (rid, "stopping: store unreachable") in events.lines, events.lines
        assert runs[rid].state == RunState.SUCCEEDED and runs[rid].attempts == 2, runs[rid]
        assert runs[rid].summary.get("preemptions") == 1
        assert [e["attempt"] for e in executions(workdir, rid)] == [1, 2]


def test_an_outage_past_the_limit_stops_the_driver_with_runs_resumable(
    ray_eight_cpus, outage_server, tmp_path
):
    """The store stays down past --store-outage-seconds: the driver stops with one clear
    error; once the store is back, launching again finishes every run."""
    grid = write_grid(tmp_path / "grid.yaml", seeds=[4], steps=[400])
    (rid,) = [run_id(s) for s in specs_of(grid)]
    workdir = tmp_path / "w"
    thread = outage_after(lambda: started(workdir, rid), outage_server, 15.0)
    run_fn = SyntheticRun(step_seconds=0.05, store=False)
    with pytest.raises(StoreError, match=r"did not answer for \d+ s .*launch the same grid"):
        run_sweep(
            workdir,
            grid,
            run_fn,
            ray_eight_cpus,
            store=outage_server.url,
            lease_seconds=8.0,
            store_outage_seconds=5.0,
        )
    thread.join()
    report, events = run_sweep(
        workdir, grid, run_fn, ray_eight_cpus, store=outage_server.url, lease_seconds=8.0
    )
    assert report.ok, events.lines
    record = final_records(outage_server.url)[rid]
    assert record.state == RunState.SUCCEEDED
    assert [e["attempt"] for e in executions(workdir, rid)] == [1, 2]
