"""Likelihood-margin laws: Margin(C) = m + s·log10(C / 1e12).

A pair benchmark's accuracy counts the pairs whose correct item is likelier; its margin is
the mean log-likelihood difference, correct minus wrong (nats per scored token under the
mean conventions, per item under summed ones). Near chance, accuracy moves in steps of one
pair and is mostly noise, while the margin keeps moving with compute: DataDecide (Magnusson
et al. 2025, arXiv 2504.11393) found likelihood-based metrics far more predictable than
accuracies at small scale. A margin may be zero or negative, so the law is linear in
log compute rather than a power law; ``s`` is the margin gained per decade of compute.
Selection (best run per budget, or the running-best envelope), the case bootstrap and the
leave-largest-budget-out check are those of :class:`~slscale.fitting.MetricPowerLaw`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from slscale.fitting import laws
from slscale.fitting.metric import MetricPowerLaw
from slscale.fitting.powerlaw import line_fit
from slscale.fitting.results import MARGIN
from slscale.fitting.tables import FloatArray


class MarginLaw(MetricPowerLaw):
    """Fit Margin(C) = m + s·log10(C/1e12). Learned as :class:`MetricPowerLaw`, with
    ``params_`` (m, s)."""

    METHOD = "margin"
    LAW = MARGIN
    SLOPE = "s"
    OBJECTIVE = "least squares of the margin on log10 C"
    POSITIVE = False

    def _line(self, c: FloatArray, q: FloatArray, weights: Any = None) -> dict[str, Any]:
        m, s = line_fit(np.log10(c) - laws.MARGIN_LOG10_C0, q, weights)
        return {"m": m, "s": s}

    def predict(self, flops: ArrayLike) -> FloatArray:
        """Margin(C) = m + s·log10(C/1e12)."""
        return laws.margin_law(flops, **self.params_)
