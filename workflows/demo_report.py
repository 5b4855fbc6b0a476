"""The demo's report: findings with numbers, as Markdown and HTML, from the saved fits and store.

Every number comes from ``figures/fits/*.json`` (the fits the figures drew) or the store; the
report never fits anything itself except the arm comparisons, which
:func:`slscale.fitting.compare_arms` derives from those saved fits. Where the miniature does not
reproduce a claim of the paper, the report says so.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from slscale.analysis.fitset import StudyFits
from slscale.fitting import compare_arms
from slscale.fitting.reference import load_reference
from slscale.fitting.results import Estimate, FitResult
from slscale.models.evaluate import Convention
from slscale.spec import RunState
from slscale.store import open_store
from slscale.workflows.demo_checks import science_checks

# ("h1"/"h2", text) | ("p", text) | ("table", (header, rows)) | ("img", path) | ("raw", md)
Block = tuple[str, Any]


def write_report(workdir: Path, scale: str, timings: dict[str, float]) -> Path:
    """Write ``report.md`` and ``report.html`` in ``workdir``; return the Markdown path."""
    fits = StudyFits.load(workdir / "figures" / "fits")
    with open_store(workdir) as store:
        runs, evals = store.runs_frame(), store.evals_frame()
    blocks = _blocks(workdir, scale, fits, runs, evals, timings)
    (workdir / "report.md").write_text(_markdown(blocks), encoding="utf-8")
    (workdir / "report.html").write_text(_html(blocks), encoding="utf-8")
    return workdir / "report.md"


def _blocks(
    workdir: Path,
    scale: str,
    fits: StudyFits,
    runs: pd.DataFrame,
    evals: pd.DataFrame,
    timings: dict[str, float],
) -> list[Block]:
    ok = runs[runs["state"] == RunState.SUCCEEDED]
    blocks: list[Block] = [
        ("h1", f"slscale demo ({scale}): interleaved vs textless SLMs in miniature"),
        (
            "p",
            f"{len(ok)} runs trained with DeepSpeed through the Ray scheduler on the "
            f"synthetic speech-text world, {ok['flops_6nd'].sum():.3g} FLOPs (6ND) in all; "
            f"each evaluated on sSC/tSC/sBLIMP/sWUGGY-like pair sets. Stage times (s): "
            + ", ".join(f"{k} {v}" for k, v in timings.items() if k != "report")
            + ".",
        ),
    ]
    blocks += _findings(fits)
    blocks += _margin_findings(fits)
    blocks += _checks(workdir)
    blocks += _chance_finding(evals)
    blocks += _law_tables(fits)
    blocks += _ablation(runs, evals)
    blocks += _tables(workdir)
    blocks += _figures(workdir)
    blocks += [
        ("h2", "Fits that could not be made"),
        ("p", "; ".join(f"{k}: {v}" for k, v in fits.skipped.items()) or "none"),
    ]
    return blocks


def _ci(est: Estimate, digits: int = 3) -> str:
    if est.ci is None or not all(map(math.isfinite, est.ci)):
        return f"{est.value:.{digits}g}"
    return f"{est.value:.{digits}g} [{est.ci[0]:.{digits}g}, {est.ci[1]:.{digits}g}]"


def _exp(fit: FitResult, name: str) -> str:
    low, high = fit.ci.get(name, (math.nan, math.nan))
    return _ci(Estimate(value=fit.exponents[name], ci=(low, high)))


def _findings(fits: StudyFits) -> list[Block]:
    blocks: list[Block] = [("h2", "Findings")]
    items = []
    for bench in ("sSC", "tSC"):
        laws = fits.by_arm("metric", bench)
        if {"interleaved", "textless"} <= set(laws):
            items.append(_metric_finding(bench, laws["interleaved"], laws["textless"]))
    alloc = fits.by_arm("approach3")
    if {"interleaved", "textless"} <= set(alloc):
        items.append(_allocation_finding(alloc["interleaved"], alloc["textless"]))
    if not items:
        items.append("Both arms need fitted laws for a comparison; see the skipped fits below.")
    blocks += [("p", item) for item in items]
    return blocks


CHANCE_BAND = 0.05
"""Scores within this of 0.5 (pair accuracy by chance) are called near chance."""


def _metric_finding(bench: str, inter: FitResult, textless: FitResult) -> str:
    cmp = compare_arms(inter, textless)
    e_i, e_t = cmp.exponents
    faster = "interleaved" if e_i.value > e_t.value else "textless"
    sims_i, sims_t = (_sims_exponent(arm, bench) for arm in ("interleaved", "textless"))
    sims_faster = "interleaved" if sims_i > sims_t else "textless"
    agrees = "agrees with" if faster == sims_faster else "does not reproduce"
    sims = f"SIMS Fig. 1 (interleaved C^{sims_i}, textless C^{sims_t})"
    text = (
        f"{bench}: the best interleaved run per budget scales as C^{_ci(e_i)}, the best "
        f"textless one as C^{_ci(e_t)}; "
    )
    if not any(_above_zero(e) for e in (e_i, e_t)):
        text += (
            f"neither arm's best {bench} improves measurably with compute at this scale (no "
            f"95 % interval lies above zero), so the miniature does not test {sims}."
        )
    else:
        text += f"{faster} scales faster, which {agrees} {sims}."
    degenerate = [
        arm
        for arm, e in zip(("interleaved", "textless"), (e_i, e_t), strict=True)
        if e.ci is None or e.ci[0] == e.ci[1]
    ]
    if degenerate:
        text += (
            f" With {min(inter.n_points, textless.n_points)} budgets the bootstrap gives "
            "no interval; more budgets are needed to tell the slopes apart."
        )
    elif e_i.ci and e_t.ci and e_i.ci[0] <= e_t.ci[1] and e_t.ci[0] <= e_i.ci[1]:
        text += " The intervals overlap: the miniature does not separate the two slopes."
    return text


def _sims_exponent(arm: str, bench: str) -> float:
    """The exponent b of the arm's law Q = a·C^b in SIMS Fig. 1, as the package ships it."""
    return load_reference(f"sims2025_{arm}_{bench.lower()}").exponents["b"]


