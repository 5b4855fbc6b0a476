"""``slscale figures``: every figure and table a study's store supports, and the fits used.

Fits are made from the store (or read back with ``--fits DIR`` without refitting), written
as FitResult JSON to ``OUT/fits/``, then drawn; figures the data cannot support are listed
with the reason. Same data and seed give byte-identical files.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from slscale.fitting.sources import add_where


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``slscale figures``."""
    p = sub.add_parser(
        "figures",
        help="draw the paper's figures and tables from the results store",
        description="Draw every figure and table the study's store supports (skipped ones are "
        "listed with the reason) and save the fits used as FitResult JSON in FIGDIR/fits; "
        "--fits redraws from saved fits without fitting. Same data and seed: same bytes.",
    )
    p.add_argument("--workdir", help="the study's folder (its store: <workdir>/results.db)")
    p.add_argument("--store", help="store path or URL (default: $SLSCALE_STORE or the workdir's)")
    p.add_argument("--out", required=True, metavar="FIGDIR", help="folder for figures and tables")
    p.add_argument("--format", default="pdf,png", help="comma-separated: pdf, png, svg (pdf,png)")
    p.add_argument("--fits", metavar="DIR", help="draw from fits saved earlier instead of fitting")
    add_where(
        p,
        "fit scaling laws only to runs whose column KEY equals VALUE; tables and the "
        "TextLM-family figure use every run",
    )
    p.add_argument(
        "--include-trunks",
        action="store_true",
        help="show and fit WSD ladder trunks too (left out by default: their rate never decayed)",
    )
    p.add_argument("--convention", help="scoring convention of the scores to show")
    p.add_argument("--loss-name", default="loss", help="loss metric of the runs (loss)")
    p.add_argument("--bootstrap", type=int, default=1000, metavar="N", help="resamples (1000)")
    p.add_argument("--seed", type=int, default=0, help="seed of every bootstrap (0)")
    p.add_argument("--confidence", type=float, default=0.95, help="interval coverage (0.95)")
    p.add_argument("--huber-delta", type=float, default=1e-3, help="Approach 3 Huber δ (1e-3)")
    p.set_defaults(func=cmd_figures)


def cmd_figures(args: argparse.Namespace) -> int:
    """Load the study, fit (or load fits), draw, and print what was drawn or skipped."""
    from slscale.analysis.fits import FitSettings
    from slscale.analysis.output import parse_formats
    from slscale.analysis.pipeline import draw_study, print_drawn
    from slscale.store import resolve_store_target

    formats = parse_formats(args.format)
    settings = FitSettings(
        n_bootstrap=args.bootstrap,
        seed=args.seed,
        confidence=args.confidence,
        huber_delta=args.huber_delta,
    )
    drawn = draw_study(
        resolve_store_target(args.store, args.workdir),
        Path(args.out),
        formats=formats,
        where=args.where,
        loss_name=args.loss_name,
        convention=args.convention,
        include_trunks=args.include_trunks,
        saved_fits=Path(args.fits) if args.fits else None,
        settings=settings,
    )
    print_drawn(drawn)
    return 0
