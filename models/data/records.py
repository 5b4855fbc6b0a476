"""Rows of a data file, whatever its format, each with the place it came from.

Three containers hold the rows users already have:

* JSON Lines (``.jsonl``, one object per line; ``.jsonl.gz`` too);
* a folder written by ``datasets.Dataset.save_to_disk`` (``state.json`` + Arrow stream files)
  or ``DatasetDict.save_to_disk`` (``dataset_dict.json`` + one folder per split). These are
  read with pyarrow directly, so the ``datasets`` package is not needed;
* plain text ``.txt`` files, one row per line, returned as ``{"line": ...}``.

Every row comes with ``where`` ("file:line" or "folder/file row N") for error messages.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from slscale.errors import DataError

Row = dict[str, Any]


def iter_rows(path: Path, split: str | None = None) -> Iterator[tuple[Row, str]]:
    """Yield ``(row, where)`` for every row of ``path`` (see the module docstring)."""
    path = Path(path)
    if path.is_dir():
        yield from _iter_saved_dataset(path, split)
    elif not path.exists():
        raise DataError(f"data file {path} does not exist")
    elif path.suffix == ".txt":
        yield from _iter_text_lines(path)
    else:
        yield from _iter_jsonl(path)


def _open_text(path: Path) -> Any:
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    return path.open(encoding="utf-8")


def _iter_jsonl(path: Path) -> Iterator[tuple[Row, str]]:
    with _open_text(path) as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{where}: not valid JSON ({exc.msg})") from None
            if not isinstance(row, dict):
                raise DataError(f"{where}: each line must be a JSON object")
            yield row, where


def _iter_text_lines(path: Path) -> Iterator[tuple[Row, str]]:
    with _open_text(path) as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                yield {"line": line.rstrip("\n")}, f"{path}:{number}"


def _iter_saved_dataset(folder: Path, split: str | None) -> Iterator[tuple[Row, str]]:
    if (folder / "dataset_dict.json").exists():
        yield from _iter_saved_dataset(_pick_split(folder, split), None)
        return
    state_path = folder / "state.json"
    if not state_path.exists():
        raise DataError(
            f"{folder} is a folder but not a dataset written by save_to_disk "
            "(no state.json or dataset_dict.json)"
        )
    state = json.loads(state_path.read_text())
    if state.get("_indices_data_files"):
        raise DataError(
            f"{state_path}: the dataset has an indices mapping; save it with "
            "dataset.flatten_indices().save_to_disk(...) first"
        )
    for entry in state.get("_data_files", []):
        yield from _iter_arrow(folder / entry["filename"])


def _pick_split(folder: Path, split: str | None) -> Path:
    splits = json.loads((folder / "dataset_dict.json").read_text()).get("splits", [])
    wanted = [split] if split else ["train"]
    for name in wanted:
        if name in splits:
            return folder / name
    raise DataError(f"{folder}: split {wanted[0]!r} not found; it has {', '.join(splits)}")


def _iter_arrow(path: Path) -> Iterator[tuple[Row, str]]:
    import pyarrow as pa

    row_index = 0
    with pa.memory_map(str(path), "r") as source:
        reader = pa.ipc.open_stream(source)
        for batch in reader:
            for row in batch.to_pylist():
                yield row, f"{path} row {row_index}"
                row_index += 1
