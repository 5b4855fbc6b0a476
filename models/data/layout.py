"""Where a run's data lives inside its data folder (a runtime argument, never in the spec).

Convention (what ``slscale world generate`` writes)::

    DATA/text/{train,valid}.jsonl            {"text": ...}
    DATA/speech/real/{train,valid}.jsonl     {"file_name", "units", "duration", "aligned_text"}
    DATA/speech/synthetic/{train,valid}.jsonl
    DATA/tokenizer/                          the text tokenizer, when the data brings one

Each split may also be several files (``train-00001.jsonl``, ``.jsonl.gz``) or a folder written
by ``save_to_disk``. Data that is laid out otherwise is described by ``DATA/slscale_data.json``::

    {"sources": {"text": {"train": ["c4/*.jsonl"], "valid": ["c4-val.jsonl"]},
                 "speech/real": {"train": ["ll/units.jsonl"], "valid": [...]}},
     "meta_dir": "ll/alignments", "dedup": true, "num_units": 500}

(paths relative to DATA, globs allowed; ``meta_dir`` holds SlamKit ``<stem>.json`` alignments).
"""

from __future__ import annotations

import dataclasses
import glob
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from slscale.errors import ConfigError
from slscale.models.data.units import NUM_UNITS

LAYOUT_FILE = "slscale_data.json"
SOURCES = ("text", "speech/real", "speech/synthetic")
SPLITS = ("train", "valid")
_KEYS = {"sources", "meta_dir", "dedup", "num_units"}


@dataclasses.dataclass(frozen=True, kw_only=True)
class DataLayout:
    """The files of each source and split, and how to read them."""

    root: Path
    """The data folder."""
    files: Mapping[str, Mapping[str, tuple[Path, ...]]]
    """source ("text", "speech/real", "speech/synthetic") → split → files or folders."""
    meta_dir: Path | None = None
    """Folder of SlamKit alignment sidecars, if alignments are not inline."""
    dedup: bool = True
    """Collapse consecutive duplicate units when reading."""
    num_units: int = NUM_UNITS
    """Units lie in [0, num_units)."""

    def paths(self, source: str, split: str) -> tuple[Path, ...]:
        return tuple(self.files.get(source, {}).get(split, ()))

    @property
    def tokenizer_dir(self) -> Path | None:
        """``DATA/tokenizer`` when the data brings its own text tokenizer."""
        folder = self.root / "tokenizer"
        return folder if folder.is_dir() else None


def discover_layout(data_dir: Path) -> DataLayout:
    """The layout of ``data_dir``: its ``slscale_data.json``, or the convention."""
    root = Path(data_dir)
    if not root.is_dir():
        raise ConfigError(f"data folder {root} does not exist")
    described = root / LAYOUT_FILE
    if described.exists():
        return _from_file(root, described)
    files = {
        source: {split: _conventional(root / source, split) for split in SPLITS}
        for source in SOURCES
    }
    return DataLayout(root=root, files=files)


def _conventional(folder: Path, split: str) -> tuple[Path, ...]:
    if (folder / split).is_dir():
        return (folder / split,)
    return tuple(sorted(p for p in folder.glob(f"{split}*.jsonl*") if p.is_file()))


def _from_file(root: Path, path: Path) -> DataLayout:
    try:
        data: Any = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not valid JSON ({exc.msg})") from None
    unknown = set(data) - _KEYS if isinstance(data, dict) else {"<not an object>"}
    if unknown:
        raise ConfigError(
            f"{path}: unknown key {sorted(unknown)[0]!r}; known: {', '.join(sorted(_KEYS))}"
        )
    files = {
        source: _split_files(root, path, source, splits)
        for source, splits in data.get("sources", {}).items()
    }
    meta = data.get("meta_dir")
    return DataLayout(
        root=root,
        files=files,
        meta_dir=None if meta is None else root / meta,
        dedup=bool(data.get("dedup", True)),
        num_units=int(data.get("num_units", NUM_UNITS)),
    )


def _split_files(root: Path, path: Path, source: str, splits: Any) -> dict[str, tuple[Path, ...]]:
    if source not in SOURCES:
        raise ConfigError(f"{path}: unknown source {source!r}; known: {', '.join(SOURCES)}")
    if not isinstance(splits, dict) or set(splits) - set(SPLITS):
        raise ConfigError(f"{path}: sources.{source} must map 'train'/'valid' to file lists")
    out = {}
    for split, patterns in splits.items():
        found = [Path(p) for pattern in patterns for p in sorted(glob.glob(str(root / pattern)))]
        if not found:
            raise ConfigError(f"{path}: sources.{source}.{split}: no file matches {patterns}")
        out[split] = tuple(found)
    return out
