"""The scheduler on a real local Ray cluster with synthetic runs: completion, retries by cause,
resume after a killed worker, cancel, and relaunches that only run what is missing."""

from __future__ import annotations

import os
import signal
import threading

import pytest
from sweep_run_helpers import (
    TOKENS_PER_STEP,
    curve,
    executions,
    records,
    run_sweep,
    specs_of,
    wait_for,
    write_grid,
)

from slscale.cli import main as slscale_cli
from slscale.identity import run_id
from slscale.spec import RunState, spec_to_dict
from slscale.store import open_store
from slscale.sweep.scheduler.runners import SyntheticRun

pytestmark = pytest.mark.timeout(120)


def test_a_six_run_grid_completes_largest_first_with_full_curves(ray_address, tmp_path):
    grid = write_grid(tmp_path / "grid.yaml", seeds=[0, 1, 2], steps=[8, 16])
    report, events = run_sweep(tmp_path / "w", grid, SyntheticRun(), ray_address)
    assert report.ok and len(report.states) == 6
    runs = records(tmp_path / "w")
    assert {r.state for r in runs.values()} == {RunState.SUCCEEDED}
    assert {r.attempts for r in runs.values()} == {1}
    for spec in specs_of(grid):
        steps = spec.tokens // TOKENS_PER_STEP
        assert sorted(curve(tmp_path / "w", run_id(spec))) == list(range(1, steps + 1))
        assert runs[run_id(spec)].summary["tokens"] == spec.tokens
    started = events.started()
    long_runs = {run_id(s) for s in specs_of(grid) if s.tokens == 16 * TOKENS_PER_STEP}
    assert set(started[:3]) == long_runs  # largest first


def test_errors_are_retried_then_failed_and_config_errors_fail_at_once(
    ray_address, tmp_path, capsys
):
    grid = write_grid(tmp_path / "grid.yaml", seeds=[0, 1, 2, 3], steps=[4])
    ids = {s.seed: run_id(s) for s in specs_of(grid)}
    failing = SyntheticRun(fail_seeds=(1,), config_error_seeds=(2,))
    report, _ = run_sweep(tmp_path / "w", grid, failing, ray_address, max_retries=2)
    runs = records(tmp_path / "w")
    assert not report.ok
    assert runs[ids[1]].state == RunState.FAILED
    assert runs[ids[1]].attempts == 3  # the first attempt and two retries
    assert runs[ids[1]].summary["failures"] == 3
    assert "RuntimeError: synthetic failure" in runs[ids[1]].error
    assert "Traceback" in runs[ids[1]].error
    assert runs[ids[2]].state == RunState.FAILED and runs[ids[2]].attempts == 1
    assert runs[ids[2]].error.startswith("ConfigError: field 'seed' = 2")
    assert [runs[ids[s]].state for s in (0, 3)] == [RunState.SUCCEEDED] * 2

    capsys.readouterr()
    assert slscale_cli(["sweep", "status", "--workdir", str(tmp_path / "w")]) == 0
    status = capsys.readouterr().out
    line = next(line for line in status.splitlines() if line.startswith(ids[1]))
    assert "FAILED" in line and "RuntimeError: synthetic failure" in line

    # A relaunch leaves FAILED runs alone; --retry-failed runs them again.
    report, events = run_sweep(tmp_path / "w", grid, SyntheticRun(), ray_address)
    assert events.started() == [] and report.count(RunState.FAILED) == 2
    report, events = run_sweep(tmp_path / "w", grid, SyntheticRun(), ray_address, retry_failed=True)
    assert sorted(events.started()) == sorted([ids[1], ids[2]]) and report.ok


