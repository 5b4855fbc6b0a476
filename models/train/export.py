"""Export a trained model in transformers format, atomically, with a record of what it is.

ZeRO-3 partitions parameters across workers, so they are gathered before worker 0 writes
(``deepspeed.zero.GatheredParameters``; a no-op for stages 0-2). The directory is written under
a temporary name and renamed, so ``<run dir>/model`` is either absent or complete.
``slscale_model.json`` beside the weights names the run, step and tokens, which the evaluation
records with every score.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch

from slscale.models.train.config import ExportHook
from slscale.models.train.distributed import DistInfo, barrier

MODEL_RECORD = "slscale_model.json"


def export_model(
    model: torch.nn.Module,
    path: Path,
    info: DistInfo,
    record: dict[str, Any],
    zero_stage: int,
    on_export: ExportHook | None = None,
) -> Path:
    """Write ``model`` to ``path`` (collective: every worker calls it)."""
    import deepspeed

    params = list(model.parameters()) if zero_stage == 3 else []
    with deepspeed.zero.GatheredParameters(params, modifier_rank=None, enabled=bool(params)):
        if info.is_main:
            _write(model, Path(path), record, on_export)
    barrier(info)
    return Path(path)


def _write(
    model: torch.nn.Module, path: Path, record: dict[str, Any], on_export: ExportHook | None
) -> None:
    tmp = path.with_name(f".tmp-{path.name}")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)  # type: ignore[operator]
    if on_export is not None:
        record = {**(on_export(tmp) or {}), **record}
    (tmp / MODEL_RECORD).write_text(json.dumps(record, indent=1, sort_keys=True))
    if path.exists():
        shutil.rmtree(path)
    tmp.rename(path)


def read_model_record(path: Path) -> dict[str, Any]:
    """The run id, step and tokens of an exported model ({} if it has no record)."""
    file = Path(path) / MODEL_RECORD
    return json.loads(file.read_text()) if file.is_file() else {}
