"""slscale.analysis: the paper's figures and tables from the results store and fit results.

* :func:`load_study` — runs, training curves and final scores of a store as tidy tables.
* :func:`fit_study` — the fits the figures draw (the only place analysis calls fitting);
  :class:`StudyFits` saves and reloads them as FitResult JSON.
* :func:`draw_all` — every figure and table the study supports, with the reason for each
  one skipped; plot functions (``plot_metric``, ``plot_loss``, ``plot_allocation``) take
  FitResults and tables, return a Figure and never fit.
* ``slscale figures --workdir DIR --out FIGDIR`` runs the three.
"""

from slscale.analysis.figures import FIGURES, TABLES, Outcome, build_figure, draw_all
from slscale.analysis.fits import FitSettings, fit_study
from slscale.analysis.fitset import StudyFits
from slscale.analysis.study import Study, load_study, study_from_frames

__all__ = [
    "FIGURES",
    "TABLES",
    "FitSettings",
    "Outcome",
    "Study",
    "StudyFits",
    "build_figure",
    "draw_all",
    "fit_study",
    "load_study",
    "study_from_frames",
]
