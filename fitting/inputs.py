"""One path from rows (a CSV file or the results store) to what the fits take.

``slscale fit``, ``plan-next`` and ``recommend`` read their runs here: :func:`select_rows`
picks the rows (``--csv`` or a store, ``--where`` filters, WSD trunks left out unless asked),
:func:`loss_points` turns them into (N, D, L) points and :func:`score_points` into (C, score)
points, each with the conventions it implies (which N, which FLOPs, where D came from) so they
travel into the FitResult. Errors name the source, the column or option and what to do.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from slscale.compute import flops_6nd, tokens_6nd
from slscale.errors import ConfigError
from slscale.fitting import sources
from slscale.fitting.sources import Table


@dataclasses.dataclass(frozen=True, kw_only=True)
class Rows:
    """The selected rows, and the store they came from (None for a CSV file)."""

    table: Table
    store: str | None


@dataclasses.dataclass(frozen=True, kw_only=True)
class LossPoints:
    """Final losses of runs: N, D, L, and C and budget labels where known."""

    n: np.ndarray
    tokens: np.ndarray
    loss: np.ndarray
    flops: np.ndarray | None
    budget: np.ndarray | None
    conventions: dict[str, Any]
    notes: list[str]
    """What was skipped (rows lacking a column), for the command to print."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class ScorePoints:
    """Scores against compute: one point per run, or per evaluated step."""

    flops: np.ndarray
    value: np.ndarray
    run_id: np.ndarray | None
    budget: np.ndarray | None
    conventions: dict[str, Any]
    notes: list[str]


def select_rows(
    *,
    csv: str | None,
    workdir: str | None,
    store: str | None,
    where: Sequence[str],
    include_trunks: bool = False,
    nothing: str = "no rows to fit: pass --csv FILE, or --workdir DIR / --store URL",
) -> Rows:
    """The rows of ``csv`` or of the store (``store``, ``workdir``'s, or $SLSCALE_STORE's
    succeeded runs) that match ``where``; ``nothing`` is the error when no source is given."""
    if csv and (workdir or store):
        raise ConfigError("give either --csv FILE or a store (--workdir/--store), not both")
    if csv:
        return Rows(table=sources.where(sources.read_csv(csv), where), store=None)
    if not (workdir or store or os.environ.get("SLSCALE_STORE")):
        raise ConfigError(nothing)
    from slscale.store import resolve_store_target

    target = resolve_store_target(store, workdir)
    runs = sources.store_runs(target, include_trunks=include_trunks)
    return Rows(table=sources.where(runs, where), store=target)


def loss_points(
    rows: Rows,
    *,
    params_col: str,
    loss_col: str,
    tokens_col: str | None = None,
    flops_col: str | None = None,
    budget_col: str | None = None,
) -> LossPoints:
    """(N, D, L) of ``rows``; D from ``tokens_col`` (a store's default: the tokens trained as
    summarised, else the spec's) or, without one, C/(6N) from ``flops_col``. Rows lacking a
    needed value are skipped, with a note."""
    table, store = rows.table, rows.store
    if tokens_col is None:
        tokens_col = (
            "summary.tokens" if store and sources.has(table, "summary.tokens") else "tokens"
        )
    flops_col = flops_col or ("flops_6nd" if store else "flops")
    needed = [params_col, loss_col, tokens_col, flops_col, budget_col or ""]
    table, notes = sources.drop_missing(table, [c for c in needed if c], "rows")
    n = sources.column(table, params_col, "--params-col")
    loss = sources.column(table, loss_col, "--loss-col")
    flops = (
        sources.column(table, flops_col, "--flops-col") if sources.has(table, flops_col) else None
    )
    if sources.has(table, tokens_col):
        tokens = sources.column(table, tokens_col, "--tokens-col")
        tokens_from = f"column '{tokens_col}'"
    elif flops is not None:
        tokens, tokens_from = tokens_6nd(flops, n), f"C/(6N) from column '{flops_col}'"
    else:
        raise ConfigError(
            f"{table.source}: no tokens column {tokens_col!r} and no FLOPs column "
            f"{flops_col!r}; name one with --tokens-col or --flops-col"
        )
    budget = sources.column(table, budget_col, "--budget-col") if budget_col else None
    conventions = sources.conventions_for(
        params_col, flops_col if flops is not None else None, tokens_from
    )
    conventions.update(loss=f"column '{loss_col}'", source=table.source)
    return LossPoints(
        n=n,
        tokens=tokens,
        loss=loss,
        flops=flops,
        budget=budget,
        conventions=conventions,
        notes=notes,
    )


