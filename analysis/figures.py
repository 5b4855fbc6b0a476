"""Every figure and table a study supports, drawn from its fits and tables.

:func:`draw_all` walks :data:`FIGURES` and :data:`TABLES`; each builder returns a Figure (or
Table) or raises :class:`~slscale.analysis.tables.Unsupported` naming what the study lacks
(no evaluations, one TextLM family, a fit that could not be made and why). The outcome of
each — its files or the reason it was skipped — goes to ``figures.json`` next to them.
Builders only select and arrange data; laws come from :class:`StudyFits`.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from slscale.analysis import plot_allocation, plot_loss, plot_metric, tables
from slscale.analysis.fitset import METRICS, REFERENCES, StudyFits
from slscale.analysis.matching import trained_alike
from slscale.analysis.output import save_figure, write_text
from slscale.analysis.study import Study, select_scores
from slscale.analysis.table_format import Table
from slscale.analysis.tables import Unsupported
from slscale.errors import ConfigError

MANIFEST = "figures.json"
TABLE_DIR = "tables"


@dataclasses.dataclass(frozen=True, kw_only=True)
class Outcome:
    """What happened to one figure or table."""

    name: str
    """File stem."""
    title: str
    """What it shows."""
    files: tuple[str, ...] = ()
    """Written files, relative to the output folder."""
    skipped: str = ""
    """Why it was not drawn (empty when it was)."""


def _fits_or_reason(fits: StudyFits, kind: str, what: str) -> dict[str, Any]:
    found = fits.by_arm(kind)
    if not found:
        reasons = "; ".join(fits.reasons(kind)) or "no scaling runs"
        raise Unsupported(f"no {what} could be fitted ({reasons})")
    return found


def _score_laws(study: Study, fits: StudyFits, kind: str, what: str) -> dict[str, Any]:
    """Benchmark -> arm -> fit of ``kind`` ('metric' or 'margin'), or Unsupported why not."""
    if study.scores.empty:
        raise Unsupported("no evaluation scores in the store (sSC/tSC come from the evaluator)")
    laws = {b: fits.by_arm(kind, b) for b in METRICS}
    laws = {b: arms for b, arms in laws.items() if arms}
    if not laws:
        reasons = "; ".join(r for b in METRICS for r in fits.reasons(kind, b))
        raise Unsupported(f"no sSC/tSC {what} could be fitted ({reasons or 'no scores'})")
    return laws


def metric_figure(study: Study, fits: StudyFits) -> Figure:
    laws = _score_laws(study, fits, "metric", "law")
    refs = {b: [fits.references[n] for n in REFERENCES[b] if n in fits.references] for b in laws}
    return plot_metric.metric_vs_compute(laws, refs)


def margin_figure(study: Study, fits: StudyFits) -> Figure:
    return plot_metric.margin_vs_compute(_score_laws(study, fits, "margin", "margin law"))


def isoflop_figure(study: Study, fits: StudyFits) -> Figure:
    fitted = _fits_or_reason(fits, "approach2", "IsoFLOP profile")
    return plot_loss.isoflop_curves(fitted, ladder_branches(study))


def curves_figure(study: Study, fits: StudyFits) -> Figure:
    curves = {arm: study.arm_curves(arm) for arm in study.arms}
    curves = {arm: c for arm, c in curves.items() if not c.empty}
    if not curves:
        raise Unsupported("no training-loss curves in the store (logged by the trainer)")
    return plot_loss.training_curves(curves, fits.by_arm("approach1"))


def frontier_figure(study: Study, fits: StudyFits) -> Figure:
    laws = {**fits.by_arm("approach2"), **fits.by_arm("approach3")}
    if not laws:
        raise Unsupported(
            "no Approach 3 or Approach 2 fit: "
            + "; ".join(fits.reasons("approach3") + fits.reasons("approach2"))
        )
    refs = [fits.references[n] for n in REFERENCES["loss"] if n in fits.references]
    return plot_allocation.compute_optimal_frontier(laws, fits.by_arm("approach2"), refs)


def isoloss_figure(study: Study, fits: StudyFits) -> Figure:
    return plot_allocation.isoloss_contours(_fits_or_reason(fits, "approach3", "Approach 3 law"))


def prediction_figure(study: Study, fits: StudyFits) -> Figure:
    laws = _fits_or_reason(fits, "approach3", "Approach 3 law")
    return plot_loss.predicted_vs_observed(laws, ladder_branches(study))


def ladder_branches(study: Study) -> dict[str, pd.DataFrame]:
    """Arm -> the scaling runs that are WSD ladder branches (n_params, tokens, loss), for the
    figures to mark them apart from independent runs."""
    runs = study.scaling_runs()
    if "branch.parent" not in runs.columns:
        return {}
    branches = runs[runs["branch.parent"].notna()]
    return {
        str(arm): group[["n_params", "tokens", "loss"]] for arm, group in branches.groupby("arm")
    }


def families_figure(study: Study, fits: StudyFits) -> Figure:
    runs = study.runs[study.runs["init_name"] != "scratch"]
    if "interleaved" in set(runs["arm"]):
        runs = runs[runs["arm"] == "interleaved"]
    families = sorted(set(runs["family"])) if "family" in runs else []
    if len(families) < 2:
        raise Unsupported(
            f"needs runs initialised from two or more TextLM families "
            f"(found: {', '.join(families) or 'none'})"
        )
    matched, setting = trained_alike(runs)
    points = [
        select_scores(study.scores, b).merge(matched[["run_id", "family", "n_params"]], on="run_id")
        for b in METRICS
    ]
    frame = pd.concat(points, ignore_index=True)
    if frame.empty:
        raise Unsupported(f"no sSC/tSC scores for the TextLM-initialised runs at {setting.text}")
    return plot_metric.textlm_families(frame, METRICS, setting=setting.tex)


FigureBuilder = Callable[[Study, StudyFits], Figure]
FIGURES: tuple[tuple[str, str, FigureBuilder], ...] = (
    (
        "metric_vs_compute",
        "sSC/tSC of the best run per budget vs compute (SIMS Fig. 1)",
        metric_figure,
    ),
    (
        "margin_vs_compute",
        "sSC/tSC log-likelihood margin of the best run per budget vs compute",
        margin_figure,
    ),
    ("isoflop", "IsoFLOP profiles: loss vs N per budget (SIMS Fig. 4)", isoflop_figure),
    (
        "training_curves",
        "Training curves coloured by N with the Approach 1 envelope",
        curves_figure,
    ),
    ("compute_optimal", "Compute-optimal N and D vs C with bands and references", frontier_figure),
    ("isoloss", "Approach 3 iso-loss contours in the (N, D) plane", isoloss_figure),
    (
        "predicted_vs_observed",
        "Approach 3 predicted vs observed loss, largest budget held out",
        prediction_figure,
    ),
    ("textlm_families", "Scores vs parameters per TextLM family (SIMS Fig. 2)", families_figure),
)
"""(name, title, builder) of every figure, in paper order."""

TABLES: tuple[tuple[str, Callable[[Study], Table]], ...] = (
    ("synthetic_ablation", tables.synthetic_ablation),
    ("crossmodal", tables.crossmodal),
    ("published_comparison", tables.published_comparison),
)


def build_figure(name: str, study: Study, fits: StudyFits) -> Figure:
    """The figure ``name`` of :data:`FIGURES` (raises Unsupported when the data lacks it)."""
    for entry_name, _title, build in FIGURES:
        if entry_name == name:
            return build(study, fits)
    raise ConfigError(f"unknown figure {name!r}; figures: {', '.join(n for n, _, _ in FIGURES)}")


def draw_all(
    study: Study, fits: StudyFits, out_dir: Path, formats: Sequence[str] = ("pdf", "png")
) -> list[Outcome]:
    """Draw every figure and write every table the study supports; record the rest."""
    outcomes = [_draw(study, fits, out_dir, formats, *entry) for entry in FIGURES]
    outcomes += [_table(study, out_dir, name, build) for name, build in TABLES]
    manifest = {
        "figures": [dataclasses.asdict(o) for o in outcomes[: len(FIGURES)]],
        "tables": [dataclasses.asdict(o) for o in outcomes[len(FIGURES) :]],
        "fits_skipped": dict(fits.skipped),
        "notes": list(study.notes),
    }
    write_text(out_dir / MANIFEST, json.dumps(manifest, indent=1, ensure_ascii=False))
    return outcomes


def _draw(
    study: Study,
    fits: StudyFits,
    out_dir: Path,
    formats: Sequence[str],
    name: str,
    title: str,
    build: FigureBuilder,
) -> Outcome:
    try:
        fig = build(study, fits)
    except Unsupported as exc:
        for stale in out_dir.glob(f"{name}.*"):  # an earlier drawing of it no longer holds
            stale.unlink()
        return Outcome(name=name, title=title, skipped=str(exc))
    paths = save_figure(fig, out_dir, name, formats)
    return Outcome(name=name, title=title, files=tuple(p.name for p in paths))


def _table(study: Study, out_dir: Path, name: str, build: Callable[[Study], Table]) -> Outcome:
    try:
        table = build(study)
    except Unsupported as exc:
        for stale in (out_dir / TABLE_DIR).glob(f"{name}.*"):
            stale.unlink()
        return Outcome(name=name, title=name.replace("_", " "), skipped=str(exc))
    md = write_text(out_dir / TABLE_DIR / f"{name}.md", table.to_markdown())
    tex = write_text(out_dir / TABLE_DIR / f"{name}.tex", table.to_latex())
    files = tuple(f"{TABLE_DIR}/{p.name}" for p in (md, tex))
    return Outcome(name=name, title=table.caption, files=files)
