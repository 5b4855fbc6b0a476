"""Atomic, verified training checkpoints: DeepSpeed engine state plus each worker's own state.

Layout under ``<run dir>/checkpoints/``::

    step-000000120/            a complete checkpoint (only complete ones carry this name)
        <DeepSpeed files>      model, optimizer, LR scheduler (per-rank ZeRO partitions)
        trainer_state_rank00000.pt   step, tokens, data position, RNG of worker 0
        MANIFEST.json          written last: every file's size and sha256
    .tmp-step-000000140/       a save in progress (or one a crash interrupted): ignored

A save writes into the ``.tmp-`` directory, fsyncs every file, writes ``MANIFEST.json``, then
renames the directory into place and fsyncs the parent, so a crash at any moment leaves either
the previous checkpoints or a new complete one. On resume the newest checkpoint whose files all
match its manifest is used; one that does not (truncated, corrupted, no manifest) is renamed
``corrupt-…`` and the one before it is tried. Workers must share the checkpoint filesystem (as
DeepSpeed requires).

The trainer state files hold plain values (None, bool, int, float, str, bytes, lists, tuples,
dicts) and torch tensors only, checked before they are written, and are read with
``torch.load(weights_only=True)``, which runs no code from the file. Checkpoints of format 1
pickled NumPy arrays in them: they are refused with a :class:`SlscaleError` instead of being
unpickled. DeepSpeed's own files are read with ``weights_only=True`` too, allowing the three
DeepSpeed classes they hold (:mod:`~slscale.models.train.safe_load`). The manifest's checksums
detect damage, not tampering.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import re
import shutil
import time
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any

import torch

from slscale.errors import SlscaleError
from slscale.models.train import elastic
from slscale.models.train.distributed import DistInfo, barrier, broadcast_object

log = logging.getLogger(__name__)

MANIFEST = "MANIFEST.json"
FORMAT_VERSION = 3
"""3: every worker's data position is the run's one stream, and the manifest records the ZeRO
stage and precision; 2: each worker read a data shard of its own (a checkpoint of several
workers is refused on load); 1: the trainer state pickled NumPy arrays (refused on load)."""
_READABLE_FORMATS = (1, 2, 3)
_PLAIN = (type(None), bool, int, float, str, bytes, torch.Tensor, torch.nn.Parameter)
_NAME = re.compile(r"^step-(\d{9})$")
_GLOBAL = re.compile(r"GLOBAL (\S+) was not an allowed global")


def checkpoint_name(step: int) -> str:
    return f"step-{step:09d}"


def checkpoint_step(path: Path) -> int:
    """The step of a complete checkpoint's folder (``step-000000120`` -> 120)."""
    found = _NAME.match(path.name)
    assert found is not None, path
    return int(found.group(1))


def worker_state_file(rank: int) -> str:
    return f"trainer_state_rank{rank:05d}.pt"


def verify_checkpoint(path: Path) -> str | None:
    """None if ``path`` is a complete checkpoint, else why it is not."""
    try:
        manifest = json.loads((path / MANIFEST).read_text())
        files = manifest["files"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"no readable {MANIFEST} ({exc.__class__.__name__})"
    if manifest.get("format_version") not in _READABLE_FORMATS:
        return f"unknown format_version {manifest.get('format_version')!r}"
    for name, meta in files.items():
        file = path / name
        if not file.is_file():
            return f"missing file {name}"
        if file.stat().st_size != meta["bytes"]:
            return f"file {name} has {file.stat().st_size} bytes, manifest says {meta['bytes']}"
        if _sha256(file) != meta["sha256"]:
            return f"file {name} does not match its sha256"
    return None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_manifest(path: Path, meta: dict[str, Any]) -> None:
    """fsync every file under ``path``, then write the manifest atomically (it marks the
    checkpoint complete)."""
    files = {}
    for file in sorted(p for p in path.rglob("*") if p.is_file() and p.name != MANIFEST):
        _fsync_path(file)
        files[str(file.relative_to(path))] = {"bytes": file.stat().st_size, "sha256": _sha256(file)}
    body = {"format_version": FORMAT_VERSION, **meta, "files": files}
    tmp = path / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(body, indent=1, sort_keys=True))
    _fsync_path(tmp)
    tmp.rename(path / MANIFEST)
    _fsync_path(path)


