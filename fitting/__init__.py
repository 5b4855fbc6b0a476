"""slscale.fitting: scaling-law fits on tables of runs (maths only: no scheduler, trainer or plots).

* :class:`ParametricLossFit` — Approach 3, L(N, D) = E + A/N^α + B/D^β (Huber on log
  residuals, 4,500 starts, bootstrap intervals), fast enough to bootstrap 4,000 times.
* :class:`IsoFlopFit` — Approach 2, per-budget parabolas → N_opt ∝ C^a, D_opt ∝ C^b.
* :class:`EnvelopeFit` — Approach 1, minimum-loss envelope of training curves.
* :class:`MetricPowerLaw` — Q(C) = a·C^b on the best run per budget or on the envelope.
* :class:`MarginLaw` — Margin(C) = m + s·log10(C/1e12) of likelihood margins.
* :func:`compare_arms` — two arms (e.g. interleaved vs textless) through their laws.
* :func:`load_reference` — published laws (Chinchilla, Epoch, Cuervo & Marxer, SIMS).
* :class:`FitResult` — every fit's self-describing JSON result (what analysis/ draws).
"""

from slscale.fitting.approach1 import EnvelopeFit
from slscale.fitting.approach2 import IsoFlopFit, SamplingWarning
from slscale.fitting.approach3 import ParametricLossFit
from slscale.fitting.compare import compare_arms
from slscale.fitting.margin import MarginLaw
from slscale.fitting.metric import MetricPowerLaw
from slscale.fitting.reference import list_references, load_reference
from slscale.fitting.results import ArmComparison, Estimate, FitResult

__all__ = [
    "ArmComparison",
    "EnvelopeFit",
    "Estimate",
    "FitResult",
    "IsoFlopFit",
    "MarginLaw",
    "MetricPowerLaw",
    "ParametricLossFit",
    "SamplingWarning",
    "compare_arms",
    "list_references",
    "load_reference",
]
