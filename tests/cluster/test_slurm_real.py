"""``slscale sweep slurm`` on a real SLURM cluster of two nodes on this machine
(tests/slurm_cluster.py: munged, slurmctld and two slurmd): the generated script starts a Ray
head and, through srun, a Ray worker, runs a grid of synthetic runs on them and stops Ray; a
job cancelled part-way and submitted again finishes without redoing a finished run; a job told
that its time limit nears stops its runs (they checkpoint), requeues itself and resumes them.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cluster_helpers import node_env, placements, stored_steps, uninterrupted_curve
from slurm_cluster import SlurmCluster, require_slurm, slurm_cluster
from sweep_run_helpers import curve, executions, records, specs_of, wait_for, write_grid

from slscale.identity import run_id
from slscale.spec import RunState

SHORT, LONG = 6, 60
"""Steps of the short and the long runs (0.2 s a step)."""
RUN_FN = ["--run-fn", "cluster_helpers:NodeRecordingRun"]
KWARGS = {"step_seconds": 0.2, "checkpoint_every_steps": 5}
JOB_SECONDS = 150


@pytest.fixture(scope="module")
def slurm() -> Iterator[SlurmCluster]:
    require_slurm()
    with slurm_cluster(nodes=2, cpus=2) as cluster:
        yield cluster


@pytest.fixture
def env(slurm: SlurmCluster) -> dict[str, str]:
    """What `slscale sweep slurm --submit` and sbatch run with: the cluster's SLURM_CONF, the
    run function importable (sbatch passes the environment on to the job)."""
    return {**node_env(str(Path(__file__).parent)), "SLURM_CONF": str(slurm.conf)}


def submit(env: dict[str, str], grid: Path, workdir: Path, *slurm_args: str) -> str:
    """`slscale sweep slurm GRID --submit` of a 2-node, 1-CPU-a-node job; its job id."""
    command = [
        sys.executable, "-m", "slscale.cli", "sweep", "slurm", str(grid), "--nodes", "2",
        "--gpus-per-node", "0", "--cpus-per-node", "1", "--join-timeout", "90", *slurm_args,
        "--submit", "--", "--workdir", str(workdir), *RUN_FN, "--run-fn-kwargs",
        json.dumps(KWARGS), "--lease-seconds", "10", "--order", "smallest-first",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().isdigit(), done.stdout
    return done.stdout.strip()


def job_log(workdir: Path, job: str) -> str:
    return (workdir / "slurm" / f"slscale-sweep-{job}.out").read_text()


def ray_processes(job: str) -> list[int]:
    """Live processes of the job's Ray nodes (their command lines name its temp folder)."""
    marker = f"/tmp/slscale-ray-{job}".encode()
    out = subprocess.run(["ps", "-e", "-o", "pid=,stat="], capture_output=True, text=True)
    live = [int(pid) for pid, stat in map(str.split, out.stdout.splitlines()) if stat[0] != "Z"]
    return [pid for pid in live if marker in _command_line(pid)]