class CheckpointManager:
    """Saves, finds and loads the checkpoints of one run (collective calls on every worker)."""

    def __init__(
        self,
        root: Path,
        keep: int,
        info: DistInfo,
        setup: Mapping[str, Any] | None = None,
        keep_steps: Collection[int] = (),
    ) -> None:
        """``setup``: the ZeRO stage and precision of this attempt (``zero_stage``,
        ``precision``), recorded in every checkpoint it writes and checked on resume.
        ``keep_steps``: steps whose checkpoints are never pruned (a WSD trunk's branch points);
        the newest ``keep`` of the others are kept."""
        self.root = Path(root)
        self.keep = keep
        self.info = info
        self.setup = dict(setup or {})
        self.keep_steps = frozenset(keep_steps)

    def check_writable(self) -> None:
        """Fail now, naming the folder, if this worker cannot write checkpoints there (rather
        than at the first checkpoint, after training time is spent)."""
        probe = self.root / f".write-probe-rank{self.info.rank}"
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise SlscaleError(
                f"cannot write checkpoints to {self.root}: {type(exc).__name__}: "
                f"{exc.strerror or exc}; make the folder (and the workdir above it) writable "
                "or choose another --workdir"
            ) from None

    def complete(self) -> list[Path]:
        """Checkpoints carrying a complete name, newest first (not yet verified)."""
        if not self.root.is_dir():
            return []
        found = [p for p in self.root.iterdir() if p.is_dir() and _NAME.match(p.name)]
        return sorted(found, key=lambda p: p.name, reverse=True)

    def save(
        self,
        engine: Any,
        step: int,
        worker_state: dict[str, Any],
        meta: dict[str, Any],
        before_publish: Callable[[], None] | None = None,
    ) -> Path:
        """Write a checkpoint of the state after ``step`` optimizer steps. ``before_publish``
        (a collective call on every worker) may raise to leave the written checkpoint
        unpublished (under its temporary name, which no resume reads)."""
        check_plain(worker_state, "trainer state")
        name = checkpoint_name(step)
        tmp = self.root / f".tmp-{name}"
        if self.info.is_main:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
        barrier(self.info)
        engine.save_checkpoint(str(self.root), tag=tmp.name, client_state={}, save_latest=False)
        torch.save(worker_state, tmp / worker_state_file(self.info.rank))
        barrier(self.info)
        if before_publish is not None:
            before_publish()
        if self.info.is_main:
            record = {"step": step, "world_size": self.info.world_size, **self.setup, **meta}
            write_manifest(tmp, record)
            self._publish(tmp, self.root / name)
            self._prune()
        barrier(self.info)
        return self.root / name

    def _publish(self, tmp: Path, final: Path) -> None:
        if final.exists():  # the same step saved again after a resume: replace it
            old = final.with_name(f".old-{final.name}-{time.time_ns()}")
            final.rename(old)
            shutil.rmtree(old, ignore_errors=True)
        tmp.rename(final)
        _fsync_path(self.root)

    def _prune(self) -> None:
        rotating = [p for p in self.complete() if checkpoint_step(p) not in self.keep_steps]
        for old in rotating[self.keep :]:
            shutil.rmtree(old, ignore_errors=True)

    def latest_valid(self) -> Path | None:
        """The newest verified checkpoint (chosen by worker 0, the same on every worker)."""
        choice: str | None = None
        if self.info.is_main:
            choice = self._find_valid()
        chosen = broadcast_object(choice, self.info)
        return self.root / str(chosen) if chosen else None

    def _find_valid(self) -> str | None:
        for path in self.complete():
            problem = verify_checkpoint(path)
            if problem is None:
                return path.name
            corrupt = path.with_name(f"corrupt-{path.name}-{time.time_ns()}")
            log.warning("checkpoint %s is unusable (%s); moved to %s", path, problem, corrupt.name)
            path.rename(corrupt)
        return None

    def load(
        self,
        engine: Any,
        path: Path,
        *,
        lr_scheduler: bool = True,
        universal: Path | None = None,
    ) -> dict[str, Any]:
        """Restore the engine from ``path`` and return this worker's trainer state. A
        checkpoint of another number of workers is re-partitioned (:mod:`.elastic`, into
        ``universal``, by default ``<path>/universal``), and every worker then takes worker 0's
        trainer state. ``lr_scheduler=False``: leave the engine's schedule as it is (a branch
        loading its trunk's checkpoint)."""
        manifest = json.loads((path / MANIFEST).read_text())
        if self.setup:
            elastic.check_resumable(manifest, path, self.setup)
        same = manifest["world_size"] == self.info.world_size
        file = path / worker_state_file(self.info.rank if same else 0)
        self._check_format(manifest, file)
        state = read_worker_state(file)
        if elastic.needs_universal(manifest, self.info.world_size):
            target = self._universal(path, universal or path / elastic.UNIVERSAL)
            elastic.load_universal(engine, target, lr_scheduler=lr_scheduler)
            return state
        load_path, _ = engine.load_checkpoint(
            str(path.parent),
            tag=path.name,
            load_optimizer_states=True,
            load_lr_scheduler_states=lr_scheduler,
        )
        if load_path is None:
            raise SlscaleError(f"DeepSpeed could not load checkpoint {path}")
        return state

    def _check_format(self, manifest: dict[str, Any], file: Path) -> None:
        version = manifest["format_version"]
        if version < 2:
            raise SlscaleError(
                f"{file}: written by an older slscale version (checkpoint format {version}), "
                f"whose pickled NumPy objects cannot be loaded safely; remove {self.root} to "
                "train the run from the start"
            )
        if version < 3 and manifest["world_size"] > 1:
            raise SlscaleError(
                f"{file.parent}: written by an older slscale version (checkpoint format "
                f"{version}) whose {manifest['world_size']} workers each read a data shard of "
                f"their own; resume it with that version, or remove {self.root} to train the "
                "run from the start"
            )

    def _universal(self, path: Path, target: Path) -> Path:
        """The universal conversion of ``path`` at ``target``, made by worker 0 (a collective
        call: an error of the conversion is raised on every worker)."""
        error = None
        if self.info.is_main:
            try:
                elastic.convert(path, target)
            except SlscaleError as exc:
                error = str(exc)
        shared = broadcast_object(error, self.info)
        if shared is not None:
            raise SlscaleError(str(shared))
        return target


