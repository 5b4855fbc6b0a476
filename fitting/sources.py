"""Tables for the ``slscale fit`` commands: a CSV file or the results store.

Each loader returns the columns a fit needs plus the conventions they imply (which N, which
FLOPs, where tokens came from), so the conventions travel into the FitResult. Missing
columns, empty selections and bad ``--where`` filters raise :class:`ConfigError` naming the
source, the column or option, and what exists.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from slscale.errors import ConfigError
from slscale.spec import marks_trunk


@dataclasses.dataclass(frozen=True, kw_only=True)
class Table:
    """Rows selected for a fit, with where they came from."""

    frame: pd.DataFrame
    """The rows (after ``--where`` filters)."""
    source: str
    """Named in errors and recorded in the result (file path or store target)."""


def read_csv(path: str | Path) -> Table:
    """Read a CSV file."""
    try:
        frame = pd.read_csv(path)
    except FileNotFoundError:
        raise ConfigError(f"--csv {path}: no such file") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"--csv {path}: cannot read it as CSV ({exc})") from None
    return Table(frame=frame, source=str(path))


def where(table: Table, filters: Sequence[str]) -> Table:
    """Keep the rows that match every ``KEY=VALUE`` filter (see :func:`select`)."""
    frame = select(table.frame, filters, source=table.source, rows=f"rows of {table.source}")
    return Table(frame=frame, source=table.source)


WHERE_MATCHING = "numbers match within 1e-9 relative, true/false in any case, text exactly"
"""How ``--where`` compares, for the commands' help."""


def add_where(parser: Any, keeps: str) -> None:
    """The repeatable ``--where KEY=VALUE`` option of every command that selects runs;
    ``keeps`` says what it keeps (the start of its help)."""
    parser.add_argument(
        "--where",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"{keeps} (repeatable; {WHERE_MATCHING})",
    )


def select(frame: pd.DataFrame, filters: Sequence[str], *, source: str, rows: str) -> pd.DataFrame:
    """The rows of ``frame`` that match every ``KEY=VALUE`` filter: the one meaning of
    ``--where`` for every command. A number matches within a relative 1e-9 (a value read back
    from CSV or SQL may differ in its last bits), a boolean matches true/false in any case, any
    other value matches its text exactly. ConfigError naming the filter and ``source`` when a
    filter is malformed or names no column, or naming ``rows`` when nothing is left."""
    for text in filters:
        key, sep, value = text.partition("=")
        if not sep or not key:
            raise ConfigError(f"--where {text!r}: expected KEY=VALUE, e.g. modality=interleaved")
        if key not in frame.columns:
            raise ConfigError(
                f"--where {text!r}: no column {key!r} in {source}; "
                f"columns: {', '.join(map(str, frame.columns))}"
            )
        frame = frame[matches(frame[key], value)]
    if frame.empty:
        raise ConfigError(f"no {rows} match --where {' '.join(filters)}")
    return frame


def matches(column: pd.Series, value: str) -> pd.Series:
    """Which entries of ``column`` equal the ``--where`` text ``value`` (see :func:`select`)."""
    if pd.api.types.is_bool_dtype(column):
        return column.astype(str).str.lower() == value.strip().lower()
    if pd.api.types.is_numeric_dtype(column):
        try:
            target = float(value)
        except ValueError:
            return pd.Series(False, index=column.index)
        return pd.Series(
            np.isclose(column.astype("float64"), target, rtol=1e-9, atol=0), index=column.index
        )
    return column.astype(str) == value


def column(table: Table, name: str, option: str) -> np.ndarray:
    """A column as floats; ConfigError naming ``option`` when it is missing."""
    if name not in table.frame.columns:
        raise ConfigError(
            f"{option} {name!r}: no such column in {table.source}; "
            f"columns: {', '.join(map(str, table.frame.columns))}"
        )
    values = pd.to_numeric(table.frame[name], errors="coerce")
    return np.asarray(values, dtype=np.float64)


def has(table: Table, name: str | None) -> bool:
    return name is not None and name in table.frame.columns


