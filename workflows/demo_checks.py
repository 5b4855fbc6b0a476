"""What the demo's miniature must show, checked from its store and saved fits.

Each :class:`Check` is one claim — a property of a sound scaling study, or a SIMS finding —
with whether it holds and the numbers behind it. The report lists them; the slow demo test
asserts them. Accuracies are pair accuracies on n items, so their binomial standard error
is sqrt(p(1−p)/n); a difference of two independent sets has the root sum of squares.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pandas as pd

from slscale.analysis.fitset import StudyFits
from slscale.fitting.tables import budget_labels
from slscale.models.evaluate import Convention
from slscale.spec import RunState
from slscale.store import open_store

ARMS = ("interleaved", "textless")
MAX_INTERVAL_WIDTH = 0.25
"""Widest acceptable 95 % interval of Approach 3's allocation exponent a."""
Z95 = 1.959964


@dataclasses.dataclass(frozen=True, kw_only=True)
class Check:
    """One claim about the miniature and whether its numbers bear it out."""

    name: str
    claim: str
    holds: bool
    numbers: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class Best:
    """The best run of one arm at one budget on one benchmark (S→S)."""

    budget: float
    run_id: str
    accuracy: float
    n_items: int

    @property
    def se(self) -> float:
        p = self.accuracy
        return math.sqrt(max(p * (1 - p), 0.25 / self.n_items) / self.n_items)


def science_checks(workdir: Path) -> list[Check]:
    """Every check, from ``workdir``'s store and ``figures/fits``."""
    fits = StudyFits.load(workdir / "figures" / "fits")
    with open_store(workdir) as store:
        runs, evals = store.runs_frame(), store.evals_frame()
    best = best_per_budget(runs, evals)
    return [
        *_centred(fits),
        *_intervals(fits),
        *_rising(best, "tSC"),
        _above_chance(best, "interleaved", "sSC"),
        *(_arms_apart(best, bench) for bench in ("sSC", "tSC")),
    ]


def best_per_budget(runs: pd.DataFrame, evals: pd.DataFrame) -> dict[tuple[str, str], list[Best]]:
    """(arm, benchmark) -> best S→S run per budget, by budget, SlamKit's convention, scaling
    runs only (real speech: synthetic share 0)."""
    ok = runs[runs["state"] == RunState.SUCCEEDED]
    if "mix.synthetic_share" in ok:
        ok = ok[ok["mix.synthetic_share"].fillna(0.0) == 0.0]
    if ok.empty:
        return {}
    labels, budgets = budget_labels(ok["flops_6nd"].to_numpy(float), None)
    ok = ok.assign(budget=budgets[labels])
    slamkit = Convention.parse("slamkit").name
    scores = evals[(evals["variant"] == "S") & (evals["convention"] == slamkit)]
    scores = scores.merge(ok[["run_id", "modality", "budget"]], on="run_id")
    out: dict[tuple[str, str], list[Best]] = {}
    for (arm, bench), rows in scores.groupby(["modality", "benchmark"]):
        top = rows.sort_values("value").groupby("budget").tail(1).sort_values("budget")
        out[(str(arm), str(bench))] = [
            Best(
                budget=float(r["budget"]),
                run_id=str(r["run_id"]),
                accuracy=float(r["value"]),
                n_items=int(r["n_items"]),
            )
            for _, r in top.iterrows()
        ]
    return out


def _centred(fits: StudyFits) -> list[Check]:
    out = []
    for arm in ARMS:
        fit = fits.get("approach2", arm)
        rows = list(fit.details.get("budgets", [])) if fit else []
        if not rows:
            reason = "; ".join(fits.reasons("approach2")) or "no IsoFLOP fit"
            out.append(Check(name=f"centred-{arm}", claim=_CENTRED, holds=False, numbers=reason))
            continue
        inside = [r.get("used", False) and 0.0 <= r.get("position_n", -1.0) <= 1.0 for r in rows]
        numbers = ", ".join(
            f"C={r['budget']:.2g}: "
            + (f"N_opt {r['n_opt']:.3g} at {r['position_n']:.2f}" if r.get("used") else "no min")
            for r in rows
        )
        out.append(Check(name=f"centred-{arm}", claim=_CENTRED, holds=all(inside), numbers=numbers))
    return out