def _margin_findings(fits: StudyFits) -> list[Block]:
    """How each arm's best log-likelihood margin grows with compute (nats per decade)."""
    items = []
    for bench in ("sSC", "tSC"):
        laws = fits.by_arm("margin", bench)
        if not laws:
            continue
        parts = [
            f"{arm} {_exp(fit, 's')} nats per decade (margin {fit.params['m']:.3g} at 1e12)"
            for arm, fit in laws.items()
        ]
        text = (
            f"{bench} log-likelihood margin (correct minus wrong ending, mean per token, best "
            f"run per budget) against compute: " + "; ".join(parts) + "."
        )
        if {"interleaved", "textless"} <= set(laws):
            text += " " + _margin_comparison(laws["interleaved"], laws["textless"])
        items.append(text)
    return [("p", item) for item in items]


def _margin_comparison(inter: FitResult, textless: FitResult) -> str:
    e_i, e_t = compare_arms(inter, textless).exponents
    if not any(_above_zero(e) for e in (e_i, e_t)):
        return "Neither arm's margin grows measurably with compute."
    if e_i.ci and e_t.ci and (e_i.ci[0] > e_t.ci[1] or e_t.ci[0] > e_i.ci[1]):
        faster = "interleaved" if e_i.value > e_t.value else "textless"
        return f"The intervals do not overlap: the {faster} arm's margin grows faster."
    return "The intervals overlap: the margins do not separate the two arms' slopes."


def _checks(workdir: Path) -> list[Block]:
    """What a sound study and the SIMS findings ask of the miniature, each with its numbers."""
    rows = [[c.claim, "yes" if c.holds else "no", c.numbers] for c in science_checks(workdir)]
    held = sum(r[1] == "yes" for r in rows)
    return [
        ("h2", "What the miniature shows"),
        ("p", f"{held} of {len(rows)} checks hold (standard errors are binomial, n pairs)."),
        ("table", (["claim", "holds", "numbers"], rows)),
    ]


def _above_zero(est: Estimate) -> bool:
    """The estimate's interval (or, without one, its value) lies above zero."""
    return (est.ci[0] if est.ci is not None else est.value) > 0


def _chance_finding(evals: pd.DataFrame) -> list[Block]:
    """Say so when the miniature's models stay near chance on a benchmark (S→S)."""
    scores = evals[
        (evals["variant"] == "S") & (evals["convention"] == Convention.parse("slamkit").name)
    ]
    best = scores.groupby("benchmark")["value"].max()
    near = [f"{b} (best {v:.2f})" for b, v in best.items() if abs(v - 0.5) <= CHANCE_BAND]
    if not near:
        return []
    return [
        (
            "p",
            "Near chance at this scale, speech to speech: " + ", ".join(near) + ". "
            "Laws fitted to these scores describe noise more than learning; a larger "
            "--scale trains longer.",
        )
    ]


def _allocation_finding(inter: FitResult, textless: FitResult) -> str:
    a_i, a_t = _exp(inter, "a"), _exp(textless, "a")
    more_n = inter.exponents["a"] > textless.exponents["a"]
    verdict = (
        "so, as SIMS argues, the interleaved arm should put more of its compute into model size"
        if more_n
        else "which does not reproduce the SIMS claim that "
        "interleaved SLMs should put more compute into model size"
    )
    return (
        f"Compute-optimal allocation (Approach 3): N_opt ∝ C^a with a = {a_i} interleaved "
        f"and {a_t} textless, {verdict}."
    )


