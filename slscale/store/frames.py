"""pandas tables built from store rows.

Large reads (a million metric rows) go column-wise through Arrow: rows are fetched from the
DBAPI cursor in chunks, transposed, turned into Arrow arrays and converted once to pandas. The
cyclic garbage collector is paused during the fetch: the million row tuples it would scan
again and again hold no cycles, and scanning them costs more than the fetch itself.
"""

from __future__ import annotations

import gc
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import pandas as pd
import pyarrow as pa

from slscale.store.base import RunRecord

FETCH_ROWS = 65_536
"""Rows fetched from the cursor per chunk."""

METRIC_COLUMNS: tuple[tuple[str, pa.DataType], ...] = (
    ("run_id", pa.string()),
    ("step", pa.int64()),
    ("tokens", pa.int64()),
    ("flops", pa.float64()),
    ("name", pa.string()),
    ("value", pa.float64()),
)
EVAL_COLUMNS: tuple[tuple[str, pa.DataType], ...] = (
    ("run_id", pa.string()),
    ("step", pa.int64()),
    ("benchmark", pa.string()),
    ("variant", pa.string()),
    ("value", pa.float64()),
    ("n_items", pa.int64()),
    ("convention", pa.string()),
    ("margin", pa.float64()),
)
PROGRESS_COLUMNS: tuple[tuple[str, pa.DataType], ...] = (
    ("run_id", pa.string()),
    ("last_loss", pa.float64()),
    ("tokens_done", pa.int64()),
)

RUN_COLUMNS = (
    "run_id", "state", "attempts", "error", "host", "created_at", "updated_at",
    "lease_owner", "lease_expires_at",
)  # fmt: skip
_STR = pd.StringDtype("pyarrow", na_value=float("nan"))  # pandas 3's default "str" dtype

SUMMARY_PREFIX = "summary."
"""Prefix of a summary column whose key is also a spec column (e.g. ``summary.tokens``)."""


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector (reference counting still frees memory)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def cursor_frame(
    cursor: Any, columns: Sequence[tuple[str, pa.DataType]], nullable: Collection[str] = ("tokens",)
) -> pd.DataFrame:
    """Everything ``cursor`` still has to fetch, as a DataFrame with ``columns``.

    Integer columns named in ``nullable`` become pandas ``Int64``; the others ``int64``.
    """
    schema = pa.schema(list(columns))
    batches = []
    with gc_paused():
        while rows := cursor.fetchmany(FETCH_ROWS):
            transposed = zip(*rows, strict=True)
            arrays = [pa.array(col, typ) for col, (_, typ) in zip(transposed, columns, strict=True)]
            batches.append(pa.record_batch(arrays, schema=schema))
            del rows
        table = pa.Table.from_batches(batches, schema=schema)
    frame = table.to_pandas(types_mapper=_pandas_type)
    for name, typ in columns:
        if pa.types.is_integer(typ) and name not in nullable:
            frame[name] = frame[name].to_numpy("int64")  # NOT NULL columns: plain int64
    return frame


def _pandas_type(typ: pa.DataType) -> Any:
    """Integers as nullable ``Int64``; strings as pandas' Arrow-backed ``str`` (zero-copy)."""
    if pa.types.is_integer(typ):
        return pd.Int64Dtype()
    if pa.types.is_string(typ):
        return _STR
    return None


def flatten(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts as one level with dotted keys: ``{"mix": {"a": 1}} -> {"mix.a": 1}``."""
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def runs_frame(records: Sequence[RunRecord]) -> pd.DataFrame:
    """One row per run: the run columns, the flattened spec, then the summary keys."""
    specs = [flatten(r.spec) for r in records]
    spec_cols = _drop_shadowed(_ordered_keys(specs))
    taken = set(RUN_COLUMNS) | set(spec_cols)
    summary_keys = _ordered_keys([r.summary for r in records])
    summary_cols = {k: f"{SUMMARY_PREFIX}{k}" if k in taken else k for k in summary_keys}
    rows = []
    for record, spec in zip(records, specs, strict=True):
        row = {name: getattr(record, name) for name in RUN_COLUMNS}
        row["state"] = str(record.state)
        row.update({col: spec.get(col) for col in spec_cols})
        row.update({col: record.summary.get(key) for key, col in summary_cols.items()})
        rows.append(row)
    columns = [*RUN_COLUMNS, *spec_cols, *summary_cols.values()]
    frame = pd.DataFrame(rows, columns=columns)
    for name in ("created_at", "updated_at", "lease_expires_at"):
        frame[name] = pd.to_datetime(frame[name], utc=True)
    return frame


def _ordered_keys(dicts: Sequence[Mapping[str, Any]]) -> list[str]:
    return list(dict.fromkeys(key for d in dicts for key in d))


def _drop_shadowed(columns: list[str]) -> list[str]:
    """Drop ``arch`` when ``arch.*`` columns exist (it is None in the runs that lack it)."""
    parents = {col.rsplit(".", 1)[0] for col in columns if "." in col}
    return [col for col in columns if col not in parents]