_CENTRED = (
    "each IsoFLOP budget's fitted minimum lies inside its range of sizes "
    "(position 0 = smallest size, 1 = largest)"
)


def _intervals(fits: StudyFits) -> list[Check]:
    out = []
    claim = f"Approach 3's 95 % interval of a is at most {MAX_INTERVAL_WIDTH} wide"
    for arm in ARMS:
        fit = fits.get("approach3", arm)
        low, high = fit.ci.get("a", (math.nan, math.nan)) if fit else (math.nan, math.nan)
        width = high - low
        numbers = (
            f"a = {fit.exponents['a']:.3f} [{low:.3f}, {high:.3f}], width {width:.3f}"
            if fit
            else "; ".join(fits.reasons("approach3")) or "no Approach 3 fit"
        )
        holds = bool(np.isfinite(width) and width <= MAX_INTERVAL_WIDTH)
        out.append(Check(name=f"interval-{arm}", claim=claim, holds=holds, numbers=numbers))
    return out


def _rising(best: dict[tuple[str, str], list[Best]], bench: str) -> list[Check]:
    out = []
    claim = (
        f"{bench} (S→S) of the best run rises from the lowest to the highest budget by more "
        "than two standard errors"
    )
    for arm in ARMS:
        points = best.get((arm, bench), [])
        if len(points) < 2:
            out.append(
                Check(name=f"rising-{bench}-{arm}", claim=claim, holds=False, numbers="< 2 budgets")
            )
            continue
        low, high = points[0], points[-1]
        gain, se = high.accuracy - low.accuracy, math.hypot(low.se, high.se)
        numbers = (
            f"{low.accuracy:.3f} at {low.budget:.2g} → {high.accuracy:.3f} at {high.budget:.2g}: "
            f"{gain:+.3f} (2 SE = {2 * se:.3f})"
        )
        out.append(
            Check(name=f"rising-{bench}-{arm}", claim=claim, holds=gain > 2 * se, numbers=numbers)
        )
    return out


def _above_chance(best: dict[tuple[str, str], list[Best]], arm: str, bench: str) -> Check:
    claim = f"{bench} (S→S) of the {arm} arm is above chance at the highest budget by > 2 SE"
    points = best.get((arm, bench), [])
    if not points:
        return Check(name=f"chance-{bench}-{arm}", claim=claim, holds=False, numbers="no scores")
    top = points[-1]
    numbers = f"{top.accuracy:.3f} at {top.budget:.2g} (chance 0.5, 2 SE = {2 * top.se:.3f})"
    return Check(
        name=f"chance-{bench}-{arm}",
        claim=claim,
        holds=top.accuracy - 0.5 > 2 * top.se,
        numbers=numbers,
    )


def _arms_apart(best: dict[tuple[str, str], list[Best]], bench: str) -> Check:
    claim = (
        f"at the highest budget the interleaved arm's best {bench} (S→S) is above the "
        "textless arm's (SIMS: interleaving beats textless training), 95 % interval above 0"
    )
    inter, textless = best.get(("interleaved", bench), []), best.get(("textless", bench), [])
    if not inter or not textless:
        return Check(name=f"arms-{bench}", claim=claim, holds=False, numbers="an arm has no scores")
    i, t = inter[-1], textless[-1]
    diff, se = i.accuracy - t.accuracy, math.hypot(i.se, t.se)
    low, high = diff - Z95 * se, diff + Z95 * se
    numbers = (
        f"interleaved {i.accuracy:.3f} vs textless {t.accuracy:.3f} at {i.budget:.2g}: "
        f"{diff:+.3f} [{low:+.3f}, {high:+.3f}]"
    )
    return Check(name=f"arms-{bench}", claim=claim, holds=low > 0, numbers=numbers)
