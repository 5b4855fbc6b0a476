"""WSD ladders in the real trainer: a trunk keeps its branch points, and a branch started from
the trunk's checkpoint trains exactly like one uninterrupted wsd run of its length."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from train_helpers import TINY_RECIPE, run_script, script_args, tiny_job

from slscale.errors import ConfigError
from slscale.models.train import LRSchedule, train_worker
from slscale.models.train.branch import TrunkNotReady
from slscale.models.train.checkpoint import verify_checkpoint
from slscale.models.train.report import read_result
from slscale.spec import Branch, Recipe, RunState
from slscale.store import open_store

STEP = 256  # tokens per step of the tiny recipe (8 sequences of 32)
WSD = {"schedule": "wsd", "decay_fraction": 0.25, "warmup_fraction": 0.0, "min_warmup_steps": 2}
"""The ladder's recipe: the warm-up pinned in steps, so that it is the same at every length."""
STEPS = 20  # the branch's length: it decays over its last round(0.25 × 20) = 5 steps
BRANCH_AT = 15
SHORT_BRANCH_AT = 8  # the branch point of an 11-step run: 11 - round(0.25 × 11)


def store_metric(workdir: Path, run_id: str, name: str) -> dict[int, float]:
    with open_store(workdir) as store:
        frame = store.metrics_frame(run_ids=[run_id], names=[name])
    return dict(zip(frame["step"].astype(int), frame["value"], strict=True))


def job(workdir: Path, run_id: str, **config: Any) -> Any:
    return tiny_job(workdir, run_id=run_id, recipe=dict(WSD), **config)


@pytest.fixture(scope="module")
def ladder(tmp_path_factory: pytest.TempPathFactory, dist: Any) -> Path:
    """A trunk with branch points at steps 8 and 15, a branch of 20 steps from step 15, and the
    same wsd run of 20 steps trained straight through, in one workdir."""
    workdir = tmp_path_factory.mktemp("wsd")
    straight = train_worker(job(workdir, "straight", tokens=STEPS * STEP))
    trunk = job(
        workdir,
        "trunk",
        tokens=BRANCH_AT * STEP,
        branch_tokens=(SHORT_BRANCH_AT * STEP, BRANCH_AT * STEP),
        checkpoint_every_steps=4,
        keep_checkpoints=1,
    )
    branch = job(
        workdir,
        "branch",
        tokens=STEPS * STEP,
        branch=Branch(parent="trunk", from_tokens=BRANCH_AT * STEP),
    )
    for run in (straight, train_worker(trunk), train_worker(branch)):
        assert getattr(run, "state", RunState.SUCCEEDED) == RunState.SUCCEEDED
    return workdir


def test_a_trunk_keeps_its_branch_points_whatever_the_rotation(ladder: Path) -> None:
    checkpoints = ladder / "runs" / "trunk" / "checkpoints"
    # periodic saves at 4 and 12 rotate (one kept); the branch points 8 and 15 stay
    assert sorted(p.name for p in checkpoints.iterdir()) == [
        "step-000000008",
        "step-000000012",
        "step-000000015",
    ]
    assert all(verify_checkpoint(p) is None for p in checkpoints.iterdir())
    assert set(store_metric(ladder, "trunk", "lr").values()) == {1.5e-3, 3e-3}  # never decays


def test_a_branch_trains_like_one_uninterrupted_wsd_run(ladder: Path) -> None:
    straight = store_metric(ladder, "straight", "loss")
    trunk, branch = store_metric(ladder, "trunk", "loss"), store_metric(ladder, "branch", "loss")
    assert sorted(straight) == list(range(1, STEPS + 1))
    assert sorted(trunk) == list(range(1, BRANCH_AT + 1))
    assert sorted(branch) == list(range(BRANCH_AT + 1, STEPS + 1))
    for step, loss in {**trunk, **branch}.items():
        assert loss == pytest.approx(straight[step], rel=1e-6, abs=0), f"step {step}"
    assert straight[STEPS] < straight[BRANCH_AT]  # the decay still trains


