"""The scheduler on a real local Ray cluster with synthetic runs: completion, retries by cause,
resume after a killed worker, cancel, relaunches that only run what is missing, and drivers as
separate processes on one cluster and one store (a driver killed mid-sweep and relaunched, two
drivers racing over the same grid)."""

from __future__ import annotations

import io
import json
import os
import signal
import time

import psutil
import pytest
from sweep_run_helpers import (
    TOKENS_PER_STEP,
    cli_driver,
    curve,
    executions,
    records,
    run_sweep,
    run_sweep_during,
    specs_of,
    wait_for,
    write_grid,
)

from slscale import fence
from slscale.cli import main as slscale_cli
from slscale.identity import run_id
from slscale.spec import RunState, spec_to_dict
from slscale.store import open_store
from slscale.sweep.scheduler.progress import ConsoleReporter
from slscale.sweep.scheduler.runners import SyntheticRun

pytestmark = pytest.mark.timeout(180)

STEP_SECONDS = 0.1


def test_a_grid_completes_largest_first_with_full_curves(ray_address, tmp_path):
    grid = write_grid(tmp_path / "grid.yaml", seeds=[0, 1, 2], steps=[4, 16])
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


@pytest.mark.parametrize("reuse", [True, False])
def test_cpu_runs_reuse_worker_processes_unless_told_not_to(ray_address, tmp_path, reuse):
    """Six runs on 2 CPUs: with reuse, a few Ray worker processes run them all (each run's
    process id is in its executions.jsonl); without, every run has a process of its own."""
    grid = write_grid(tmp_path / "grid.yaml", seeds=[0, 1, 2], steps=[4, 8])
    workdir = tmp_path / "w"
    report, _ = run_sweep(workdir, grid, SyntheticRun(), ray_address, reuse_processes=reuse)
    assert report.ok
    pids = [e["pid"] for s in specs_of(grid) for e in executions(workdir, run_id(s))]
    assert len(pids) == 6
    if reuse:
        assert len(set(pids)) <= 3, pids
    else:
        assert len(set(pids)) == 6, pids


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

    run_fn = SyntheticRun(step_seconds=0.1, checkpoint_every_steps=5)
    report, events = run_sweep_during(kill_mid_run, workdir, grid, run_fn, ray_address)
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
    grid = write_grid(tmp_path / "grid.yaml", seeds=[0, 1], steps=[30, 10])
    specs = specs_of(grid)
    victim = run_id(next(s for s in specs if s.seed == 0 and s.tokens == 30 * TOKENS_PER_STEP))
    workdir = tmp_path / "w"

    def cancel_when_running():
        wait_for(lambda: executions(workdir, victim), 60, "the run to start")
        wait_for(lambda: len(curve(workdir, victim)) >= 3, 60, "step 3")
        assert slscale_cli(["sweep", "cancel", "--workdir", str(workdir), victim]) == 0

    # Runs that write their own state on the way out, as the trainer does (PREEMPTED).
    run_fn = SyntheticRun(step_seconds=0.1, writes_state=True)
    report, events = run_sweep_during(cancel_when_running, workdir, grid, run_fn, ray_address)
    runs = records(workdir)
    assert report.states[victim] == RunState.FAILED
    assert runs[victim].state == RunState.FAILED
    assert runs[victim].error.startswith("cancelled by")
    assert runs[victim].summary["cancelled"] == runs[victim].error
    assert (victim, "stopping: cancelled") in events.lines
    assert len(curve(workdir, victim)) < 30  # stopped before the end
    assert (workdir / "runs" / victim / "checkpoint.json").exists()  # stopped gracefully
    others = [run_id(s) for s in specs if run_id(s) != victim]
    assert [runs[r].state for r in others] == [RunState.SUCCEEDED] * 3


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


def test_the_live_display_shows_progress_and_eta(ray_address, tmp_path):
    grid = write_grid(tmp_path / "grid.yaml", seeds=[0, 1], steps=[4])
    screen = io.StringIO()
    live = ConsoleReporter(stream=screen, live=True)
    try:
        report, _ = run_sweep(
            tmp_path / "w", grid, SyntheticRun(step_seconds=0.3), ray_address, reporter=live
        )
    finally:
        live.close()
    assert report.ok
    text = screen.getvalue()
    assert "tokens" in text and "FLOPs" in text and "ETA" in text
    assert any(run_id(s)[:20] in text for s in specs_of(grid))


def test_without_a_terminal_progress_is_one_line_per_event():
    lines = io.StringIO()
    reporter = ConsoleReporter(stream=lines)  # a StringIO is not a TTY
    reporter.event("run-a", "attempt 1 started")
    reporter.event("run-a", "SUCCEEDED in 1.0 s")
    assert [line.split(" ", 1)[1] for line in lines.getvalue().splitlines()] == [
        "run-a: attempt 1 started",
        "run-a: SUCCEEDED in 1.0 s",
    ]
    quiet = io.StringIO()
    ConsoleReporter(stream=quiet, quiet=True).event("run-a", "attempt 1 started")
    assert quiet.getvalue() == ""