def _command_line(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:  # ended meanwhile
        return b""


@pytest.fixture
def ray_folders() -> Iterator[list[str]]:
    """Job ids whose Ray temp folders (/tmp/slscale-ray-<id>) are removed after the test."""
    jobs: list[str] = []
    yield jobs
    for job in jobs:
        shutil.rmtree(f"/tmp/slscale-ray-{job}", ignore_errors=True)


def finish(slurm: SlurmCluster, workdir: Path, job: str) -> str:
    state = slurm.wait_until_finished(job, JOB_SECONDS)
    assert state == "COMPLETED", job_log(workdir, job)
    return state


def test_a_grid_runs_to_the_end_on_the_jobs_ray_cluster(slurm, env, tmp_path, ray_folders):
    grid = write_grid(tmp_path / "grid.yaml", seeds=[1, 2], steps=[SHORT, 2 * SHORT])
    workdir = tmp_path / "study dir"
    job = submit(env, grid, workdir)
    ray_folders.append(job)
    seen = wait_for(lambda: ray_processes(job), 60, "the job's Ray processes")
    finish(slurm, workdir, job)

    log = job_log(workdir, job)
    assert "2 Ray nodes up" in log and "the driver ended with status 0" in log, log
    runs = records(workdir)
    specs = {run_id(s) for s in specs_of(grid)}
    assert {runs[r].state for r in specs} == {RunState.SUCCEEDED}
    assert all(runs[r].attempts == 1 for r in specs)
    attempts = [a for r in specs for a in placements(workdir, r)]
    # Both Ray nodes (the head, and the worker started through srun) ran runs, with Ray's
    # token authentication on.
    assert len({a["node_id"] for a in attempts}) == 2, attempts
    assert {a["ray_auth_mode"] for a in attempts} == {"token"}
    # The job stopped its Ray nodes: none of their processes is left.
    assert seen and not ray_processes(job)


def test_a_cancelled_job_submitted_again_redoes_no_finished_run(slurm, env, tmp_path, ray_folders):
    grid = write_grid(tmp_path / "grid.yaml", seeds=[1, 2], steps=[SHORT, LONG])
    specs = {run_id(s): s for s in specs_of(grid)}
    short = [r for r, s in specs.items() if s.tokens == min(x.tokens for x in specs.values())]
    long = sorted(set(specs) - set(short))
    workdir = tmp_path / "w"
    first = submit(env, grid, workdir)
    ray_folders.append(first)

    def long_runs_going() -> bool:
        done = records(workdir) if (workdir / "results.db").exists() else {}
        finished = all(r in done and done[r].state == RunState.SUCCEEDED for r in short)
        return finished and all(steps_or_zero(workdir, r) >= 10 for r in long)

    wait_for(long_runs_going, 90, "the short runs finished, the long ones 10 steps in")
    slurm.run("scancel", first)
    assert slurm.wait_until_finished(first, 60) == "CANCELLED"
    assert not ray_processes(first)
    before = records(workdir)
    assert all(before[r].state != RunState.SUCCEEDED for r in long)

    second = submit(env, grid, workdir)
    ray_folders.append(second)
    finish(slurm, workdir, second)
    runs = records(workdir)
    assert {runs[r].state for r in specs} == {RunState.SUCCEEDED}
    for rid in short:  # finished before the cancel: left alone
        assert runs[rid].attempts == 1 and len(executions(workdir, rid)) == 1
    for rid in long:  # resumed from a checkpoint, each step once, the uninterrupted curve
        assert runs[rid].attempts == 2
        assert resumed_from(workdir, rid) >= 5
        assert curve(workdir, rid) == uninterrupted_curve(tmp_path, specs[rid], rid)
    assert not ray_processes(second)


def test_near_the_time_limit_the_job_checkpoints_requeues_itself_and_resumes(
    slurm, env, tmp_path, ray_folders
):
    """The time-limit notice is the signal that ``--signal=B:USR1@N`` sends, delivered at
    once with ``scancel --batch --signal=USR1`` rather than by waiting for the limit."""
    grid = write_grid(tmp_path / "grid.yaml", seeds=[1, 2], steps=[SHORT, LONG])
    specs = {run_id(s): s for s in specs_of(grid)}
    long = sorted(r for r, s in specs.items() if s.tokens == max(x.tokens for x in specs.values()))
    workdir = tmp_path / "w"
    job = submit(env, grid, workdir, "--requeue", "--time", "10", "--requeue-notice", "60")
    ray_folders.append(job)
    script = (workdir / "slurm" / "slscale-sweep.sbatch").read_text()
    assert "#SBATCH --requeue\n#SBATCH --signal=B:USR1@60\n" in script

    wait_for(lambda: all(steps_or_zero(workdir, r) >= 10 for r in long), 90, "long runs going")
    slurm.run("scancel", "--batch", "--signal=USR1", job)
    wait_until_requeued(slurm, job, 60)
    stopped = records(workdir)
    assert {stopped[r].state for r in long} == {RunState.PREEMPTED}
    start_now(slurm, job)
    finish(slurm, workdir, job)

    log = job_log(workdir, job)
    assert "the time limit is near" in log and f"requeueing job {job}" in log, log
    assert "(restart 1)" in log
    runs = records(workdir)
    assert {runs[r].state for r in specs} == {RunState.SUCCEEDED}
    for rid in set(specs) - set(long):
        assert runs[rid].attempts == 1
    for rid in long:  # stopped cleanly: preempted once, resumed where it stopped
        assert runs[rid].attempts == 2 and runs[rid].summary["preemptions"] == 1
        assert resumed_from(workdir, rid) >= 10
        assert curve(workdir, rid) == uninterrupted_curve(tmp_path, specs[rid], rid)
    assert not ray_processes(job)


@pytest.mark.slow
def test_the_time_limit_notice_comes_from_slurm_itself(slurm, env, tmp_path, ray_folders):
    """The real notice: a 2-minute job with ``--requeue-notice 90`` receives SIGUSR1 from
    SLURM 30 to 60 s in (slurmctld checks time limits every 30 s), stops its runs with a
    checkpoint and requeues itself. (Its resumption is tested above.)"""
    grid = write_grid(tmp_path / "grid.yaml", seeds=[1, 2], steps=[900])
    specs = {run_id(s) for s in specs_of(grid)}
    workdir = tmp_path / "w"
    job = submit(env, grid, workdir, "--requeue", "--time", "2", "--requeue-notice", "90")
    ray_folders.append(job)
    wait_until_requeued(slurm, job, 100)
    slurm.run("scancel", job)
    runs = records(workdir)
    assert {runs[r].state for r in specs} == {RunState.PREEMPTED}
    assert all(0 < steps_or_zero(workdir, r) < 900 for r in specs)
    assert "the time limit is near" in job_log(workdir, job)
    slurm.wait_until_finished(job, 30)
    assert not ray_processes(job)


def wait_until_requeued(slurm: SlurmCluster, job: str, timeout: float) -> None:
    """Wait until the job has requeued itself and waits to start again (SLURM holds a
    requeued job for two minutes: Reason=BeginTime)."""

    def requeued() -> bool:
        info = slurm.job(job)
        pending = info.get("JobState") == "PENDING" and info.get("Reason") == "BeginTime"
        return pending and info.get("Restarts") == "1"

    wait_for(requeued, timeout, f"job {job} requeued")


def start_now(slurm: SlurmCluster, job: str) -> None:
    """Start a requeued job now rather than two minutes later. Not within the second of its
    requeue: slurmd compares a reissued job credential with the revoked one by the second,
    and refuses (the job FAILS, "Job credential revoked") a credential of the same second."""
    time.sleep(2)
    slurm.run("scontrol", "update", f"JobId={job}", "StartTime=now")


def steps_or_zero(workdir: Path, rid: str) -> int:
    if not (workdir / "results.db").exists():
        return 0
    return stored_steps(workdir, rid)


def resumed_from(workdir: Path, rid: str) -> int:
    """The last step the first attempt wrote; every later step written by the second."""
    writer = curve(workdir, rid, "attempt")
    last = max(step for step, attempt in writer.items() if attempt == 1)
    assert all(writer[s] == 2 for s in writer if s > last), writer
    return last