def test_a_branch_runs_at_the_rate_of_a_wsd_run_of_its_length(ladder: Path) -> None:
    recipe = Recipe(**{**TINY_RECIPE, **WSD})
    schedule = LRSchedule.from_recipe(recipe, STEPS)
    rates = store_metric(ladder, "branch", "lr")
    assert rates == {s: pytest.approx(schedule.lr(s - 1), rel=1e-12) for s in rates}
    assert rates == {s: store_metric(ladder, "straight", "lr")[s] for s in rates}
    assert schedule.lr(BRANCH_AT - 1) == recipe.lr > schedule.lr(BRANCH_AT)


def test_a_branch_records_where_it_started_and_what_it_trained(ladder: Path) -> None:
    result = read_result(ladder / "runs" / "branch")
    assert result["branch"] == {
        "parent": "trunk",
        "from_step": BRANCH_AT,
        "from_tokens": BRANCH_AT * STEP,
    }
    assert (result["steps"], result["tokens"]) == (STEPS, STEPS * STEP)
    assert result["tokens_trained"] == (STEPS - BRANCH_AT) * STEP
    assert result["resumed_from_steps"] == []
    # the token counters continue from the trunk's position
    counts = result["tokens_by_stream"]
    assert sum(counts.values()) == STEPS * STEP
    assert counts == read_result(ladder / "runs" / "straight")["tokens_by_stream"]
    assert read_result(ladder / "runs" / "trunk")["tokens_trained"] == BRANCH_AT * STEP


def test_a_branch_waits_for_its_trunks_checkpoint(dist: Any, tmp_path: Path) -> None:
    early = job(
        tmp_path,
        "early",
        tokens=STEPS * STEP,
        branch=Branch(parent="trunk", from_tokens=BRANCH_AT * STEP),
        store=None,
    )
    with pytest.raises(TrunkNotReady, match=r"branch early: its trunk trunk has no checkpoint "):
        train_worker(early)
    assert TrunkNotReady.retryable
    assert not (tmp_path / "runs" / "early" / "result.json").exists()  # it waits, not FAILED


def test_a_branch_refuses_a_trunk_of_another_recipe(
    dist: Any, ladder: Path, tmp_path: Path
) -> None:
    shutil.copytree(ladder / "runs" / "trunk", tmp_path / "runs" / "trunk")
    other = tiny_job(
        tmp_path,
        run_id="other",
        recipe={**WSD, "min_warmup_steps": 3},
        tokens=STEPS * STEP,
        branch=Branch(parent="trunk", from_tokens=BRANCH_AT * STEP),
        store=None,
    )
    with pytest.raises(ConfigError, match=r"another recipe \(min_warmup_steps differ\)"):
        train_worker(other)


@pytest.mark.slow
def test_a_branch_on_more_workers_converts_its_trunk_into_its_own_folder(
    dist: Any, ladder: Path, tmp_path: Path
) -> None:
    """A ZeRO-2 trunk of one worker, a branch of two: the trunk's partitions are re-cut through
    a universal conversion in the branch's folder; the trunk's folder is only read."""
    trunk = job(
        tmp_path, "trunk", tokens=BRANCH_AT * STEP, branch_tokens=(BRANCH_AT * STEP,), zero_stage=2
    )
    assert train_worker(trunk).state == RunState.SUCCEEDED
    checkpoint = tmp_path / "runs" / "trunk" / "checkpoints" / "step-000000015"
    before = sorted(p.name for p in checkpoint.iterdir())
    args = script_args(
        tmp_path,
        "wide",
        tokens=STEPS * STEP,
        zero_stage=2,
        num_workers=2,
        export_model=False,
        branch={"parent": "trunk", "from_tokens": BRANCH_AT * STEP},
    )
    done = run_script({**args, "recipe": {**TINY_RECIPE, **WSD}}, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert sorted(p.name for p in checkpoint.iterdir()) == before
    converted = tmp_path / "runs" / "wide" / "trunk-universal" / "step-000000015"
    assert verify_checkpoint(converted) is None
    wide, straight = (
        store_metric(tmp_path, "wide", "loss"),
        store_metric(ladder, "straight", "loss"),
    )
    assert sorted(wide) == list(range(BRANCH_AT + 1, STEPS + 1))
    for step, loss in wide.items():  # two workers sum in another order: 1e-5
        assert loss == pytest.approx(straight[step], rel=1e-5, abs=0), f"step {step}"
