"""Tables: published SLMs next to the study's runs, the synthetic ablation, cross-modal scores."""

from __future__ import annotations

import pandas as pd
import pytest

from slscale.analysis.study import load_study
from slscale.analysis.table_format import Table, latex_escape
from slscale.analysis.tables import published_rows
from slscale.store import open_store

# SIMS (Maimon et al. 2025) Table 3: sBLIMP / sSC / tSC
PUBLISHED = {
    "GSLM": ("54.2", "53.3", "66.6"),
    "TWIST-7B": ("59.0", "55.3", "74.1"),
    "Slam": ("61.1", "61.3", "84.2"),
    "Cuervo & Marxer 823M": ("61.3", "56.7", "78.0"),
    "Moshi": ("58.8", "60.8", "83.0"),
    "SpiritLM": ("58.3", "61.0", "82.9"),
    "SIMS-7B": ("59.8", "66.7", "88.3"),
}


def md_rows(path) -> dict[str, list[str]]:
    """First cell -> the other cells, for every body row of a Markdown table."""
    rows = {}
    for line in path.read_text().splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if line.startswith("| ") and not set(cells[0]) <= {":", "-"}:
            rows.setdefault(cells[0], []).append(cells[1:])
    return {k: v[0] if len(v) == 1 else v for k, v in rows.items()}


def final_scores(workdir, benchmark: str, variant: str = "S") -> pd.Series:
    """run_id -> the score at the run's last evaluated step, straight from the store."""
    with open_store(workdir) as store:
        evals = store.evals_frame()
    rows = evals[(evals["benchmark"] == benchmark) & (evals["variant"] == variant)]
    return rows.sort_values("step").groupby("run_id")["value"].last()


def test_published_rows_ship_with_citations():
    rows = {r["model"]: r for r in published_rows()}
    assert {m: (r["sblimp"], r["ssc"], r["tsc"]) for m, r in rows.items()} == PUBLISHED
    assert all(r["citation"] and "Table 3" in r["reported_in"] for r in rows.values())
    sims = rows["SIMS-7B"]
    assert (float(sims["tokens"]), float(sims["flops"])) == (15e9, 6.86e20)


def test_comparison_table_holds_published_and_our_rows(drawn, workdir):
    out, _ = drawn
    rows = md_rows(out / "tables" / "published_comparison.md")
    for model, scores in PUBLISHED.items():
        assert tuple(rows[model][3:]) == scores, model
    assert rows["SIMS-7B"][:3] == ["7.6B", "15B", "6.86e20"]
    study = load_study(str(workdir))
    ssc, tsc = final_scores(workdir, "sSC"), final_scores(workdir, "tSC")
    for arm in ("interleaved", "textless"):
        runs = study.runs[study.runs["arm"] == arm]
        best = ssc[runs["run_id"]].idxmax()
        assert rows[f"Ours ({arm})"][4:] == [f"{100 * ssc[best]:.1f}", f"{100 * tsc[best]:.1f}"]
    tex = (out / "tables" / "published_comparison.tex").read_text()
    assert r"Cuervo \& Marxer 823M & 823M & --- & --- & 61.3 & 56.7 & 78.0 \\" in tex
    assert "``Scaling Properties of Speech Language Models''" in tex


def test_synthetic_ablation_compares_shares_of_one_model(drawn, workdir):
    out, _ = drawn
    text = (out / "tables" / "synthetic_ablation.md").read_text()
    header = next(line for line in text.splitlines() if line.startswith("| Arm"))
    assert "sWUGGY" not in header  # no ablated run has it: no empty column
    rows = md_rows(out / "tables" / "synthetic_ablation.md")["interleaved"]
    assert [r[2] for r in rows] == ["0", "0.5", "1"] * 2
    study = load_study(str(workdir))
    ssc = final_scores(workdir, "sSC")
    runs = study.runs.assign(ssc=study.runs["run_id"].map(ssc))
    share_one = runs[(runs["mix.synthetic_share"] == 1.0) & (runs["arm"] == "interleaved")]
    expected = sorted(f"**{100 * v:.1f}**" for v in share_one["ssc"])
    assert sorted(r[4] for r in rows if r[2] == "1") == expected  # best (bold) per model


def test_crossmodal_table_reads_every_variant(drawn, workdir):
    out, _ = drawn
    rows = md_rows(out / "tables" / "crossmodal.md")["interleaved"]
    assert len(rows) == 10
    with open_store(workdir) as store:
        evals = store.evals_frame()
    runs = load_study(str(workdir)).runs
    largest = runs[runs["arm"] == "interleaved"].sort_values("flops").iloc[-1]
    mine = evals[evals["run_id"] == largest["run_id"]].sort_values("step")
    last = mine.groupby(["benchmark", "variant"])["value"].last()
    expected = [
        f"{100 * last[(b, v)]:.1f}" for b in ("sSC", "tSC") for v in ("S", "S2T", "T2S", "T")
    ]
    assert expected in [r[2:] for r in rows]
    tex = (out / "tables" / "crossmodal.tex").read_text()
    assert r"\multicolumn{4}{c}{sSC} & \multicolumn{4}{c}{tSC}" in tex
    assert r"S$\rightarrow$T & T$\rightarrow$S" in tex


def test_latex_escaping():
    assert latex_escape('50% of A & B_1 → "C" ~ #2') == (
        r"50\% of A \& B\_1 $\rightarrow$ ``C'' \textasciitilde{} \#2"
    )


def test_a_row_of_the_wrong_width_is_refused():
    with pytest.raises(ValueError, match="table t: row 0 has 1 cells, expected 2"):
        Table(name="t", caption="c", columns=("a", "b"), rows=(("x",),))
