"""A run resumed on another number of workers (real DeepSpeed ZeRO 1-3, gloo, separate processes):
killed on W workers, resumed on W' from the checkpoint W wrote, its loss curve equals an
uninterrupted run's on the same global batches within 1e-5 relative per step (all-reduce order)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from train_helpers import run_script, script_args, script_result, tiny_job

from slscale.errors import ConfigError
from slscale.models.train import run_local
from slscale.models.train.checkpoint import MANIFEST, verify_checkpoint
from slscale.models.train.elastic import UNIVERSAL, check_resumable, convert, needs_universal
from slscale.models.train.report import read_result
from slscale.store import open_store

CHECKPOINT_EVERY = 4
CRASH_AT_BATCH = 11
"""Every worker draws each step's sequences at once: draw 11 is step 11's, after the
checkpoints of steps 4 and 8."""
STEPS = 25
TOLERANCE = 1e-5


def losses(workdir: Path, run_id: str) -> dict[int, float]:
    with open_store(workdir) as store:
        frame = store.metrics_frame(run_ids=[run_id], names=["loss"])
    return dict(zip(frame["step"].astype(int), frame["value"], strict=True))


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Per ZeRO stage, the losses of an uninterrupted run on one worker (in this process)."""
    workdir = tmp_path_factory.mktemp("reference")
    cache: dict[int, dict[int, float]] = {}

    def curve(stage: int) -> dict[int, float]:
        if stage not in cache:
            run_local(tiny_job(workdir, run_id=f"straight-{stage}", zero_stage=stage))
            cache[stage] = losses(workdir, f"straight-{stage}")
        return cache[stage]

    return curve


def args_of(workdir: Path, stage: int, workers: int) -> dict[str, Any]:
    return script_args(
        workdir,
        "elastic",
        zero_stage=stage,
        num_workers=workers,
        checkpoint_every_steps=CHECKPOINT_EVERY,
        keep_checkpoints=10,  # step 8's stays, with the conversion its resume made
        export_model=False,
    )


def crash(workdir: Path, stage: int, workers: int) -> Path:
    """Train on ``workers`` workers until every one of them is killed in step 11; the newest
    checkpoint (step 8)."""
    crashed = run_script(
        {**args_of(workdir, stage, workers), "kill_at_batch": CRASH_AT_BATCH}, workdir
    )
    assert crashed.returncode != 0 and script_result(crashed.stdout) is None, crashed.stderr[-3000:]
    return workdir / "runs" / "elastic" / "checkpoints" / "step-000000008"


def resume(workdir: Path, stage: int, workers: int) -> dict[str, Any]:
    done = run_script(args_of(workdir, stage, workers), workdir)
    assert done.returncode == 0, done.stderr[-3000:]
    result = script_result(done.stdout)
    assert result is not None and result["state"] == "SUCCEEDED"
    return read_result(workdir / "runs" / "elastic")


def assert_same_curve(resumed: dict[int, float], uninterrupted: dict[int, float]) -> None:
    assert sorted(resumed) == sorted(uninterrupted) == list(range(1, STEPS + 1))
    worst = max(abs(resumed[s] - uninterrupted[s]) / abs(uninterrupted[s]) for s in resumed)
    assert worst <= TOLERANCE, f"largest relative per-step loss difference {worst:.3g}"


def _stage(stage: int, *marks: Any) -> Any:
    return pytest.param(stage, id=f"zero{stage}", marks=marks)


