"""Writing the store's tables to Parquet or CSV files for analysis elsewhere."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from slscale.errors import SlscaleError
from slscale.store.base import Store

FORMATS = ("parquet", "csv")
"""File formats of :func:`export_tables`."""


def export_tables(store: Store, out: str | os.PathLike[str], fmt: str) -> dict[str, int]:
    """Write ``runs``, ``metrics`` and ``evals`` to ``out/<table>.<fmt>``; return row counts.

    Each file is written under a temporary name and renamed into place, so a reader never
    sees half a file.
    """
    if fmt not in FORMATS:
        raise SlscaleError(f"export format {fmt!r}: use one of {', '.join(FORMATS)}")
    folder = Path(out)
    tables = {
        "runs": store.runs_frame(),
        "metrics": store.metrics_frame(),
        "evals": store.evals_frame(),
    }
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for name, frame in tables.items():
            _write(frame, folder / f"{name}.{fmt}", fmt)
    except OSError as exc:
        raise SlscaleError(
            f"cannot write the export to {str(folder)!r}: {exc.strerror or exc}; "
            "choose a writable --out folder"
        ) from None
    return {name: len(frame) for name, frame in tables.items()}


def _write(frame: pd.DataFrame, path: Path, fmt: str) -> None:
    partial = path.with_name(f".{path.name}.partial")
    if fmt == "csv":
        frame.to_csv(partial, index=False)
    else:
        frame = frame.copy()
        for column in frame.columns:
            if pd.api.types.is_object_dtype(frame[column]):
                frame[column] = _arrow_safe(frame[column])
        frame.to_parquet(partial, index=False, engine="pyarrow")
    os.replace(partial, path)


def _arrow_safe(column: pd.Series) -> pd.Series:
    """A column Parquet can store: kept if Arrow infers one type, else JSON text per value
    (summary keys may hold a number in one run and a string in another)."""
    try:
        pa.array(column, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return column.map(_as_text)
    return column


def _as_text(value: Any) -> Any:
    if value is None or (isinstance(value, float) and value != value):
        return None
    return value if isinstance(value, str) else json.dumps(value)
