"""CLI commands of the results store: ``slscale status`` and ``slscale export``."""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd

from slscale.errors import SlscaleError
from slscale.store import read_store, resolve_store_target
from slscale.store.export import FORMATS, export_tables
from slscale.store.targets import ENV_VAR, mask_url, store_url
from slscale.trackers import add_tracker_arguments, push_study, settings_from_args

EXPORT_TARGETS = ("tables", "wandb", "tensorboard")
ERROR_CHARS = 60
"""Width of the error column of ``slscale status``."""
WORKERS_SHOWN = 5
"""Attempts whose worker counts the table shows (the latest ones)."""


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register store sub-commands (export, status)."""
    status = sub.add_parser(
        "status", help="one line per run: state, attempts and their workers, loss, tokens"
    )
    _store_arguments(status)
    status.add_argument("--json", action="store_true", help="print a JSON list of runs")
    status.set_defaults(func=cmd_status)

    export = sub.add_parser(
        "export",
        help="write the runs, metrics and evals tables (or push them to W&B/TensorBoard)",
    )
    _store_arguments(export)
    export.add_argument(
        "--to",
        choices=EXPORT_TARGETS,
        default="tables",
        help="tables: files (default); wandb or tensorboard: mirror every run (config, curve, "
        "summary, evals) and the --fits results, for sweeps run without --wandb/--tensorboard",
    )
    export.add_argument("--format", choices=FORMATS, default="parquet", help="file format")
    export.add_argument("--out", help="output folder (default: <workdir>/export)")
    export.add_argument(
        "--fits", nargs="+", default=[], metavar="FIT.json", help="fit results to push"
    )
    add_tracker_arguments(export)
    export.set_defaults(func=cmd_export)


def _store_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workdir", help="the study's folder (its store: <workdir>/results.db)")
    parser.add_argument("--store", help=f"store path or URL (default: ${ENV_VAR} or the workdir's)")


def cmd_status(args: argparse.Namespace) -> int:
    """Print each run's state, attempts, last loss, tokens done and error."""
    target = resolve_store_target(args.store, args.workdir)
    with read_store(target) as store:  # a read command never creates a study
        runs = store.list_runs()
        frame = store.progress_frame()
        workers: dict[str, list[int]] = {}
        for attempt in store.list_attempts():
            workers.setdefault(attempt.run_id, []).append(attempt.workers)
    progress = frame.set_index("run_id").to_dict("index")
    rows = []
    for run in runs:
        done = progress.get(run.run_id, {})
        rows.append({
            "run_id": run.run_id,
            "state": str(run.state),
            "attempts": run.attempts,
            "workers": workers.get(run.run_id, []),
            "last_loss": _float(done.get("last_loss")),
            "tokens_done": _int(done.get("tokens_done")),
            "error": _first_line(run.error),
        })  # fmt: skip
    if args.json:
        print(json.dumps(rows, indent=1))
    else:
        print(format_status(rows, mask_url(store_url(target))))
    return 0


def format_status(rows: list[dict[str, Any]], shown_url: str) -> str:
    """The status table with a heading line counting runs per state; ``workers`` lists the
    world size of each recorded attempt, oldest first."""
    counts = Counter(row["state"] for row in rows)
    per_state = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
    heading = f"{shown_url}: {len(rows)} runs" + (f" ({per_state})" if rows else "")
    header = ("run id", "state", "attempts", "workers", "last loss", "tokens done", "error")
    cells = [
        (
            row["run_id"],
            row["state"],
            str(row["attempts"]),
            _workers(row["workers"]),
            "-" if row["last_loss"] is None else f"{row['last_loss']:.4f}",
            "-" if row["tokens_done"] is None else f"{row['tokens_done']:,}",
            (row["error"] or "")[:ERROR_CHARS],
        )
        for row in rows
    ]
    widths = [max(len(c[i]) for c in [header, *cells]) for i in range(len(header))]
    right = {2, 3, 4, 5}  # numbers align right
    lines = [
        "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in
                  enumerate(zip(line, widths, strict=True))).rstrip()
        for line in [header, *cells]
    ]  # fmt: skip
    return "\n".join([heading, *lines]) if rows else heading


def _workers(counts: list[int]) -> str:
    """Each attempt's world size, oldest first ("2,2,1"), the latest few after "…,"."""
    if not counts:
        return "-"
    shown = ",".join(str(n) for n in counts[-WORKERS_SHOWN:])
    return shown if len(counts) <= WORKERS_SHOWN else f"…,{shown}"


def cmd_export(args: argparse.Namespace) -> int:
    """Write runs/metrics/evals as Parquet or CSV files, or push them to a tracker."""
    if args.to != "tables":
        return _push(args)
    if args.fits:
        raise SlscaleError("export: --fits goes with --to wandb or --to tensorboard")
    target = resolve_store_target(args.store, args.workdir)
    if args.out is None and args.workdir is None:
        raise SlscaleError("export: give --out DIR (or --workdir DIR to write <workdir>/export)")
    out = Path(args.out) if args.out else Path(args.workdir) / "export"
    with read_store(target) as store:
        counts = export_tables(store, out, args.format)
    tables = ", ".join(f"{name} ({n} rows)" for name, n in counts.items())
    print(f"wrote {tables} to {out} as {args.format}")
    return 0


def _push(args: argparse.Namespace) -> int:
    flags = {"wandb": "--wandb PROJECT", "tensorboard": "--tensorboard DIR"}
    settings = settings_from_args(args)
    given = {"wandb": bool(args.wandb), "tensorboard": bool(args.tensorboard)}
    if settings is None or given != {name: name == args.to for name in flags}:
        raise SlscaleError(f"export --to {args.to}: give {flags[args.to]} (and no other tracker)")
    target = resolve_store_target(args.store, args.workdir)
    group = settings.wandb_group or Path(args.workdir or str(store_url(target))).stem
    with read_store(target) as store:
        pushed = push_study(store, settings, group, [Path(f) for f in args.fits])
    print(
        f"pushed {pushed.runs} runs ({pushed.metric_rows} metric rows, {pushed.eval_rows} evals)"
        f" and {pushed.fits} fit results to {args.to} (group {group})"
    )
    return 0


def _float(value: Any) -> float | None:
    return None if pd.isna(value) else float(value)


def _int(value: Any) -> int | None:
    return None if pd.isna(value) else int(value)


def _first_line(text: str | None) -> str | None:
    if not text:
        return None
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else None
