"""WSD ladders on a local Ray cluster with the real DeepSpeed trainer: a branch starts only
once its trunk has checkpointed its branch point; a trunk killed mid-run delays its branches,
which run once it resumes; a branch whose trunk FAILED fails with a reason naming it."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import sys

import psutil
import pytest
from ray import cloudpickle
from sweep_run_helpers import (
    TrunkLosesData,
    curve,
    records,
    run_sweep,
    run_sweep_during,
    specs_of,
    wait_for,
    write_ladder,
)

from slscale.cli import main as slscale_cli
from slscale.identity import run_id
from slscale.models.train.checkpoint import MANIFEST, checkpoint_name
from slscale.spec import RunState
from slscale.store import open_store
from slscale.sweep.scheduler.driver import NOT_RETRIED
from slscale.sweep.scheduler.runners import MarkovJob, TrainerRun

pytestmark = pytest.mark.timeout(240)

RUNTIME = {
    "log_every_steps": 1,
    "export_model": False,
    "device": "cpu",
    "peak_flops_per_device": 183e9,
}
TOKENS_PER_STEP = 4 * 32


def ladder(specs):
    """(trunk, branches) of a one-size ladder."""
    (trunk,) = [s for s in specs if s.is_trunk]
    branches = [s for s in specs if s.branch is not None]
    assert {b.branch.parent for b in branches} == {run_id(trunk)}
    return trunk, branches


def checkpoint_time(workdir, branch):
    """When the branch's start (its trunk's checkpoint at the branch point) was written."""
    step = branch.branch.from_tokens // TOKENS_PER_STEP
    path = workdir / "runs" / branch.branch.parent / "checkpoints" / checkpoint_name(step)
    return dt.datetime.fromtimestamp((path / MANIFEST).stat().st_mtime, dt.UTC)


def attempts(workdir):
    with open_store(workdir) as store:
        rows = store.list_attempts()
    return {(a.run_id, a.attempt): _utc(a.started_at) for a in rows}


def _utc(when):
    return when if when.tzinfo is not None else when.replace(tzinfo=dt.UTC)


def test_a_ladder_launched_runs_each_branch_once_its_branch_point_is_checkpointed(
    ray_address, tmp_path, capsys
):
    grid = write_ladder(tmp_path / "ladder.yaml", steps=[20, 40])
    trunk, branches = ladder(specs_of(grid))
    workdir = tmp_path / "w"
    argv = ["sweep", "launch", str(grid), "--workdir", str(workdir), "--address", ray_address]
    argv += ["--run-fn", "slscale.sweep.scheduler.runners:markov_trainer"]
    argv += ["--run-fn-kwargs", json.dumps(RUNTIME), "--order", "smallest-first"]
    assert slscale_cli(argv) == 0
    out = capsys.readouterr().out
    runs, started = records(workdir), attempts(workdir)
    assert {r.state for r in runs.values()} == {RunState.SUCCEEDED} and len(runs) == 3
    assert {r.attempts for r in runs.values()} == {1}
    for branch in branches:
        rid = run_id(branch)
        assert started[(rid, 1)] >= checkpoint_time(workdir, branch), rid
        steps = branch.tokens // TOKENS_PER_STEP
        assert sorted(curve(workdir, rid)) == list(
            range(branch.branch.from_tokens // TOKENS_PER_STEP + 1, steps + 1)
        )
        assert runs[rid].summary["tokens"] == branch.tokens
    # smallest-first would start the short branch first: the trunk goes before it instead
    assert min(started.values()) == started[(run_id(trunk), 1)]
    assert f"waits for its trunk {run_id(trunk)} to checkpoint step 16" in out

    trained = trunk.tokens + sum(b.tokens - b.branch.from_tokens for b in branches)
    ratio = trained / sum(b.tokens for b in branches)  # one size: FLOPs go as tokens

    # A relaunch finds everything done and starts nothing.
    assert slscale_cli(argv) == 0
    assert attempts(workdir) == started
    capsys.readouterr()
    assert slscale_cli(["sweep", "status", "--workdir", str(workdir)]) == 0
    status = capsys.readouterr().out
    (line,) = [line for line in status.splitlines() if line.startswith("WSD ladders:")]
    assert line.startswith("WSD ladders: 1 trunk and 2 branches train ")
    assert line.endswith(f"({ratio:.2f}×)")


def _worker_of(rid):
    """The Ray worker process running run ``rid`` (its title is ray::slscale-run:<run id>)."""
    for proc in psutil.process_iter(["cmdline"]):
        if (proc.info["cmdline"] or [""])[0].startswith(f"ray::slscale-run:{rid}"):
            return proc.pid
    return None


def test_a_killed_trunk_delays_its_branches_which_run_once_it_resumes(ray_address, tmp_path):
    grid = write_ladder(tmp_path / "ladder.yaml", steps=[150, 300])
    trunk, branches = ladder(specs_of(grid))
    tid, workdir = run_id(trunk), tmp_path / "w"
    first_point = min(b.branch.from_tokens for b in branches) // TOKENS_PER_STEP
    killed_at: list[int] = []

    def kill_trunk_mid_run():
        wait_for(lambda: (workdir / "runs" / tid).exists(), 120, "the trunk to start")
        wait_for(lambda: len(curve(workdir, tid)) >= 15, 120, "the trunk's step 15")
        os.kill(wait_for(lambda: _worker_of(tid), 30, "the trunk's process"), signal.SIGKILL)
        killed_at.append(max(curve(workdir, tid)))

    run_fn = TrainerRun(job_builder=MarkovJob(), runtime={**RUNTIME, "checkpoint_every_steps": 10})
    report, _ = run_sweep_during(kill_trunk_mid_run, workdir, grid, run_fn, ray_address)
    assert report.ok, report.states
    assert killed_at and killed_at[0] < first_point  # killed before any branch could start
    runs, started = records(workdir), attempts(workdir)
    assert runs[tid].attempts == 2 and runs[tid].summary["preemptions"] == 1
    for branch in branches:
        rid = run_id(branch)
        assert runs[rid].state == RunState.SUCCEEDED and runs[rid].attempts == 1
        # started after the trunk resumed, and after the trunk wrote the branch point
        assert started[(rid, 1)] > started[(tid, 2)]
        assert started[(rid, 1)] >= checkpoint_time(workdir, branch)
    assert sorted(curve(workdir, tid)) == list(range(1, trunk.tokens // TOKENS_PER_STEP + 1))


def test_a_branch_whose_trunk_failed_fails_naming_it(ray_address, tmp_path):
    grid = write_ladder(tmp_path / "ladder.yaml", steps=[20, 40])
    trunk, branches = ladder(specs_of(grid))
    tid, workdir = run_id(trunk), tmp_path / "w"
    run_fn = TrainerRun(job_builder=TrunkLosesData(), runtime=RUNTIME)
    helpers = sys.modules[TrunkLosesData.__module__]
    cloudpickle.register_pickle_by_value(helpers)  # Ray's workers cannot import the tests
    try:
        report, events = run_sweep(workdir, grid, run_fn, ray_address, max_retries=1)
    finally:
        cloudpickle.unregister_pickle_by_value(helpers)
    assert not report.ok
    runs = records(workdir)
    assert runs[tid].state == RunState.FAILED
    assert runs[tid].attempts == 2 and runs[tid].summary["failures"] == 2
    for branch in branches:
        record = runs[run_id(branch)]
        assert record.state == RunState.FAILED
        assert record.attempts == 0  # it never started
        assert record.error.startswith(f"its trunk {tid} FAILED before its branch point (step ")
        assert "ConnectionResetError" in record.error and record.error.endswith(NOT_RETRIED)
        assert not (workdir / "runs" / run_id(branch) / "result.json").exists()
    assert [r for r, m in events.lines if m.startswith("attempt")] == [tid, tid]