def test_a_killed_worker_resumes_from_its_checkpoint(ray_address, tmp_path):
    grid = write_grid(tmp_path / "grid.yaml", seeds=[7], steps=[40])
    (spec,) = specs_of(grid)
    rid, workdir = run_id(spec), tmp_path / "w"

    def kill_mid_run():
        first = wait_for(lambda: executions(workdir, rid), 60, "the first attempt")
        wait_for(lambda: len(curve(workdir, rid)) >= 12, 60, "step 12")
        os.kill(first[0]["pid"], signal.SIGKILL)

    killer = threading.Thread(target=kill_mid_run)
    killer.start()
    run_fn = SyntheticRun(step_seconds=0.1, checkpoint_every_steps=5)
    report, events = run_sweep(workdir, grid, run_fn, ray_address)
    killer.join()
    assert report.ok
    record = records(workdir)[rid]
    assert record.attempts == 2 and record.summary["preemptions"] == 1
    assert any("PREEMPTED (WorkerCrashedError" in m for _, m in events.lines)
    assert [e["attempt"] for e in executions(workdir, rid)] == [1, 2]

    # No step is missing or doubled, and the curve is the uninterrupted one.
    reference = tmp_path / "reference"
    with open_store(reference) as store:
        store.register({rid: spec_to_dict(spec)})
    SyntheticRun()(spec_to_dict(spec), rid, str(reference), str(reference), 1)
    assert curve(workdir, rid) == curve(reference, rid)
    # Steps up to the last checkpoint before the kill come from attempt 1: it resumed there.
    writer = curve(workdir, rid, "attempt")
    resumed_at = max(step for step, attempt in writer.items() if attempt == 1)
    assert resumed_at >= 10 and resumed_at % 5 == 0
    assert all(writer[s] == 2 for s in range(resumed_at + 1, 41))


def test_cancel_stops_a_running_run_and_the_others_finish(ray_address, tmp_path):
    grid = write_grid(tmp_path / "grid.yaml", seeds=[0, 1, 2], steps=[30, 10])
    specs = specs_of(grid)
    victim = run_id(next(s for s in specs if s.seed == 0 and s.tokens == 30 * TOKENS_PER_STEP))
    workdir = tmp_path / "w"

    def cancel_when_running():
        wait_for(lambda: executions(workdir, victim), 60, "the run to start")
        wait_for(lambda: len(curve(workdir, victim)) >= 3, 60, "step 3")
        assert slscale_cli(["sweep", "cancel", "--workdir", str(workdir), victim]) == 0

    canceller = threading.Thread(target=cancel_when_running)
    canceller.start()
    run_fn = SyntheticRun(step_seconds=0.1)
    report, events = run_sweep(workdir, grid, run_fn, ray_address)
    canceller.join()
    runs = records(workdir)
    assert report.states[victim] == RunState.FAILED
    assert runs[victim].error.startswith("cancelled by")
    assert (victim, "stopping: cancelled") in events.lines
    assert len(curve(workdir, victim)) < 30  # stopped before the end
    assert (workdir / "runs" / victim / "checkpoint.json").exists()  # stopped gracefully
    others = [run_id(s) for s in specs if run_id(s) != victim]
    assert [runs[r].state for r in others] == [RunState.SUCCEEDED] * 5


def test_a_relaunch_runs_only_new_cells_and_touches_no_finished_run(ray_address, tmp_path):
    workdir = tmp_path / "w"
    grid = write_grid(tmp_path / "grid.yaml", seeds=[0, 1], steps=[4])
    run_sweep(workdir, grid, SyntheticRun(), ray_address)
    before = records(workdir)

    report, events = run_sweep(workdir, grid, SyntheticRun(), ray_address)
    assert report.ok and events.started() == []

    write_grid(grid, seeds=[0, 1, 2, 3], steps=[4])  # two cells added
    new = {run_id(s) for s in specs_of(grid)} - set(before)
    report, events = run_sweep(workdir, grid, SyntheticRun(), ray_address)
    assert report.ok and len(new) == 2
    assert sorted(events.started()) == sorted(new)
    after = records(workdir)
    for rid, old in before.items():
        assert (after[rid].attempts, after[rid].updated_at) == (old.attempts, old.updated_at)
        assert len(executions(workdir, rid)) == 1


def test_dry_run_changes_nothing(tmp_path, capsys):
    grid = write_grid(tmp_path / "grid.yaml", seeds=[0, 1], steps=[4])
    workdir = tmp_path / "w"
    assert slscale_cli(["sweep", "launch", str(grid), "--workdir", str(workdir), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("dry run: 2 run, 0 resume, 0 retry, 0 skip")
    assert not (workdir / "results.db").exists()
