"""``slscale fit approach3|approach2|approach1|metric``: fit a law, print it, save its JSON.

Rows come from a CSV file (``--csv``, columns named by ``--params-col`` and friends) or from
the results store (``--workdir``/``--store``: the runs frame for final losses, the metrics
frame for training curves, the evals frame for scores), filtered by repeatable
``--where KEY=VALUE``. Store rows leave out WSD ladder trunks, whose rate never decayed
(``--include-trunks`` keeps them); their branches are the ladder's points. The JSON written
by ``--json`` is a FitResult.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from typing import Any

from slscale.compute import flops_6nd
from slscale.errors import ConfigError
from slscale.fitting import inputs, sources
from slscale.fitting.approach1 import EnvelopeFit
from slscale.fitting.approach2 import IsoFlopFit, SamplingWarning
from slscale.fitting.approach3 import ParametricLossFit
from slscale.fitting.margin import MarginLaw
from slscale.fitting.metric import MetricPowerLaw
from slscale.fitting.report import format_result
from slscale.fitting.results import FitResult

METHODS = {
    "approach3": "L(N, D) = E + A/N^alpha + B/D^beta (Huber, 4,500 starts, bootstrap CIs)",
    "approach2": "IsoFLOP parabolas per budget -> N_opt, D_opt power laws",
    "approach1": "minimum-loss envelope of training curves -> N_opt, D_opt power laws",
    "metric": "Q(C) = a*C^b (or margin m + s*log10(C/1e12)) on the best run per budget "
    "(or the envelope)",
}


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``slscale fit <method>``."""
    fit = sub.add_parser(
        "fit", help="fit scaling laws to runs (Chinchilla approaches 1-3, metrics)"
    )
    methods = fit.add_subparsers(dest="fit_method", required=True, metavar="METHOD")
    for name, text in METHODS.items():
        parser = methods.add_parser(name, help=text, description=text)
        _arguments(parser, name)
        parser.set_defaults(func=cmd_fit, fit_method=name)


def _arguments(p: argparse.ArgumentParser, method: str) -> None:
    src = p.add_argument_group("rows")
    src.add_argument("--csv", help="read rows from this CSV file instead of the store")
    src.add_argument("--workdir", help="the study's folder (its store: <workdir>/results.db)")
    src.add_argument("--store", help="store path or URL (default: $SLSCALE_STORE or the workdir's)")
    sources.add_where(src, "keep rows whose column KEY equals VALUE")
    src.add_argument(
        "--include-trunks",
        action="store_true",
        help="store: fit WSD ladder trunks too (left out by default: their rate never decayed)",
    )
    cols = p.add_argument_group("columns")
    cols.add_argument("--params-col", default="n_params", help="N (default n_params)")
    cols.add_argument("--tokens-col", help="D (default tokens; store: the run summary's tokens)")
    cols.add_argument(
        "--flops-col", help="C (default flops; store: flops_6nd); D = C/(6N) when only C is given"
    )
    cols.add_argument("--loss-col", default="loss", help="loss column or metric name (loss)")
    cols.add_argument("--budget-col", help="compute-budget labels (default: grouped FLOPs)")
    cols.add_argument("--run-col", default="run_id", help="run id column (approach1)")
    if method == "metric":
        cols.add_argument(
            "--metric-col",
            default="value",
            help="score column (value; store: value = accuracy, margin = log-likelihood margin)",
        )
        p.add_argument(
            "--law",
            choices=("power", "margin"),
            default="power",
            help="power: Q = a*C^b (Q > 0); margin: m + s*log10(C/1e12), for margins that may "
            "be <= 0 (fit the store's margins with --metric-col margin --law margin)",
        )
        cols.add_argument("--benchmark", help="store: benchmark to fit (e.g. sSC)")
        cols.add_argument("--variant", help="store: benchmark variant")
        p.add_argument(
            "--selection",
            choices=("best_per_budget", "envelope"),
            default="best_per_budget",
            help="best run per budget (SIMS) or the envelope of all checkpoints (Cuervo & Marxer)",
        )
        p.add_argument("--lower-is-better", action="store_true", help="the score is a loss")
    if method == "approach3":
        p.add_argument("--huber-delta", type=float, default=1e-3, help="Huber δ (1e-3)")
    p.add_argument(
        "--bootstrap",
        type=int,
        default=4000 if method == "approach3" else 1000,
        metavar="N",
        help="bootstrap resamples (0: none)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap")
    p.add_argument("--confidence", type=float, default=0.95, help="interval coverage (0.95)")
    p.add_argument("--label", default="", help="name of this fit in tables and legends")
    p.add_argument("--json", metavar="OUT", help="write the FitResult JSON here")