def score_points(
    rows: Rows,
    *,
    metric_col: str,
    benchmark: str | None = None,
    variant: str | None = None,
    flops_col: str | None = None,
    params_col: str = "n_params",
    every_step: bool = False,
    run_col: str = "run_id",
    budget_col: str | None = None,
) -> ScorePoints:
    """Scores against compute. From a store: ``benchmark``'s ``metric_col`` (value or margin),
    each run's last evaluation at the run's ``flops_col`` (``every_step``: every evaluation, at
    6·N·tokens of its step). From a CSV: the ``metric_col`` column against ``flops_col``."""
    if rows.store is None:
        return _csv_scores(rows.table, metric_col, flops_col or "flops", run_col, budget_col)
    if not benchmark:
        raise ConfigError("fitting a metric from the store needs --benchmark (e.g. sSC)")
    return _store_scores(
        rows,
        benchmark=benchmark,
        variant=variant,
        value_col=metric_col,
        flops_col=flops_col or "flops_6nd",
        params_col=params_col,
        every_step=every_step,
    )


def _csv_scores(
    table: Table, metric: str, flops_col: str, run_col: str, budget_col: str | None
) -> ScorePoints:
    table, notes = sources.drop_missing(table, [flops_col, metric], "rows")
    return ScorePoints(
        flops=sources.column(table, flops_col, "--flops-col"),
        value=sources.column(table, metric, "--metric-col"),
        run_id=table.frame[run_col].to_numpy() if sources.has(table, run_col) else None,
        budget=sources.column(table, budget_col, "--budget-col") if budget_col else None,
        conventions={
            "flops": f"column '{flops_col}'",
            "metric": f"column '{metric}'",
            "source": table.source,
        },
        notes=notes,
    )


def _store_scores(
    rows: Rows,
    *,
    benchmark: str,
    variant: str | None,
    value_col: str,
    flops_col: str,
    params_col: str,
    every_step: bool,
) -> ScorePoints:
    store = str(rows.store)
    evals = sources.store_evals(store, rows.table, benchmark, variant).frame
    by_run = rows.table.frame.set_index("run_id")
    if every_step:
        missing = evals[evals["tokens"].isna()]
        if not missing.empty:
            row = missing.iloc[0]
            raise ConfigError(
                f"run {row['run_id']} step {row['step']}: no tokens logged at that step, so its "
                "compute is unknown; log training metrics at evaluation steps"
            )
        flops = flops_6nd(evals["run_id"].map(by_run[params_col]), evals["tokens"])
        compute = f"6 * '{params_col}' * tokens at the evaluated step"
    else:
        evals = evals.sort_values("step").groupby("run_id").tail(1)
        flops = evals["run_id"].map(by_run[flops_col])
        compute = f"the run's '{flops_col}'"
    if value_col not in evals or evals[value_col].isna().all():
        raise ConfigError(
            f"--metric-col {value_col}: the store's {benchmark} scores have no such values (use "
            "value or margin; margins exist for scores written by this version's `slscale eval`)"
        )
    missing = evals[evals[value_col].isna()]
    if not missing.empty:
        raise ConfigError(
            f"run {missing.iloc[0]['run_id']}: its {benchmark} score has no {value_col}; "
            "re-run `slscale eval` on it"
        )
    return ScorePoints(
        flops=np.asarray(pd.to_numeric(flops), float),
        value=np.asarray(evals[value_col], float),
        run_id=evals["run_id"].to_numpy(),
        budget=None,
        conventions={
            "flops": compute,
            "metric": f"{benchmark} {variant or ''} {value_col}".strip(),
            "source": f"store {store}",
        },
        notes=[],
    )