@pytest.mark.parametrize("before, after", [(2, 1), (1, 2)], ids=["2to1", "1to2"])
@pytest.mark.parametrize(
    "stage",
    [
        _stage(0, pytest.mark.slow),  # whole states: loaded as they are, no conversion
        _stage(1, pytest.mark.slow),
        _stage(2),
        _stage(3, pytest.mark.slow),
    ],
)
def test_a_run_resumes_on_another_number_of_workers(
    tmp_path: Path, reference: Any, stage: int, before: int, after: int
) -> None:
    checkpoint = crash(tmp_path, stage, before)
    names = sorted(p.name for p in checkpoint.parent.iterdir() if p.name.startswith("step-"))
    assert names == ["step-000000004", "step-000000008"]
    manifest = (checkpoint / MANIFEST).read_text()
    for recorded in (f'"world_size": {before}', f'"zero_stage": {stage}', '"precision": "fp32"'):
        assert recorded in manifest

    record = resume(tmp_path, stage, after)
    assert record["resumed_from_steps"] == [8]
    assert record["runtime"]["world_size"] == after
    # the same global batches: every token once, counted once
    assert record["tokens"] == sum(record["tokens_by_stream"].values()) == 24 * 256 + 100
    if stage > 0:
        assert verify_checkpoint(checkpoint / UNIVERSAL) is None  # re-partitioned through it
    else:
        assert not (checkpoint / UNIVERSAL).exists()
    assert_same_curve(losses(tmp_path, "elastic"), reference(stage))


def flip_a_byte(path: Path) -> None:
    """Damage ``path`` as a bad disk would: one flipped byte, same size, wrong checksum."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def test_a_resize_sets_a_damaged_checkpoint_aside_and_makes_a_damaged_conversion_again(
    tmp_path: Path, reference: Any
) -> None:
    """The newest checkpoint of two workers (step 8) is damaged in worker 1's ZeRO partition,
    and the one before it (step 4) carries a damaged universal conversion and a conversion a
    crash interrupted. A resume on one worker sets step 8 aside, converts step 4 again and
    resumes from it: the curve is the uninterrupted one."""
    newest = crash(tmp_path, 2, 2)
    flip_a_byte(newest / "zero_pp_rank_1_mp_rank_00_optim_states.pt")
    previous = newest.with_name("step-000000004")
    universal = convert(previous)
    flip_a_byte(max(universal.rglob("*.pt"), key=lambda p: p.stat().st_size))
    assert "sha256" in str(verify_checkpoint(universal))
    (previous / f".tmp-{UNIVERSAL}").mkdir()  # a conversion a crash interrupted

    record = resume(tmp_path, 2, 1)
    assert record["resumed_from_steps"] == [4]  # step 8 was damaged; step 4 itself was sound
    assert '"world_size": 1' in (newest / MANIFEST).read_text()  # saved again after the resume
    (set_aside,) = newest.parent.glob("corrupt-step-000000008-*")
    assert "sha256" in str(verify_checkpoint(set_aside))
    assert verify_checkpoint(universal) is None
    assert not (previous / f".tmp-{UNIVERSAL}").exists()
    assert_same_curve(losses(tmp_path, "elastic"), reference(2))


@pytest.mark.usefixtures("dist")
def test_a_resume_with_another_zero_stage_fails_saying_why(tmp_path: Path) -> None:
    checkpoint = crash(tmp_path, 2, 1)
    job = tiny_job(tmp_path, run_id="elastic", zero_stage=3, checkpoint_every_steps=4)
    with pytest.raises(ConfigError) as raised:
        run_local(job)
    message = str(raised.value)
    assert message == (
        f"checkpoint {checkpoint} was written with ZeRO-2, this attempt runs ZeRO-3: resume it "
        f"with ZeRO-2, or remove {checkpoint.parent} to train the run from the start"
    )
    assert not (checkpoint / UNIVERSAL).exists()


def test_only_the_world_size_may_change_on_resume(tmp_path: Path) -> None:
    path = tmp_path / "checkpoints" / "step-000000008"
    setup = {"zero_stage": 2, "precision": "fp32"}
    check_resumable({"world_size": 4, **setup}, path, setup)
    check_resumable({"world_size": 2}, path, setup)  # written before these were recorded
    with pytest.raises(ConfigError) as raised:  # not retryable: the settings must change
        check_resumable({"world_size": 2, "zero_stage": 2, "precision": "bf16"}, path, setup)
    assert str(raised.value) == (
        f"checkpoint {path} was written with precision bf16, this attempt runs precision fp32: "
        f"resume it with precision bf16, or remove {path.parent} to train the run from the start"
    )
    assert needs_universal({"world_size": 2, "zero_stage": 3}, 1)
    assert not needs_universal({"world_size": 2, "zero_stage": 3}, 2)
    assert not needs_universal({"world_size": 2, "zero_stage": 0}, 1)  # whole states