def cmd_fit(args: argparse.Namespace) -> int:
    """Load rows, fit, print a table and write the JSON."""
    rows = inputs.select_rows(
        csv=args.csv,
        workdir=args.workdir,
        store=args.store,
        where=args.where,
        include_trunks=args.include_trunks,
    )
    result, notes = _FITS[args.fit_method](args, rows)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    print(format_result(result))
    if args.json:
        print(f"wrote {result.save(args.json)}")
    return 0


def _common(args: argparse.Namespace) -> dict[str, Any]:
    return {"n_bootstrap": args.bootstrap, "confidence": args.confidence, "random_state": args.seed}


def _loss_points(args: argparse.Namespace, rows: inputs.Rows) -> inputs.LossPoints:
    return inputs.loss_points(
        rows,
        params_col=args.params_col,
        loss_col=args.loss_col,
        tokens_col=args.tokens_col,
        flops_col=args.flops_col,
        budget_col=args.budget_col,
    )


def _approach3(args: argparse.Namespace, rows: inputs.Rows) -> tuple[FitResult, list[str]]:
    fit = ParametricLossFit(huber_delta=args.huber_delta, **_common(args))
    return _fit_losses(fit, args, rows)


def _approach2(args: argparse.Namespace, rows: inputs.Rows) -> tuple[FitResult, list[str]]:
    with warnings.catch_warnings():  # printed with the result's table instead
        warnings.simplefilter("ignore", SamplingWarning)
        return _fit_losses(IsoFlopFit(**_common(args)), args, rows)


def _fit_losses(
    fit: ParametricLossFit | IsoFlopFit, args: argparse.Namespace, rows: inputs.Rows
) -> tuple[FitResult, list[str]]:
    p = _loss_points(args, rows)
    fit.fit(
        p.n,
        p.tokens,
        p.loss,
        flops=p.flops,
        budget=p.budget,
        conventions=p.conventions,
        label=args.label,
    )
    return fit.result_, p.notes


def _approach1(args: argparse.Namespace, rows: inputs.Rows) -> tuple[FitResult, list[str]]:
    table, store = rows.table, rows.store
    if store is not None:
        table = sources.store_curves(store, table, args.loss_col, args.params_col)
        run_col, params_col, loss_col, flops_col, tokens_col = (
            "run_id",
            "n_params",
            "loss",
            "flops",
            "tokens",
        )
    else:
        run_col, params_col, loss_col = args.run_col, args.params_col, args.loss_col
        flops_col, tokens_col = args.flops_col or "flops", args.tokens_col or "tokens"
    table, notes = sources.drop_missing(table, [run_col, params_col, loss_col], "rows")
    n = sources.column(table, params_col, "--params-col")
    tokens = (
        sources.column(table, tokens_col, "--tokens-col")
        if sources.has(table, tokens_col)
        else None
    )
    flops_from: str | None = flops_col
    if sources.has(table, flops_col):
        flops = sources.column(table, flops_col, "--flops-col")
    elif tokens is not None:
        flops, flops_from = flops_6nd(n, tokens), None
    else:
        raise ConfigError(
            f"{table.source}: approach1 needs a FLOPs ({flops_col!r}) or tokens "
            f"({tokens_col!r}) column per logged point"
        )
    if run_col not in table.frame.columns:
        raise ConfigError(f"--run-col {run_col!r}: no such column in {table.source}")
    conventions = sources.conventions_for(args.params_col, flops_from, "tokens seen so far")
    conventions.update(loss=f"'{args.loss_col}' along training", source=table.source)
    fit = EnvelopeFit(**_common(args))
    fit.fit(
        table.frame[run_col],
        n,
        flops,
        sources.column(table, loss_col, "--loss-col"),
        tokens=tokens,
        conventions=conventions,
        label=args.label,
    )
    return fit.result_, notes


def _metric(args: argparse.Namespace, rows: inputs.Rows) -> tuple[FitResult, list[str]]:
    p = inputs.score_points(
        rows,
        metric_col=args.metric_col,
        benchmark=args.benchmark,
        variant=args.variant,
        flops_col=args.flops_col,
        params_col=args.params_col,
        every_step=args.selection != "best_per_budget",
        run_col=args.run_col,
        budget_col=args.budget_col,
    )
    law = MarginLaw if args.law == "margin" else MetricPowerLaw
    fit = law(method=args.selection, higher_is_better=not args.lower_is_better, **_common(args))
    fit.fit(
        p.flops,
        p.value,
        budget=p.budget,
        run_id=p.run_id,
        conventions=p.conventions,
        label=args.label,
    )
    return fit.result_, p.notes


_FITS = {
    "approach3": _approach3,
    "approach2": _approach2,
    "approach1": _approach1,
    "metric": _metric,
}
