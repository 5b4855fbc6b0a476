"""A decay branch of a WSD ladder starts from its trunk's checkpoint at the branch point.

A trunk (``TrainConfig.branch_tokens``) trains warm-up and stable phase only and keeps a
checkpoint at every branch point, ``<workdir>/runs/<trunk id>/checkpoints/step-<K>``. A branch
of the same workdir (``TrainConfig.branch``) that has no checkpoint of its own loads that one —
weights, optimizer state (AdamW moments and step counts), data position, RNG and token counts
— and trains steps ``K .. S-1`` of a wsd run of its own length ``S`` from there: every step
runs at the rate, and on the batches, of one uninterrupted wsd run of ``S`` steps. The trunk's
learning-rate scheduler state is not loaded (its schedule never decays); the branch's own
schedule is placed at step ``K`` instead. The trunk's folder is only read: a re-partition for
another number of workers is converted into the branch's own folder.

Before anything is loaded, worker 0 checks that the checkpoint is complete and is the trunk's
at step ``K``, and that the trunk trained with the branch's recipe and ran, at every step before
``K``, at the rate the branch's schedule gives that step.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from slscale.errors import ConfigError, SlscaleError
from slscale.models.train.checkpoint import MANIFEST, checkpoint_name, verify_checkpoint
from slscale.models.train.config import TrainConfig
from slscale.models.train.distributed import DistInfo, broadcast_object
from slscale.models.train.schedule import LRSchedule
from slscale.spec import spec_to_dict


class TrunkNotReady(SlscaleError):
    """The trunk has not (yet) written a complete checkpoint at the branch point. Retryable:
    it may exist once the trunk has trained that far."""

    retryable = True


def trunk_checkpoint(config: TrainConfig) -> Path:
    """Where a branch's start lies: ``<workdir>/runs/<trunk id>/checkpoints/step-<K>``."""
    assert config.branch is not None
    trunk_dir = Path(config.workdir) / "runs" / config.branch.parent
    return trunk_dir / "checkpoints" / checkpoint_name(config.branch_step)


def universal_folder(config: TrainConfig) -> Path:
    """Where a branch converts its trunk's checkpoint for another number of workers."""
    return config.run_dir / "trunk-universal" / checkpoint_name(config.branch_step)


def checked_trunk_checkpoint(config: TrainConfig, schedule: LRSchedule, info: DistInfo) -> Path:
    """The trunk's checkpoint at the branch point, checked by worker 0 (a collective call: a
    problem is raised on every worker, as :class:`TrunkNotReady` while the checkpoint is
    missing or incomplete, as :class:`ConfigError` when it cannot start this branch)."""
    path = trunk_checkpoint(config)
    problem: tuple[str, str] | None = None
    if info.is_main:
        problem = _problem(config, schedule, path)
    shared = broadcast_object(problem, info)
    if isinstance(shared, tuple):
        kind, message = str(shared[0]), str(shared[1])
        raise (TrunkNotReady if kind == "missing" else ConfigError)(message)
    return path


def _problem(config: TrainConfig, schedule: LRSchedule, path: Path) -> tuple[str, str] | None:
    assert config.branch is not None
    where = f"branch {config.run_id}: its trunk {config.branch.parent}"
    if not path.is_dir():
        return "missing", (
            f"{where} has no checkpoint at step {config.branch_step} ({path}): train the trunk "
            "to its branch points first (a trunk keeps them whatever --keep-checkpoints says)"
        )
    damaged = verify_checkpoint(path)
    if damaged is not None:
        return "missing", f"{where}: checkpoint {path} is not complete ({damaged})"
    manifest = json.loads((path / MANIFEST).read_text())
    mismatch = _mismatch(config, schedule, manifest)
    return None if mismatch is None else ("config", f"{where}: checkpoint {path} {mismatch}")


def _mismatch(config: TrainConfig, schedule: LRSchedule, manifest: dict[str, Any]) -> str | None:
    """Why the trunk's checkpoint (its manifest) cannot start this branch, or None."""
    assert config.branch is not None
    step, recipe = config.branch_step, manifest.get("recipe")
    if manifest.get("run_id") != config.branch.parent or manifest.get("step") != step:
        return f"is run {manifest.get('run_id')}'s at step {manifest.get('step')}"
    if recipe is None or "lr_schedule" not in manifest:
        return "records no recipe or schedule (written before WSD ladders existed)"
    if recipe != spec_to_dict(config.recipe):
        diffs = sorted(k for k in recipe if recipe[k] != spec_to_dict(config.recipe).get(k))
        return f"was trained with another recipe ({', '.join(diffs)} differ)"
    trunk = LRSchedule(**manifest["lr_schedule"])
    for s in range(step):
        if trunk.lr(s) != schedule.lr(s):
            return (
                f"ran step {s} at learning rate {trunk.lr(s):.6g}, where this branch's schedule "
                f"gives {schedule.lr(s):.6g} (ladders pin the warm-up in steps: give trunk and "
                "branches recipe.warmup_fraction: 0 and the same min_warmup_steps)"
            )
    return None


def place_schedule(engine: Any, schedule: LRSchedule, step: int) -> None:
    """Put the engine's learning-rate scheduler at ``step`` of ``schedule``, as a resume of a
    run with that schedule finds it: the next optimizer step runs at ``schedule.lr(step)``."""
    scheduler = engine.lr_scheduler
    state = scheduler.state_dict()
    rates = [base * schedule(step) for base in state["base_lrs"]]
    state.update(last_epoch=step, _last_lr=rates)
    scheduler.load_state_dict(state)
    for group, rate in zip(scheduler.optimizer.param_groups, rates, strict=True):
        group["lr"] = rate
