"""The paper's tables from a study's final scores (layouts of SIMS Tables 1-3).

* :func:`synthetic_ablation` — runs that differ only in their synthetic-speech share, side by
  side per model (SIMS Table 1);
* :func:`crossmodal` — sSC and tSC with speech/text prompts and continuations, S, S→T, T→S,
  T (SIMS Table 2);
* :func:`published_comparison` — published SLMs (shipped in ``reference/published_slms.csv``
  with citations) next to the best run of each arm (SIMS Table 3).

Each returns a :class:`~slscale.analysis.table_format.Table`, or raises :class:`Unsupported`
saying what the study lacks.
"""

from __future__ import annotations

import csv
import io
from importlib import resources

import numpy as np
import pandas as pd

from slscale.analysis.study import VARIANT_ORDER, Study, select_scores, variant_label
from slscale.analysis.table_format import Table, bold, count, flops, percent
from slscale.models.evaluate.suite import (
    SBLIMP,
    SPEECH_ONLY,
    SSC,
    SWUGGY,
    TSC,
    multi_speaker,
)

ABLATION_BENCHMARKS = (SBLIMP, SWUGGY, SSC, TSC, multi_speaker(SSC), multi_speaker(TSC))
STORYCLOZE = (SSC, TSC)
"""The benchmarks of the cross-modal table (SIMS Table 2)."""
PUBLISHED_BENCHMARKS = (SBLIMP, SSC, TSC)
"""The benchmarks SIMS Table 3 reports."""
SHARE = "mix.synthetic_share"
_CONFIG = ["arm", "family", "init_name", "n_params", "tokens"]


class Unsupported(Exception):
    """The study has no data for a table or figure; the message says what is missing."""


def _wide(
    study: Study, benchmarks: tuple[str, ...] | list[str], variant: str = SPEECH_ONLY
) -> pd.DataFrame:
    """runs joined with one column per benchmark (final score of ``variant``)."""
    table = study.runs.copy()
    for benchmark in benchmarks:
        rows = select_scores(study.scores, benchmark, variant)
        table[benchmark] = table["run_id"].map(rows.set_index("run_id")["value"])
    return table


def _present(study: Study, benchmarks: tuple[str, ...]) -> list[str]:
    have = set(study.scores["benchmark"]) if not study.scores.empty else set()
    return [b for b in benchmarks if b in have]


# -- SIMS Table 1 ---------------------------------------------------------------------------
def synthetic_ablation(study: Study) -> Table:
    """Scores of runs that share arm, family, init, N and D but not the synthetic share."""
    benchmarks = _present(study, ABLATION_BENCHMARKS)
    if not benchmarks:
        raise Unsupported("no evaluation scores in the store")
    if SHARE not in study.runs.columns:
        raise Unsupported(f"the runs have no '{SHARE}' column")
    wide = _wide(study, benchmarks)
    groups = [g for _, g in wide.groupby(_CONFIG, sort=True) if g[SHARE].nunique() > 1]
    if not groups:
        shares = sorted(set(wide[SHARE].dropna()))
        raise Unsupported(
            f"no model was trained at several synthetic shares (shares seen: {shares})"
        )
    chosen = pd.concat(groups)
    benchmarks = [b for b in benchmarks if chosen[b].notna().any()]
    rows, rules = [], []
    for group in groups:
        rows += _ablation_rows(group, benchmarks)
        rules.append(len(rows) - 1)
    return Table(
        name="synthetic_ablation",
        caption="Synthetic speech data: final scores (%) of otherwise identical runs.",
        columns=("Arm", "Params", "Tokens", "Synthetic share", *benchmarks),
        rows=tuple(rows),
        rules_after=tuple(rules),
        notes=(
            "Synthetic share: fraction of speech tokens from single-speaker synthetic data; "
            "best value per model in bold. Layout of SIMS (Maimon et al. 2025) Table 1.",
        ),
    )


def _ablation_rows(group: pd.DataFrame, benchmarks: list[str]) -> list[tuple[str, ...]]:
    means = group.groupby(SHARE, sort=True)[benchmarks].mean()  # seeds averaged
    first = group.iloc[0]
    config = (str(first["arm"]), count(first["n_params"]), count(first["tokens"]))
    return [
        (*config, f"{float(share):g}", *(_best(scores[b], means[b]) for b in benchmarks))
        for share, scores in means.iterrows()
    ]


def _best(value: float, column: pd.Series) -> str:
    cell = percent(value)
    return (
        bold(cell) if np.isfinite(value) and value == column.max() and column.count() > 1 else cell
    )


