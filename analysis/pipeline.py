"""Store → study → fits → every figure and table: what ``slscale figures`` and the demo run.

:func:`draw_study` loads the study from a store, fits it (or reads fits saved earlier), saves
the fits as FitResult JSON in ``OUT/fits`` and draws every figure and table the data supports;
:func:`print_drawn` writes the lines the command prints.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

from slscale.analysis.figures import Outcome, draw_all
from slscale.analysis.fits import FitSettings, fit_study
from slscale.analysis.fitset import StudyFits
from slscale.analysis.study import load_study


@dataclasses.dataclass(frozen=True, kw_only=True)
class Drawn:
    """What :func:`draw_study` did."""

    notes: tuple[str, ...]
    """What loading the study left out or chose."""
    outcomes: list[Outcome]
    """Each figure and table: its files, or why it was skipped."""
    fits_dir: Path
    """Where the fits were saved."""


def draw_study(
    target: str,
    out: Path,
    *,
    formats: Sequence[str] = ("pdf", "png"),
    where: Sequence[str] = (),
    loss_name: str = "loss",
    convention: str | None = None,
    include_trunks: bool = False,
    saved_fits: Path | None = None,
    settings: FitSettings | None = None,
) -> Drawn:
    """Draw the study of the store at ``target`` into ``out`` (see the module docstring);
    ``saved_fits``: a folder of fits saved earlier, drawn without fitting."""
    study = load_study(
        target,
        where=where,
        loss_name=loss_name,
        convention=convention,
        include_trunks=include_trunks,
    )
    fits = StudyFits.load(saved_fits) if saved_fits else fit_study(study, settings)
    fits_dir = out / "fits"
    if saved_fits is None or _other_folder(saved_fits, fits_dir):
        fits.save(fits_dir)
    return Drawn(notes=study.notes, outcomes=draw_all(study, fits, out, formats), fits_dir=fits_dir)


def print_drawn(drawn: Drawn) -> None:
    """One line per note, figure and table, then where the fits are."""
    for note in drawn.notes:
        print(f"note: {note}")
    for outcome in drawn.outcomes:
        if outcome.skipped:
            print(f"skipped {outcome.name}: {outcome.skipped}")
        else:
            print(f"wrote {outcome.name}: {', '.join(outcome.files)}")
    print(f"fits: {drawn.fits_dir}")


def _other_folder(given: Path, fits_dir: Path) -> bool:
    folder = given / "fits" if (given / "fits" / "index.json").is_file() else given
    return folder.resolve() != fits_dir.resolve()