def drop_missing(table: Table, names: Sequence[str], what: str) -> tuple[Table, list[str]]:
    """Drop rows (runs) lacking any of ``names``; return the notes to print."""
    present = [n for n in names if n in table.frame.columns]
    missing = table.frame[present].isna().any(axis=1)
    notes = []
    if missing.any():
        ids = table.frame.get("run_id", pd.Series(table.frame.index, index=table.frame.index))
        shown = ", ".join(map(str, ids[missing].head(5)))
        notes.append(f"skipped {int(missing.sum())} {what} without {'/'.join(present)}: {shown}")
    return Table(frame=table.frame[~missing], source=table.source), notes


def store_runs(target: str, include_trunks: bool = False) -> Table:
    """Succeeded runs of the store at ``target`` (one row per run, summary as columns),
    without WSD ladder trunks unless ``include_trunks`` (their rate never decayed)."""
    from slscale.store import read_store

    with read_store(target) as store:
        frame = store.runs_frame()
    if "state" in frame.columns:
        frame = frame[frame["state"] == "SUCCEEDED"]
    if not include_trunks:
        frame = frame[~trunk_rows(frame)]
    if frame.empty:
        raise ConfigError(f"store {target}: no SUCCEEDED runs to fit")
    return Table(frame=frame.reset_index(drop=True), source=f"store {target}")


def trunk_rows(frame: pd.DataFrame) -> pd.Series:
    """The rows of a runs frame that are WSD ladder trunks (their spec's ``branch_tokens``)."""
    if "branch_tokens" not in frame.columns:
        return pd.Series(False, index=frame.index, dtype=bool)
    return frame["branch_tokens"].map(marks_trunk).astype(bool)


def store_curves(target: str, runs: Table, loss_name: str, params_col: str) -> Table:
    """Long-format training curves (run_id, flops, tokens, loss, n_params) of ``runs``."""
    from slscale.store import read_store

    ids = runs.frame["run_id"].astype(str).tolist()
    with read_store(target) as store:
        metrics = store.metrics_frame(run_ids=ids, names=[loss_name])
    if metrics.empty:
        raise ConfigError(f"store {target}: no metric named {loss_name!r} for the selected runs")
    sizes = runs.frame[["run_id", params_col]].rename(columns={params_col: "n_params"})
    frame = metrics.rename(columns={"value": "loss"}).merge(sizes, on="run_id")
    return Table(frame=frame, source=f"store {target}")


def store_evals(target: str, runs: Table, benchmark: str, variant: str | None) -> Table:
    """Evaluation rows of ``runs`` for one benchmark (and variant), with tokens per step."""
    from slscale.store import read_store

    ids = runs.frame["run_id"].astype(str).tolist()
    with read_store(target) as store:
        evals = store.evals_frame()
        steps = store.metrics_frame(run_ids=ids)
    evals = evals[evals["run_id"].isin(ids) & (evals["benchmark"] == benchmark)]
    if evals.empty:
        raise ConfigError(f"store {target}: no '{benchmark}' evaluations for the selected runs")
    variants = sorted(evals["variant"].astype(str).unique())
    if variant is None and len(variants) > 1:
        raise ConfigError(
            f"benchmark '{benchmark}' has variants {variants}; pick one with --variant"
        )
    if variant is not None:
        evals = evals[evals["variant"] == variant]
        if evals.empty:
            raise ConfigError(f"benchmark '{benchmark}' has no variant {variant!r}: {variants}")
    tokens = (
        steps.dropna(subset=["tokens"]).groupby(["run_id", "step"], as_index=False)["tokens"].max()
    )
    frame = evals.merge(tokens, on=["run_id", "step"], how="left")
    return Table(frame=frame, source=f"store {target}")


def conventions_for(params_col: str, flops_col: str | None, tokens_from: str) -> dict[str, Any]:
    """Record which N, which FLOPs and where tokens came from (kinds read off column names)."""
    lowered = params_col.lower()
    no_embedding = "non_embedding" in lowered or "no_emb" in lowered
    n_kind = "non-embedding" if no_embedding else "total"
    if flops_col is None:
        flops = "6ND, computed from N and D"
    elif "exact" in flops_col.lower():
        flops = f"exact per-token count (column '{flops_col}')"
    elif "6nd" in flops_col.lower():
        flops = f"6ND (column '{flops_col}')"
    else:
        flops = f"as given (column '{flops_col}')"
    return {
        "n_params": f"{n_kind} (column '{params_col}')",
        "flops": flops,
        "tokens": tokens_from,
    }
