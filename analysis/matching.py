"""Runs of several TextLM families trained alike, for the family comparison (SIMS Fig. 2).

Comparing initialisations is fair only between runs that differ in nothing else: the runs
with the most common data mix and recipe (ablations left out) that share a token count (as
SIMS trains every family on the same data), or else a compute budget. Among the candidate
settings the one with most families of two or more model sizes wins, then the one with most
runs, then the largest.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from slscale.analysis.style import format_count, format_power
from slscale.analysis.tables import Unsupported

GAP_DEX = 0.05
"""Token counts or FLOPs closer than this (in log10) count as the same setting."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class Setting:
    """What the compared runs share."""

    kind: str
    """'tokens' or 'flops'."""
    value: float
    """The shared token count or compute (median over the runs)."""

    @property
    def text(self) -> str:
        return f"{'D' if self.kind == 'tokens' else 'C'} ≈ {self.value:.3g}"

    @property
    def tex(self) -> str:
        if self.kind == "tokens":
            return f"$D$ ≈ {format_count(self.value)}"
        return f"$C$ ≈ {format_power(self.value)}"


def trained_alike(runs: pd.DataFrame) -> tuple[pd.DataFrame, Setting]:
    """The runs of two or more families (each with two or more sizes) trained alike."""
    runs = modal_setup(runs)
    for kind in ("tokens", "flops"):
        best: tuple[tuple[int, int, float], pd.DataFrame] | None = None
        for mine in _settings(runs, kind):
            sizes = mine.groupby("family")["n_params"].nunique()
            score = (int((sizes >= 2).sum()), len(mine), float(mine[kind].median()))
            if score[0] >= 2 and (best is None or score > best[0]):
                best = (score, mine)
        if best is not None:
            return best[1], Setting(kind=kind, value=best[0][2])
    raise Unsupported(
        "no token count or compute budget has runs of two or more sizes from each of two "
        "TextLM families"
    )


def modal_setup(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs sharing the most common data mix and recipe (ties: the first by value)."""
    columns = [c for c in runs.columns if c.startswith(("mix.", "recipe."))]
    if not columns:
        return runs
    keys = runs[columns].astype(str).agg("|".join, axis=1)
    return runs[keys == keys.value_counts().sort_index().idxmax()]


def _settings(runs: pd.DataFrame, key: str) -> list[pd.DataFrame]:
    """Runs grouped where sorted log10 values of ``key`` are within :data:`GAP_DEX`."""
    values = runs[key].to_numpy(np.float64)
    order = np.argsort(values, kind="stable")
    jumps = np.diff(np.log10(values[order])) > GAP_DEX
    labels = np.empty(values.size, dtype=np.int64)
    labels[order] = np.concatenate([[0], np.cumsum(jumps)])
    return [runs[labels == g] for g in np.unique(labels)]
