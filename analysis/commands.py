"""``slscale figures``: every figure and table a study's store supports, and the fits used.

Fits are made from the store (or read back with ``--fits DIR`` without refitting), written
as FitResult JSON to ``OUT/fits/``, then drawn; figures the data cannot support are listed
with the reason. Same data and seed give byte-identical files.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from slscale.fitting.sources import add_where

if TYPE_CHECKING:
    from slscale.analysis.figures import Outcome
    from slscale.analysis.fitset import StudyFits
    from slscale.analysis.study import Study


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
    from slscale.analysis.figures import draw_all
    from slscale.analysis.output import parse_formats
    from slscale.analysis.study import load_study
    from slscale.store import resolve_store_target

    formats = parse_formats(args.format)
    out = Path(args.out)
    target = resolve_store_target(args.store, args.workdir)
    study = load_study(
        target,
        where=args.where,
        loss_name=args.loss_name,
        convention=args.convention,
        include_trunks=args.include_trunks,
    )
    for note in study.notes:
        print(f"note: {note}")
    fits = _fits(args, study)
    fits_dir = out / "fits"
    if not args.fits or _other_folder(Path(args.fits), fits_dir):
        fits.save(fits_dir)
    _report(draw_all(study, fits, out, formats), fits_dir)
    return 0


def _fits(args: argparse.Namespace, study: Study) -> StudyFits:
    """Fits read back from ``--fits``, or made now from the study."""
    from slscale.analysis.fits import FitSettings, fit_study
    from slscale.analysis.fitset import StudyFits

    if args.fits:
        return StudyFits.load(Path(args.fits))
    settings = FitSettings(
        n_bootstrap=args.bootstrap,
        seed=args.seed,
        confidence=args.confidence,
        huber_delta=args.huber_delta,
    )
    return fit_study(study, settings)


def _other_folder(given: Path, fits_dir: Path) -> bool:
    folder = given / "fits" if (given / "fits" / "index.json").is_file() else given
    return folder.resolve() != fits_dir.resolve()


def _report(outcomes: list[Outcome], fits_dir: Path) -> None:
    for outcome in outcomes:
        if outcome.skipped:
            print(f"skipped {outcome.name}: {outcome.skipped}")
        else:
            print(f"wrote {outcome.name}: {', '.join(outcome.files)}")
    print(f"fits: {fits_dir}")