def _law_tables(fits: StudyFits) -> list[Block]:
    rows = []
    for entry in fits.entries:
        res = entry.result
        exps = ", ".join(f"{k} = {_exp(res, k)}" for k in res.exponents)
        held = (res.extrapolation or {}).get("mean_abs_rel_error")
        held_s = f"{held:.3g}" if isinstance(held, (int, float)) else "n/a"
        rows.append(
            [
                entry.kind,
                entry.arm,
                entry.benchmark or "loss",
                str(res.n_points),
                exps or "—",
                held_s,
            ]
        )
    header = ["fit", "arm", "target", "points", "exponents (95% CI)", "held-out rel. error"]
    return [("h2", "Fitted laws"), ("table", (header, rows))]


def _ablation(runs: pd.DataFrame, evals: pd.DataFrame) -> list[Block]:
    if "mix.synthetic_share" not in runs or runs["mix.synthetic_share"].nunique() < 2:
        return []
    shares = runs.groupby(["size", "tokens", "modality"])["mix.synthetic_share"].nunique()
    cell = shares[shares > 1]
    if cell.empty:
        return []
    size, tokens, modality = cell.index[0]
    group = runs[
        (runs["size"] == size) & (runs["tokens"] == tokens) & (runs["modality"] == modality)
    ].sort_values("mix.synthetic_share")
    slamkit = Convention.parse("slamkit").name
    scores = evals[(evals["variant"] == "S") & (evals["convention"] == slamkit)]
    header = ["synthetic share", "val loss", "sSC", "tSC", "sBLIMP", "sWUGGY"]
    rows = []
    for _, run in group.iterrows():
        mine = scores[scores["run_id"] == run["run_id"]].set_index("benchmark")["value"]
        rows.append(
            [f"{run['mix.synthetic_share']:g}", _num(run.get("val_loss"))]
            + [_num(mine.get(b)) for b in header[2:]]
        )
    note = (
        f"{modality} runs of {size} on {tokens:,} tokens; 0 = real (multi-speaker) speech "
        "only, 1 = synthetic single-voice speech only (SIMS Table 1 layout)."
    )
    return [("h2", "Synthetic-speech ablation"), ("p", note), ("table", (header, rows))]


def _num(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, (int, float)) and math.isfinite(value) else "—"


def _tables(workdir: Path) -> list[Block]:
    """The paper-layout tables `slscale figures` wrote (cross-modal, published comparison)."""
    blocks: list[Block] = []
    for name, title in (
        ("crossmodal", "Cross-modal results (SIMS Table 2 layout)"),
        ("published_comparison", "Against published SLMs (SIMS Table 3 layout)"),
    ):
        path = workdir / "figures" / "tables" / f"{name}.md"
        if path.exists():
            blocks += [("h2", title), ("raw", path.read_text(encoding="utf-8").strip())]
    return blocks


def _figures(workdir: Path) -> list[Block]:
    pngs = sorted((workdir / "figures").glob("*.png"))
    blocks: list[Block] = [("h2", "Figures")]
    blocks += [("img", p.relative_to(workdir).as_posix()) for p in pngs]
    return blocks


def _markdown(blocks: Sequence[Block]) -> str:
    out = []
    for kind, value in blocks:
        if kind in ("h1", "h2"):
            out.append(("#" if kind == "h1" else "##") + f" {value}")
        elif kind == "p":
            out.append(str(value))
        elif kind == "img":
            out.append(f"![{Path(value).stem}]({value})")
        elif kind == "raw":
            out.append(str(value))
        elif kind == "table":
            header, rows = value
            lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            lines += ["| " + " | ".join(r) + " |" for r in rows]
            out.append("\n".join(lines))
    return "\n\n".join(out) + "\n"


def _html(blocks: Sequence[Block]) -> str:
    body = []
    for kind, value in blocks:
        if kind in ("h1", "h2"):
            body.append(f"<{kind}>{html.escape(str(value))}</{kind}>")
        elif kind == "p":
            body.append(f"<p>{html.escape(str(value))}</p>")
        elif kind == "raw":
            body.append(f"<pre>{html.escape(str(value))}</pre>")
        elif kind == "img":
            body.append(
                f'<figure><img src="{html.escape(value)}" alt="{Path(value).stem}" '
                f'style="max-width:48%"><figcaption>{Path(value).stem}</figcaption>'
                "</figure>"
            )
        elif kind == "table":
            header, rows = value
            head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
            cells = "".join(
                "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows
            )
            body.append(f"<table border='1' cellpadding='4'><tr>{head}</tr>{cells}</table>")
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>slscale demo</title>"
        "</head><body style='font-family:sans-serif;max-width:60em;margin:auto'>"
        + "\n".join(body)
        + "</body></html>\n"
    )