def test_a_killed_driver_is_relaunched_without_redoing_finished_runs(ray_address, tmp_path):
    workdir = tmp_path / "w"
    grid = write_grid(tmp_path / "grid.yaml", seeds=[0, 1, 2, 3, 4], steps=[16])
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
    # Ray stops the runs of a dead driver: their processes go away.
    pids = [executions(workdir, r)[-1]["pid"] for r in interrupted]
    wait_for(lambda: not any(psutil.pid_exists(p) for p in pids), 30, "the runs to stop")
    logged = {r: len(curve(workdir, r)) for r in interrupted}

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
        # Resumed from the last checkpoint attempt 1 wrote, not from 0: a periodic one (every
        # 4 steps) or, when Ray stopped the orphaned run with SIGTERM, one at its last step.
        writer = curve(workdir, rid, "attempt")
        resumed_at = max((s for s, a in writer.items() if a == 1), default=0)
        assert 4 * ((logged[rid] - 1) // 4) <= resumed_at <= logged[rid]
        assert resumed_at % 4 == 0 or resumed_at == logged[rid]
    assert max(logged.values()) >= 5  # at least one run was past a checkpoint
    for spec in specs_of(grid):
        assert sorted(curve(workdir, run_id(spec))) == list(range(1, 17))


def test_a_superseded_attempt_stops_without_writing_and_the_newer_one_finishes(
    ray_address, tmp_path
):
    workdir = tmp_path / "w"
    grid = write_grid(tmp_path / "grid.yaml", seeds=[0], steps=[40])
    (spec,) = specs_of(grid)
    rid = run_id(spec)
    run_dir = workdir / "runs" / rid
    logged_after_mark: list[int] = []

    def supersede() -> None:
        wait_for(lambda: run_dir.exists() and len(curve(workdir, rid)) >= 7, 60, "step 7")
        fence.mark(run_dir, 2)  # attempt 2 started elsewhere (as after a network partition)
        logged_after_mark.append(len(curve(workdir, rid)))

    run_fn = SyntheticRun(step_seconds=0.1, checkpoint_every_steps=5)
    report, events = run_sweep_during(supersede, workdir, grid, run_fn, ray_address)
    assert report.ok
    assert (rid, "attempt 1 superseded; the newer one goes on") in events.lines
    # Attempt 1 wrote nothing once the marker was there (one write may have been under way).
    writer = curve(workdir, rid, "attempt")
    assert max(s for s, a in writer.items() if a == 1) <= logged_after_mark[0] + 1
    assert sorted(curve(workdir, rid)) == list(range(1, 41))
    record = records(workdir)[rid]
    assert record.state == RunState.SUCCEEDED and record.attempts == 2
    assert "failures" not in record.summary and "preemptions" not in record.summary
    assert [e["attempt"] for e in executions(workdir, rid)] == [1, 2]


def test_two_drivers_on_one_store_never_run_a_cell_twice(ray_address, tmp_path):
    workdir = tmp_path / "w"
    grid = write_grid(tmp_path / "grid.yaml", seeds=list(range(6)), steps=[10])
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


def test_sigterm_stops_a_driver_and_leaves_its_runs_resumable(ray_address, tmp_path):
    workdir = tmp_path / "w"
    grid = write_grid(tmp_path / "grid.yaml", seeds=[0], steps=[60])
    (spec,) = specs_of(grid)
    rid = run_id(spec)
    driver = cli_driver(workdir, grid, ray_address, run_fn_kwargs={"step_seconds": 0.1})
    try:
        wait_for(lambda: executions(workdir, rid), 90, "the run to start")
        wait_for(lambda: len(curve(workdir, rid)) >= 3, 60, "step 3")
        driver.send_signal(signal.SIGTERM)
        output = driver.communicate(timeout=60)[0]
    finally:
        driver.kill()
    assert driver.returncode == 130, output
    record = records(workdir)[rid]
    assert record.state == RunState.PREEMPTED and record.lease_owner is None
    logged = len(curve(workdir, rid))
    assert 3 <= logged < 60
    checkpoint = json.loads((workdir / "runs" / rid / "checkpoint.json").read_text())
    # It saved where it stopped: its last logged step, or the one before when the stop landed
    # after a step was logged but before it was counted (that step is redone on resume).
    assert checkpoint["step"] in (logged, logged - 1)


def test_an_interrupt_while_an_attempt_is_submitted_leaves_no_run_running(
    ray_address, tmp_path, monkeypatch
):
    """Ctrl-C can land between the store's RUNNING and the attempt's registration with the
    driver; that run must be left resumable like the ones in flight, not RUNNING and leased."""
    from slscale.sweep.scheduler.backend import RayBackend

    submit = RayBackend.submit
    submitted: list[str] = []

    def interrupted_on_the_second(self, attempt):
        submitted.append(attempt.run_id)
        if len(submitted) == 2:
            raise KeyboardInterrupt
        return submit(self, attempt)

    monkeypatch.setattr(RayBackend, "submit", interrupted_on_the_second)
    workdir = tmp_path / "w"
    grid = write_grid(tmp_path / "grid.yaml", seeds=[0, 1], steps=[40])
    with pytest.raises(KeyboardInterrupt):
        run_sweep(workdir, grid, SyntheticRun(step_seconds=0.1), ray_address)
    final = records(workdir)
    assert set(submitted) == set(final)
    for rid, record in final.items():
        assert record.state == RunState.PREEMPTED, (rid, record.state)
        assert record.lease_owner is None, rid
