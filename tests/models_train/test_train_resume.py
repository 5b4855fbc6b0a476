"""Crash, preemption and resume, for real: trainings run in their own processes, which are killed
(SIGKILL) or signalled (SIGTERM); the resumed run's loss curve must equal an uninterrupted one."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import pytest
from train_helpers import run_script, script_args, script_result

from slscale.models.train.checkpoint import verify_checkpoint
from slscale.models.train.report import read_result
from slscale.models.train.telemetry import read_metrics_jsonl
from slscale.spec import RunState
from slscale.store import open_store

# The trainer draws each step's 8 sequences at once: draw 11 is step 11's, after the
# checkpoints of steps 4 and 8.
CHECKPOINT_EVERY = 4
CRASH_AT_BATCH = 11
STEPS = 25


def store_losses(workdir: Path, run_id: str) -> dict[int, float]:
    with open_store(workdir) as store:
        frame = store.metrics_frame(run_ids=[run_id], names=["loss"])
    return dict(zip(frame["step"].astype(int), frame["value"], strict=True))


def assert_same_curve(resumed: dict[int, float], baseline: dict[int, float]) -> None:
    assert sorted(resumed) == sorted(baseline) == list(range(1, STEPS + 1))
    worst = max(abs(resumed[s] - baseline[s]) for s in baseline)
    assert worst <= 1e-6, f"largest per-step loss difference {worst:.3g}"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("resume")


@pytest.fixture(scope="module")
def baseline(workdir: Path) -> dict[int, float]:
    """The uninterrupted run's per-step losses."""
    done = run_script(
        script_args(workdir, "straight", checkpoint_every_steps=CHECKPOINT_EVERY), workdir
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return store_losses(workdir, "straight")


def crash(workdir: Path, run_id: str) -> None:
    args = script_args(workdir, run_id, checkpoint_every_steps=CHECKPOINT_EVERY)
    crashed = run_script({**args, "kill_at_batch": CRASH_AT_BATCH}, workdir)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr[-3000:]
    assert script_result(crashed.stdout) is None


def resume(workdir: Path, run_id: str) -> dict[str, Any]:
    done = run_script(
        script_args(workdir, run_id, checkpoint_every_steps=CHECKPOINT_EVERY), workdir
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = script_result(done.stdout)
    assert result is not None and result["state"] == "SUCCEEDED"
    return result


def test_killed_run_resumes_to_the_same_loss_curve(workdir: Path, baseline: dict) -> None:
    crash(workdir, "killed")
    checkpoints = workdir / "runs" / "killed" / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir() if p.name.startswith("step-")) == [
        "step-000000004",
        "step-000000008",
    ]
    with open_store(workdir) as store:
        run = store.get_run("killed")
        assert run is not None and run.state == RunState.RUNNING  # nobody could say otherwise

    resume(workdir, "killed")
    assert read_result(workdir / "runs" / "killed")["resumed_from_steps"] == [8]
    assert_same_curve(store_losses(workdir, "killed"), baseline)
    local = read_metrics_jsonl(workdir / "runs" / "killed" / "metrics.jsonl")
    assert {s: r.value for (s, n), r in local.items() if n == "loss"} == store_losses(
        workdir, "killed"
    )


def test_corrupt_newest_checkpoint_falls_back_to_the_previous_one(
    workdir: Path, baseline: dict
) -> None:
    crash(workdir, "corrupt")
    checkpoints = workdir / "runs" / "corrupt" / "checkpoints"
    newest = checkpoints / "step-000000008"
    victim = max((p for p in newest.iterdir() if p.suffix == ".pt"), key=lambda p: p.stat().st_size)
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte: same size, wrong checksum
    victim.write_bytes(bytes(data))
    assert "sha256" in str(verify_checkpoint(newest))
    partial = checkpoints / ".tmp-step-000000012"  # a save that a crash interrupted
    partial.mkdir()
    (partial / "mp_rank_00_model_states.pt").write_bytes(b"half")

    resume(workdir, "corrupt")
    assert read_result(workdir / "runs" / "corrupt")["resumed_from_steps"] == [4]
    assert_same_curve(store_losses(workdir, "corrupt"), baseline)
    assert [p.name.startswith("corrupt-step-000000008-") for p in checkpoints.iterdir()].count(
        True
    ) == 1


def test_sigterm_checkpoints_and_the_run_resumes(workdir: Path, baseline: dict) -> None:
    args = script_args(workdir, "preempted", checkpoint_every_steps=100)  # no periodic saves
    proc = run_script({**args, "sleep_per_batch": 0.1}, workdir, wait=False)
    metrics = workdir / "runs" / "preempted" / "metrics.jsonl"
    deadline = time.monotonic() + 120
    while not (metrics.exists() and '"step": 3' in metrics.read_text()):
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "the run did not reach step 3"
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr[-3000:]
    result = script_result(stdout)
    assert result is not None and result["state"] == "PREEMPTED"
    stopped_at = result["steps"]
    assert 3 <= stopped_at < STEPS
    checkpoint = workdir / "runs" / "preempted" / "checkpoints" / f"step-{stopped_at:09d}"
    assert verify_checkpoint(checkpoint) is None
    with open_store(workdir) as store:
        run = store.get_run("preempted")
        assert run is not None and run.state == RunState.PREEMPTED

    resume(workdir, "preempted")
    assert read_result(workdir / "runs" / "preempted")["resumed_from_steps"] == [stopped_at]
    assert_same_curve(store_losses(workdir, "preempted"), baseline)
