"""Validation shares one held-out set out among data-parallel workers: one worker and two real
CPU processes (spawned, gloo) evaluate the same batches, each of the two a disjoint half of
them, and report the same val_loss."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from train_helpers import TINY_RECIPE, script_args
from train_script import SHARED, build_job

from slscale.models.train import run_local, train_worker
from slscale.models.train.report import read_result
from slscale.spec import RunState

EVAL_BATCHES = 5
"""Held-out micro-batches per source per evaluation: odd, so two workers get 3 and 2."""
EVALUATIONS = 2
"""One after step 1 (eval_every_steps=1) and one at the end of the 2-step run."""
PADDING = "(1, 2)"
"""Shape of the loss-free forward pass a ZeRO-3 worker runs when it has no batch of its own."""


def run_args(workdir: Path, run_id: str, stage: int, workers: int) -> dict[str, Any]:
    # a learning rate so small that the weights stay as initialised (the same seed on 1 and 2
    # workers): both runs evaluate the same model
    args = script_args(
        workdir,
        run_id,
        tokens=2 * 256,
        eval_batches=EVAL_BATCHES,
        eval_every_steps=1,
        zero_stage=stage,
        num_workers=workers,
        export_model=False,
        store=None,
    )
    return {
        **args,
        "recipe": {**TINY_RECIPE, "lr": 1e-30, "lr_min": 0.0},
        "shared_validation": True,
        "record_forwards": str(workdir / f"forwards-{run_id}"),
    }


def forwards(folder: Path, rank: int) -> list[str]:
    """Fingerprints ("shape digest") of a worker's evaluation forward passes, in order."""
    return (folder / f"rank{rank}.txt").read_text().splitlines()


@pytest.mark.parametrize(
    "stage", [pytest.param(2, id="zero2"), pytest.param(3, id="zero3", marks=pytest.mark.slow)]
)
def test_two_workers_split_the_held_out_set_and_agree_with_one(
    dist: Any, tmp_path: Path, stage: int
) -> None:
    one = train_worker(build_job(run_args(tmp_path, "one", stage, workers=1)))
    two = run_local(build_job(run_args(tmp_path, "two", stage, workers=2)))  # spawns two
    assert two.state == RunState.SUCCEEDED

    solo = forwards(tmp_path / "forwards-one", 0)
    pair = [forwards(tmp_path / "forwards-two", rank) for rank in (0, 1)]
    per_source = EVALUATIONS * len(SHARED)
    assert len(solo) == per_source * EVAL_BATCHES
    assert len(pair[0]) == per_source * 3  # batches 0, 2, 4 of each source
    padding = [f for f in pair[1] if f.startswith(PADDING)]
    assert len(pair[1]) - len(padding) == per_source * 2  # batches 1, 3
    assert len(padding) == (per_source if stage == 3 else 0)
    real = [pair[0], [f for f in pair[1] if not f.startswith(PADDING)]]
    assert set(real[0]).isdisjoint(real[1])
    assert Counter(real[0]) + Counter(real[1]) == Counter(solo)

    solo_losses = read_result(one.run_dir)["val_losses"]
    pair_losses = read_result(tmp_path / "runs" / "two")["val_losses"]
    assert set(solo_losses) == set(pair_losses) == {"val_loss", "val_loss.a", "val_loss.b"}
    for name, value in solo_losses.items():
        assert pair_losses[name] == pytest.approx(value, rel=1e-12), name
    assert one.val_loss == solo_losses["val_loss"]
    assert two.val_loss == pytest.approx(one.val_loss, rel=1e-12)
