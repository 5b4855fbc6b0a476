"""Drivers as separate processes on one cluster and one store: a driver killed mid-sweep and
relaunched, and two drivers racing over the same grid."""

from __future__ import annotations

import time

import pytest
from sweep_run_helpers import (
    cli_driver,
    curve,
    executions,
    records,
    run_sweep,
    specs_of,
    wait_for,
    write_grid,
)

from slscale.identity import run_id
from slscale.spec import RunState
from slscale.sweep.scheduler.runners import SyntheticRun

pytestmark = pytest.mark.timeout(180)

STEP_SECONDS = 0.1


def test_a_killed_driver_is_relaunched_without_redoing_finished_runs(ray_address, tmp_path):
    workdir = tmp_path / "w"
    grid = write_grid(tmp_path / "grid.yaml", seeds=[0, 1, 2, 3, 4, 5], steps=[16])
    kwargs = {"step_seconds": STEP_SECONDS, "checkpoint_every_steps": 4}
    driver = cli_driver(workdir, grid, ray_address, "--lease-seconds", "60", run_fn_kwargs=kwargs)

    def mid_sweep():
        if not (workdir / "results.db").exists():
            return None
        runs = records(workdir).values()
        done = [r for r in runs if r.state == RunState.SUCCEEDED]
        running = [
            r for r in runs if r.state == RunState.RUNNING and len(curve(workdir, r.run_id)) >= 5
        ]
        return len(done) >= 2 and running

    try:
        wait_for(mid_sweep, 90, "two finished runs and one past its first checkpoint")
    finally:
        driver.kill()  # SIGKILL: no cleanup at all
        driver.communicate()
    before = records(workdir)
    finished = {r for r, rec in before.items() if rec.state == RunState.SUCCEEDED}
    interrupted = {r for r, rec in before.items() if rec.state == RunState.RUNNING}
    assert interrupted and finished

    start = time.monotonic()
    report, events = run_sweep(workdir, grid, SyntheticRun(**kwargs), ray_address, lease_seconds=60)
    assert report.ok
    # The dead driver's leases (60 s) were taken over at once, not after expiring.
    assert time.monotonic() - start < 45
    assert any("took over" in m for _, m in events.lines)
    after = records(workdir)
    assert set(events.started()) == set(before) - finished
    for rid in finished:
        assert (after[rid].attempts, after[rid].updated_at) == (
            before[rid].attempts,
            before[rid].updated_at,
        )
        assert len(executions(workdir, rid)) == 1
    for rid in interrupted:
        assert after[rid].attempts == before[rid].attempts + 1
        assert 1.0 in curve(workdir, rid, "attempt").values()  # resumed, not restarted
    for spec in specs_of(grid):
        assert sorted(curve(workdir, run_id(spec))) == list(range(1, 17))


def test_two_drivers_on_one_store_never_run_a_cell_twice(ray_address, tmp_path):
    workdir = tmp_path / "w"
    grid = write_grid(tmp_path / "grid.yaml", seeds=list(range(8)), steps=[10])
    kwargs = {"step_seconds": 0.05}
    drivers = [
        cli_driver(
            workdir,
            grid,
            ray_address,
            "--max-concurrent",
            "1",
            "--lease-seconds",
            "20",
            run_fn_kwargs=kwargs,
        )
        for _ in range(2)
    ]
    outputs = [d.communicate(timeout=150)[0] for d in drivers]
    assert [d.returncode for d in drivers] == [0, 0], outputs
    ids = {run_id(s) for s in specs_of(grid)}
    runs = records(workdir)
    assert {runs[r].state for r in ids} == {RunState.SUCCEEDED}
    assert {runs[r].attempts for r in ids} == {1}
    assert all(len(executions(workdir, r)) == 1 for r in ids)
    started = [{r for r in ids if f"{r}: attempt 1 started" in output} for output in outputs]
    assert started[0] | started[1] == ids
    assert not started[0] & started[1]