# -- SIMS Table 2 ---------------------------------------------------------------------------
def crossmodal(study: Study, max_rows: int = 10) -> Table:
    """sSC and tSC for each prompt→continuation modality, of the runs with most compute."""
    scores = study.scores
    if scores.empty:
        raise Unsupported("no evaluation scores in the store")
    cross = scores[scores["benchmark"].isin(STORYCLOZE) & (scores["variant"] != SPEECH_ONLY)]
    if cross.empty:
        raise Unsupported("no cross-modal sSC/tSC scores (variants S→T, T→S or T)")
    runs = study.runs[study.runs["run_id"].isin(set(cross["run_id"]))]
    chosen = runs.sort_values(["flops", "n_params"], ascending=False).head(max_rows)
    chosen = chosen.sort_values(["arm", "n_params", "tokens"])
    rows = [_crossmodal_row(run, scores) for _, run in chosen.iterrows()]
    labels = tuple(map(variant_label, VARIANT_ORDER))
    notes = [
        "Final scores (%); prompt→continuation modality, S = speech, T = text. "
        "Layout of SIMS (Maimon et al. 2025) Table 2."
    ]
    if len(runs) > len(chosen):
        notes.append(f"The {len(chosen)} runs with most compute of {len(runs)} evaluated.")
    return Table(
        name="crossmodal",
        caption="Cross-modal evaluation: StoryCloze with speech and text prompts and endings.",
        columns=("Arm", "Params", "Tokens", *labels, *labels),
        column_groups=(("", 3), *((b, len(labels)) for b in STORYCLOZE)),
        rows=tuple(rows),
        notes=tuple(notes),
    )


def _crossmodal_row(run: pd.Series, scores: pd.DataFrame) -> tuple[str, ...]:
    mine = scores[scores["run_id"] == run["run_id"]].set_index(["benchmark", "variant"])["value"]
    cells = [percent(mine.get((b, v))) for b in STORYCLOZE for v in VARIANT_ORDER]
    return (str(run["arm"]), count(run["n_params"]), count(run["tokens"]), *cells)


# -- SIMS Table 3 ---------------------------------------------------------------------------
PUBLISHED_FILE = "published_slms.csv"


def published_rows() -> list[dict[str, str]]:
    """Published SLM results as shipped (sBLIMP/sSC/tSC in %, with citations)."""
    text = (resources.files("slscale.analysis") / "reference" / PUBLISHED_FILE).read_text("utf-8")
    return list(csv.DictReader(io.StringIO(text)))


def published_comparison(study: Study) -> Table:
    """Published SLMs and the best run of each arm (by final sSC, else by loss)."""
    published = published_rows()
    rows: list[tuple[str, ...]] = [
        (row["model"], *(_cell(row[k]) for k in ("params", "tokens")), flops(_number(row["flops"])),
         *(row[b.lower()] for b in PUBLISHED_BENCHMARKS))
        for row in published
    ]  # fmt: skip
    ours = _our_rows(study)
    notes = [
        "Published rows as reported in SIMS (Maimon et al. 2025) Table 3; '—': not "
        "reported there. Ours: the best run of each arm by final sSC (S→S)."
    ]
    conventions = sorted(set(study.scores["convention"].astype(str))) if len(study.scores) else []
    if conventions:
        notes.append(f"Ours scored with the convention {', '.join(conventions)}.")
    notes += [f"{row['model']}: {row['citation']}." for row in published]
    return Table(
        name="published_comparison",
        caption="Comparison with published speech language models (sBLIMP, sSC, tSC in %).",
        columns=("Model", "Params", "Tokens", "FLOPs", *PUBLISHED_BENCHMARKS),
        rows=tuple(rows + ours),
        rules_after=(len(rows) - 1,),
        notes=tuple(notes),
    )


def _our_rows(study: Study) -> list[tuple[str, ...]]:
    wide = _wide(study, PUBLISHED_BENCHMARKS)
    out: list[tuple[str, ...]] = []
    for arm in sorted(set(wide["arm"])):
        mine = wide[wide["arm"] == arm]
        scored = mine[SSC].notna().any()
        best = mine.loc[mine[SSC].idxmax()] if scored else mine.sort_values("loss").iloc[0]
        cells = [percent(best[b]) for b in PUBLISHED_BENCHMARKS]
        sizes = [count(best["n_params"]), count(best["tokens"]), flops(best["flops"])]
        out.append((f"Ours ({arm})", *sizes, *cells))
    return out


def _number(text: str) -> float | None:
    return float(text) if text.strip() else None


def _cell(text: str) -> str:
    return count(_number(text))