def read_worker_state(file: Path) -> dict[str, Any]:
    """A trainer state file, read with ``torch.load(weights_only=True)``: plain values and
    tensors only; a file holding anything else is refused without running code from it."""
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = _GLOBAL.search(str(exc))
        what = f" (it needs {found.group(1)})" if found else ""
        raise SlscaleError(
            f"{file}: holds objects other than plain values and tensors, which cannot be loaded "
            f"safely{what}; it was written by an older slscale version or altered: remove its "
            "checkpoint folder to resume from an earlier one or to start the run over"
        ) from None
    except (RuntimeError, EOFError) as exc:
        raise SlscaleError(f"{file}: not a readable trainer state ({exc})") from None
    if not isinstance(state, dict):
        raise SlscaleError(f"{file}: holds a {type(state).__name__}, not a trainer state dict")
    return state


def check_plain(value: Any, where: str) -> None:
    """Raise SlscaleError unless ``value`` is built of None, bool, int, float, str, bytes,
    lists, tuples, dicts and tensors only (what ``weights_only`` loading reads back)."""
    if type(value) in _PLAIN:
        return
    if type(value) in (list, tuple):
        for i, item in enumerate(value):
            check_plain(item, f"{where}[{i}]")
    elif type(value) is dict:
        for key, item in value.items():
            check_plain(key, f"a key of {where}")
            check_plain(item, f"{where}[{key!r}]")
    else:
        kind = f"{type(value).__module__}.{type(value).__qualname__}"
        raise SlscaleError(
            f"{where} is a {kind}: a checkpoint stores only None, bool, int, float, str, bytes, "
            "lists, tuples, dicts and torch tensors (a BatchSource's state_dict must return them)"
        )
