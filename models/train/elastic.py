"""Resuming a checkpoint on another number of workers, through DeepSpeed's universal checkpoint.

ZeRO-1 and 2 write the optimizer state, and ZeRO-3 the parameters too, as one partition per
worker, so a checkpoint of W workers cannot be loaded as it is by W' ≠ W workers (the most
reported resume failure of DeepSpeed: deepspeed#2898, #5405, #7628). On such a resume, worker 0
converts the checkpoint once with DeepSpeed's ``ds_to_universal`` into ``<checkpoint>/universal``
— one file per parameter and optimizer state, whole — which carries a manifest of its own, and
every worker loads it with the engine's universal loader (``checkpoint.load_universal``), which
cuts the states into W' partitions. A damaged or half-written conversion (its manifest does not
match) is made again from the checkpoint. ZeRO-0 keeps whole states and loads on any W as it is.

What the trainer keeps itself — data position, RNG states, progress — is the same on every
worker (every worker draws the whole global step, see :mod:`~slscale.models.train.dealing`), so
every worker of a resize takes worker 0's.

A checkpoint records the world size, ZeRO stage and precision it was written with; a resume
with another ZeRO stage or precision is refused with one line saying which, and what to do.

DeepSpeed's converter and universal loader call ``torch.load(weights_only=False)``; they run
here with ``TORCH_FORCE_WEIGHTS_ONLY_LOAD`` set, which makes every such call read with
``weights_only=True`` and the DeepSpeed classes of :mod:`~slscale.models.train.safe_load`
allowed, as every other checkpoint read of the trainer.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch

from slscale.errors import ConfigError, SlscaleError
from slscale.models.train.safe_load import allowing_deepspeed_globals

log = logging.getLogger(__name__)

UNIVERSAL = "universal"
"""Folder of a checkpoint's universal conversion, inside the checkpoint's own folder."""
SETUP_KEYS = ("zero_stage", "precision")
"""What a resume must share with the checkpoint (besides the world size, which may change)."""


def check_resumable(manifest: Mapping[str, Any], path: Path, setup: Mapping[str, Any]) -> None:
    """Raise, in one line, if ``setup`` (this attempt's ZeRO stage and precision) cannot resume
    the checkpoint at ``path`` (a :class:`ConfigError`: another attempt with the same settings
    would fail the same way). Checkpoints from before these were recorded are not checked."""
    for key in SETUP_KEYS:
        written = manifest.get(key)
        if written is not None and written != setup[key]:
            raise ConfigError(
                f"checkpoint {path} was written with {_show(key, written)}, this attempt runs "
                f"{_show(key, setup[key])}: resume it with {_show(key, written)}, or remove "
                f"{path.parent} to train the run from the start"
            )


def _show(key: str, value: Any) -> str:
    return f"ZeRO-{value}" if key == "zero_stage" else f"precision {value}"


def needs_universal(manifest: Mapping[str, Any], world_size: int) -> bool:
    """Whether the checkpoint must be re-partitioned for ``world_size`` workers."""
    stage = int(manifest.get("zero_stage", 1))  # unrecorded: assume partitioned
    return int(manifest["world_size"]) != world_size and stage > 0


def convert(path: Path, target: Path | None = None) -> Path:
    """``target`` (by default ``<path>/universal``), converted from the checkpoint at ``path``
    unless a complete conversion is there already (on worker 0 alone: see
    ``CheckpointManager.load``). A branch of a WSD ladder converts its trunk's checkpoint into
    a folder of its own, leaving the trunk's folder as it is."""
    from slscale.models.train.checkpoint import verify_checkpoint, write_manifest

    target = path / UNIVERSAL if target is None else target
    if target.is_dir():
        problem = verify_checkpoint(target)
        if problem is None:
            return target
        log.warning("universal copy %s is unusable (%s); converting again", target, problem)
        shutil.rmtree(target)
    tmp = target.with_name(f".tmp-{target.name}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    try:
        _ds_to_universal(path, tmp)
    except Exception as exc:
        raise SlscaleError(
            f"checkpoint {path}: DeepSpeed cannot convert it to its universal format "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); resume it "
            "on the number of workers that wrote it"
        ) from None
    write_manifest(tmp, {"converted_from": path.name})
    tmp.rename(target)
    return target


def _ds_to_universal(source: Path, target: Path) -> None:
    from deepspeed.checkpoint.ds_to_universal import main

    args = argparse.Namespace(
        input_folder=str(source),
        output_folder=str(target),
        num_extract_workers=1,  # in this process (more would fork pools of workers)
        num_merge_workers=1,
        keep_temp_folder=False,
        strict=True,
        inject_missing_state=True,
    )
    with weights_only_loads(), contextlib.redirect_stdout(io.StringIO()):
        main(args)
    (target.parent / "latest_universal").unlink(missing_ok=True)  # its pointer: unused


def load_universal(engine: Any, target: Path, *, lr_scheduler: bool = True) -> None:
    """Load the universal checkpoint ``target`` into ``engine`` (every worker);
    ``lr_scheduler=False`` leaves the engine's schedule as it is."""
    config = engine._config  # DeepSpeed reads the flag at load time; set it for this load only
    config.load_universal_checkpoint = True
    try:
        with weights_only_loads():
            load_path, _ = engine.load_checkpoint(
                str(target.parent),
                tag=target.name,
                load_optimizer_states=True,
                load_lr_scheduler_states=lr_scheduler,
            )
    finally:
        config.load_universal_checkpoint = False
    if load_path is None:
        raise SlscaleError(f"DeepSpeed could not load the universal checkpoint {target}")
    _unshare_steps(engine.optimizer)


def _unshare_steps(optimizer: Any) -> None:
    """Give each parameter's optimizer state a step counter of its own. DeepSpeed's ZeRO-3
    universal loader hands one step tensor to every parameter group, and torch's AdamW adds 1
    to it in place once per group: with two groups (decayed, not decayed) the step, and with it
    Adam's bias correction, ran twice as fast after the resume (a loss 1e-3 off the
    uninterrupted run's within five steps)."""
    inner = getattr(optimizer, "optimizer", optimizer)
    for state in inner.state.values():
        step = state.get("step")
        if isinstance(step, torch.Tensor):
            state["step"] = step.clone()


@contextlib.contextmanager
def weights_only_loads() -> Iterator[None]:
    """Every ``torch.load`` inside reads with ``weights_only=True``, whatever its caller asks,
    allowing DeepSpeed's checkpoint classes."""
    previous = os.environ.get("TORCH_FORCE_WEIGHTS_ONLY_LOAD")
    os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] = "1"
    try:
        with allowing_deepspeed_globals():
            yield
    finally:
        if previous is None:
            del os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"]
        else:
            os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] = previous
