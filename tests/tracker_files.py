"""Read back what the experiment trackers wrote, with the trackers' own formats and readers.

- TensorBoard: ``tensorboard``'s own ``EventAccumulator`` over a run's folder.
- W&B: offline runs write ``run-<id>.wandb`` files, a LevelDB-style record log (a 7-byte
  header ``:W&B`` + magic + version, then 32 KiB blocks of records, each a 7-byte header —
  CRC-32C, length, type: full/first/middle/last — and a payload) whose payloads are W&B's
  ``Record`` protocol buffers (``wandb.proto.wandb_internal_pb2``). W&B no longer ships a
  Python reader for it, so this module reads the framing itself and lets W&B's protobuf classes
  parse the records.

Use from any test folder with ``tests/`` on ``sys.path``.
"""

from __future__ import annotations

import dataclasses
import json
import struct
from pathlib import Path
from typing import Any

_BLOCK = 32 * 1024
_HEADER = 7
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


@dataclasses.dataclass
class WandbRun:
    """One offline W&B run file: its id, name, group, config, history rows and summary."""

    path: Path
    run_id: str = ""
    name: str = ""
    group: str = ""
    tags: list[str] = dataclasses.field(default_factory=list)
    config: dict[str, Any] = dataclasses.field(default_factory=dict)
    history: dict[int, dict[str, Any]] = dataclasses.field(default_factory=dict)
    summary: dict[str, Any] = dataclasses.field(default_factory=dict)


def wandb_runs(folder: Path) -> list[WandbRun]:
    """Every offline run under ``folder`` (oldest first, by file name)."""
    return [read_wandb(p) for p in sorted(Path(folder).rglob("run-*.wandb"))]


def read_wandb(path: Path) -> WandbRun:
    from wandb.proto import wandb_internal_pb2 as pb

    run = WandbRun(path=Path(path))
    for payload in _records(Path(path).read_bytes()):
        record = pb.Record()
        record.ParseFromString(payload)
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run.run_id, run.name = record.run.run_id, record.run.display_name
            run.group, run.tags = record.run.run_group, list(record.run.tags)
            run.config.update(_items(record.run.config.update))
        elif kind == "config":
            run.config.update(_items(record.config.update))
        elif kind == "history":
            values = _items(record.history.item)
            step = int(values.get("_step", record.history.step.num))
            user = {k: v for k, v in values.items() if not k.startswith("_")}
            run.history.setdefault(step, {}).update(user)
        elif kind == "summary":
            run.summary.update(
                {k: v for k, v in _items(record.summary.update).items() if not k.startswith("_")}
            )
    return run


def _items(items: Any) -> dict[str, Any]:
    return {(i.key or "/".join(i.nested_key)): json.loads(i.value_json) for i in items}


def _records(raw: bytes) -> list[bytes]:
    if raw[:4] != b":W&B":
        raise ValueError("not a W&B run file (no ':W&B' header)")
    out: list[bytes] = []
    pending = b""
    pos = _HEADER
    while pos + _HEADER <= len(raw):
        left = _BLOCK - pos % _BLOCK
        if left < _HEADER:  # a block's tail too short for a header is padding
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", raw[pos : pos + _HEADER])
        if kind == 0:  # zero fill up to the end of the block
            pos += left
            continue
        data = raw[pos + _HEADER : pos + _HEADER + length]
        pos += _HEADER + length
        if kind == _FULL:
            out.append(data)
        elif kind == _FIRST:
            pending = data
        elif kind == _MIDDLE:
            pending += data
        elif kind == _LAST:
            out.append(pending + data)
            pending = b""
    return out


def tensorboard_scalars(folder: Path) -> dict[str, dict[int, float]]:
    """``{tag: {step: value}}`` of a run's TensorBoard folder, with every step read once
    (an error if a tag has the same step twice: a resumed run must purge what it re-logs)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0})
    acc.Reload()
    out: dict[str, dict[int, float]] = {}
    for tag in acc.Tags()["scalars"]:
        events = acc.Scalars(tag)
        steps = [e.step for e in events]
        if len(steps) != len(set(steps)):
            raise AssertionError(f"tag {tag!r} has repeated steps: {steps}")
        out[tag] = {e.step: e.value for e in events}
    return out
