"""Ctrl-C in the middle of `slscale demo`, then the same command again: nothing finished is lost
or redone, and the runs that were stopped resume from their checkpoints.

The demo runs as a user's terminal runs it: its own process group, SIGINT to the whole group.
"""

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time

from slscale.store import open_store

ENV = {"OMP_NUM_THREADS": "1", "RAY_AUTH_MODE": "disabled", "DS_ACCELERATOR": "cpu"}
START_SECONDS = 300.0
"""Longest wait for the sweep to be under way (world and TextLMs take ~15 s on 2 idle cores)."""
EXIT_SECONDS = 60.0
"""Longest wait for the interrupted demo to exit (runs get 30 s to checkpoint)."""
MIDWAY = 0.6
"""Most of its tokens a run may have trained on to count as stopped midway."""
RERUN_SECONDS = 400.0
"""Longest wait for the rerun to finish the study (~35 s on 2 idle cores)."""


def _command(workdir):
    demo = ["demo", "--scale", "tiny", "--workdir", str(workdir), "--num-cpus", "2"]
    return [sys.executable, "-m", "slscale.cli", *demo]


def _start(workdir, log):
    return subprocess.Popen(
        _command(workdir),
        env={**os.environ, **ENV},
        stdout=(log / "stdout").open("w"),
        stderr=(log / "stderr").open("w"),
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )


def _wait(proc, seconds):
    """The exit status; the whole group (the demo, its Ray runtime) is killed past ``seconds``."""
    try:
        return proc.wait(timeout=seconds)
    finally:
        _kill(proc)


def _kill(proc):
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _snapshot(workdir):
    """run_id -> (state, attempts, updated_at, lease_owner, lease_expires_at), from the store."""
    with open_store(workdir) as store:
        return {
            r.run_id: (str(r.state), r.attempts, r.updated_at, r.lease_owner, r.lease_expires_at)
            for r in store.list_runs()
        }


def _midway(workdir):
    """True once a run has SUCCEEDED while another is RUNNING, in the first part of its training
    (it has logged steps, so the interrupt must checkpoint it, and is far from its end, so it
    cannot finish before the signal lands)."""
    if not (workdir / "results.db").exists():
        return False
    with open_store(workdir) as store:
        runs = store.list_runs()
        trained = store.progress_frame().set_index("run_id")["tokens_done"].fillna(0)
    midway = [
        r
        for r in runs
        if str(r.state) == "RUNNING" and 0 < trained[r.run_id] <= MIDWAY * r.spec["tokens"]
    ]
    return any(str(r.state) == "SUCCEEDED" for r in runs) and bool(midway)


def _wait_midway(proc, workdir, log):
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(
                f"the demo ended (exit {proc.returncode}) before the sweep was midway: "
                + (log / "stderr").read_text()[-2000:]
            )
        if _midway(workdir):
            return
        time.sleep(0.2)
    raise AssertionError(f"the sweep was not midway after {START_SECONDS} s")


def _checkpoint_steps(workdir, run_id):
    folder = workdir / "runs" / run_id / "checkpoints"
    return sorted(int(p.name.split("-")[1]) for p in folder.glob("step-*"))


def _mtimes(workdir):
    """The completion markers of the world and TextLM stages."""
    paths = [workdir / "world" / "world.json", *workdir.glob("textlms/*/pretrain.json")]
    return {str(p): p.stat().st_mtime_ns for p in paths}


def test_ctrl_c_midway_then_the_same_command_resumes_without_redoing_anything(tmp_path):
    workdir = tmp_path / "demo"
    proc = _start(workdir, tmp_path)
    try:
        _wait_midway(proc, workdir, tmp_path)
    except BaseException:
        _kill(proc)
        raise
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: the whole foreground process group
    rc = _wait(proc, EXIT_SECONDS)  # raises TimeoutExpired if it does not stop promptly

    # A short message, no traceback, the shell's status for SIGINT.
    stderr = (tmp_path / "stderr").read_text()
    assert rc == 130, stderr
    assert "Traceback" not in stderr, stderr
    message = [line for line in stderr.splitlines() if line.startswith("slscale:")]
    assert len(message) == 1 and "interrupted" in message[0], stderr
    assert "run the same command again to resume" in message[0]
    assert f"--workdir {workdir}" in message[0] and "--scale tiny" in message[0]

    # Nothing is left RUNNING or leased: a rerun can take every unfinished run at once.
    before = _snapshot(workdir)
    now = dt.datetime.now(dt.UTC)
    for run_id, (state, _, _, owner, expires) in before.items():
        assert state in ("SUCCEEDED", "PREEMPTED", "PENDING"), (run_id, state)
        assert owner is None or expires is None or expires <= now, (run_id, owner, expires)
    finished = {rid for rid, row in before.items() if row[0] == "SUCCEEDED"}
    stopped = {rid for rid, row in before.items() if row[0] == "PREEMPTED"}
    assert finished and stopped and len(before) == 4, before
    checkpoints = {rid: _checkpoint_steps(workdir, rid) for rid in stopped}
    assert any(checkpoints.values()), checkpoints  # a run that had trained saved its state
    markers = _mtimes(workdir)
    assert len(markers) == 3  # the world and both TextLMs were done before the sweep
    timings = json.loads((workdir / "timings.json").read_text())
    spent = timings["sweep interrupted"]  # the time the sweep took before the interrupt
    assert spent > 0 and "sweep" not in timings, timings

    # The same command again finishes the study.
    rerun = tmp_path / "rerun"
    rerun.mkdir()
    assert _wait(_start(workdir, rerun), RERUN_SECONDS) == 0, (rerun / "stderr").read_text()
    stdout = (rerun / "stdout").read_text()
    assert "world: cached" in stdout and "textlms: cached" in stdout
    assert _mtimes(workdir) == markers
    timings = json.loads((workdir / "timings.json").read_text())
    assert "sweep interrupted" not in timings and timings["sweep"] > spent, timings
    assert list(timings)[-1] == "total"
    after = _snapshot(workdir)
    assert set(after) == set(before)
    assert {row[0] for row in after.values()} == {"SUCCEEDED"}
    for run_id in finished:  # not trained again
        assert after[run_id][1:3] == before[run_id][1:3], run_id
    for run_id in set(before) - finished:  # stopped or never started: run now
        assert after[run_id][1] > before[run_id][1], run_id
    for run_id, steps in checkpoints.items():  # resumed where it stopped, not from scratch
        result = json.loads((workdir / "runs" / run_id / "result.json").read_text())
        assert result["resumed_from_steps"] == steps[-1:], (run_id, steps, result)

    with open_store(workdir) as store:
        evaluated = set(store.evals_frame()["run_id"])
    assert evaluated == set(after)
    report = (workdir / "report.md").read_text()
    assert "## Findings" in report
    assert (workdir / "report.html").read_text().startswith("<!doctype html>")
    assert (workdir / "figures" / "training_curves.png").stat().st_size > 10_000
