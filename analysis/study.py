"""A study as three tidy tables read from the results store: runs, curves, scores.

* ``runs``: one row per SUCCEEDED run with the columns every figure uses — ``arm`` (the
  run's modality: interleaved, textless, text), ``n_params`` (all parameters, SIMS's N),
  ``tokens`` (tokens trained on), ``flops`` (6·N·D, SIMS's C), ``loss`` — next to the
  flattened spec (family, init, mix.synthetic_share, ...).
* ``curves``: the training-loss curve of each run (run_id, step, tokens, flops, loss).
* ``scores``: each run's final evaluation per benchmark and variant, with benchmark and
  variant names spelled as the evaluation suite spells them (``sSC``, ``MS-sSC``; ``S``,
  ``S2T``, ``T2S``, ``T``: :mod:`slscale.models.evaluate.suite`) so the spellings of other
  evaluators (``ssc``/``ss``/``S→T``) meet; :func:`variant_label` writes ``S→T`` for display.

Scaling fits use the runs that match ``where`` filters (``KEY=VALUE`` on any runs column),
so ablation runs kept in the same store (other data mixes, other TextLM families) do not
bend the laws; tables and the TextLM-family figure use every run. WSD ladder trunks, whose
rate never decayed, are left out of every table unless asked for (their branches are the
ladder's points).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import pandas as pd

from slscale.compute import flops_6nd
from slscale.errors import ConfigError
from slscale.fitting import sources
from slscale.identity import init_name
from slscale.models.evaluate import suite
from slscale.models.evaluate.conventions import SLAMKIT

VARIANT_ORDER = suite.VARIANTS
"""Cross-modal variants, prompt→continuation modality (SIMS Table 2), as stored."""
SIMS_CONVENTION = SLAMKIT.name
"""SlamKit's scoring (mean NLL of the whole sequence), as the evaluator names it: the one
SIMS reports, shown first when scores were recorded under several conventions."""


def variant_label(variant: str) -> str:
    """How tables write a variant: 'S2T' -> 'S→T' (SIMS Table 2), 'S' -> 'S'."""
    return variant.replace("2", "→") if variant in suite.VARIANTS else variant


def canonical_benchmark(name: str) -> str:
    """'ssc' -> 'sSC', 'ms_tsc' -> 'MS-tSC'; unknown names are kept."""
    base, multi = suite.split_multi_speaker(str(name))
    canonical = suite.BENCHMARKS.get(base.lower(), base)
    return suite.multi_speaker(canonical) if multi else canonical


def canonical_variant(name: str) -> tuple[str, bool]:
    """('ss' -> 'S', 'S→T' -> 'S2T', ...) and whether the variant was multi-speaker; unknown
    variants are kept."""
    base, multi = suite.split_multi_speaker(str(name))
    variant = suite.read_variant(base)
    return (base if variant is None else variant), multi


@dataclasses.dataclass(frozen=True, kw_only=True)
class Study:
    """The tables figures and fits are drawn from."""

    runs: pd.DataFrame
    """One row per succeeded run (see the module docstring for the columns)."""
    curves: pd.DataFrame
    """Training-loss curves: run_id, step, tokens, flops, loss."""
    scores: pd.DataFrame
    """Final-checkpoint scores: run_id, step, benchmark, variant, value, n_items, convention."""
    scaling_ids: frozenset[str]
    """Runs the scaling fits use (those matching the ``where`` filters)."""
    source: str = ""
    """Where the tables came from (named in figure notes and errors)."""
    notes: tuple[str, ...] = ()
    """What was left out or chosen while loading (printed by the command)."""

    @property
    def arms(self) -> list[str]:
        """Arms of the scaling runs, interleaved first, then textless, then the rest."""
        present = set(self.scaling_runs()["arm"])
        order = ["interleaved", "textless", "text"]
        return [a for a in order if a in present] + sorted(present - set(order))

    def scaling_runs(self, arm: str | None = None) -> pd.DataFrame:
        runs = self.runs[self.runs["run_id"].isin(self.scaling_ids)]
        return runs if arm is None else runs[runs["arm"] == arm]

    def arm_curves(self, arm: str) -> pd.DataFrame:
        """Curves of the arm's scaling runs, with each run's n_params."""
        runs = self.scaling_runs(arm)[["run_id", "n_params"]]
        return self.curves.merge(runs, on="run_id")

    def arm_scores(
        self, arm: str, benchmark: str, variant: str = suite.SPEECH_ONLY
    ) -> pd.DataFrame:
        """Scores of the arm's scaling runs on one benchmark, with each run's FLOPs and N."""
        runs = self.scaling_runs(arm)[["run_id", "n_params", "tokens", "flops"]]
        return select_scores(self.scores, benchmark, variant).merge(runs, on="run_id")


def select_scores(
    scores: pd.DataFrame, benchmark: str, variant: str = suite.SPEECH_ONLY
) -> pd.DataFrame:
    """Rows of one benchmark; its only variant when it has one, else ``variant``."""
    rows = scores[scores["benchmark"] == benchmark]
    variants = set(rows["variant"])
    if len(variants) > 1:
        rows = rows[rows["variant"] == variant]
    return rows


def study_from_frames(
    runs: pd.DataFrame,
    metrics: pd.DataFrame,
    evals: pd.DataFrame,
    *,
    where: Sequence[str] = (),
    loss_name: str = "loss",
    convention: str | None = None,
    source: str = "",
    include_trunks: bool = False,
) -> Study:
    """Build a :class:`Study` from the store's runs, metrics and evals frames (WSD ladder
    trunks left out unless ``include_trunks``)."""
    notes: list[str] = []
    if not include_trunks:
        runs = _without_trunks(runs, notes)
    table = _runs_table(runs, loss_name, notes)
    curves = _curves(metrics, table, loss_name)
    scores = _scores(evals, table, convention, notes)
    scaling = _where(table, where)
    return Study(
        runs=table,
        curves=curves,
        scores=scores,
        scaling_ids=frozenset(scaling["run_id"]),
        source=source,
        notes=tuple(notes),
    )


def load_study(
    target: str,
    *,
    where: Sequence[str] = (),
    loss_name: str = "loss",
    convention: str | None = None,
    include_trunks: bool = False,
) -> Study:
    """Read a study from the store at ``target`` (a workdir, SQLite file or URL)."""
    from slscale.store import read_store

    with read_store(target) as store:
        runs, evals = store.runs_frame(), store.evals_frame()
        metrics = store.metrics_frame(names=[loss_name])
    return study_from_frames(
        runs,
        metrics,
        evals,
        where=where,
        loss_name=loss_name,
        convention=convention,
        source=f"store {target}",
        include_trunks=include_trunks,
    )


def _without_trunks(runs: pd.DataFrame, notes: list[str]) -> pd.DataFrame:
    """``runs`` without WSD ladder trunks: their rate never decayed, so their final losses and
    scores are not points of a law (their branches are)."""
    trunks = sources.trunk_rows(runs)
    if trunks.any():
        notes.append(
            f"left out {int(trunks.sum())} WSD trunk(s), whose rate never decayed "
            "(--include-trunks keeps them)"
        )
    return runs[~trunks]


def _runs_table(runs: pd.DataFrame, loss_name: str, notes: list[str]) -> pd.DataFrame:
    if runs.empty:
        raise ConfigError("the store has no runs; launch a sweep first (slscale sweep launch)")
    table = runs[runs["state"] == "SUCCEEDED"].copy()
    if len(table) < len(runs):
        notes.append(f"left out {len(runs) - len(table)} run(s) that have not SUCCEEDED")
    table["arm"] = table["modality"].astype(str) if "modality" in table else "all"
    table["tokens"] = _first_column(table, ("summary.tokens", "tokens"))
    table["n_params"] = _first_column(table, ("n_params",))
    table["flops"] = _first_column(table, ("flops_6nd",)).fillna(
        flops_6nd(table["n_params"], table["tokens"])
    )
    table["loss"] = _first_column(table, (f"summary.{loss_name}", loss_name))
    inits = table["init"] if "init" in table else pd.Series("scratch", index=table.index)
    table["init_name"] = [init_name(str(i)) for i in inits]
    incomplete = table[["n_params", "tokens", "loss"]].isna().any(axis=1)
    if incomplete.any():
        shown = ", ".join(table.loc[incomplete, "run_id"].astype(str).head(3))
        notes.append(
            f"left out {int(incomplete.sum())} run(s) without n_params/tokens/loss: {shown}"
        )
        table = table[~incomplete]
    return table.sort_values("run_id").reset_index(drop=True)


def _first_column(table: pd.DataFrame, names: Sequence[str]) -> pd.Series:
    for name in names:
        if name in table.columns:
            return pd.to_numeric(table[name], errors="coerce").astype("float64")
    return pd.Series(np.nan, index=table.index, dtype="float64")


def _curves(metrics: pd.DataFrame, runs: pd.DataFrame, loss_name: str) -> pd.DataFrame:
    rows = metrics[(metrics["name"] == loss_name) & metrics["run_id"].isin(runs["run_id"])]
    rows = rows.dropna(subset=["tokens", "value"])
    frame = pd.DataFrame(
        {
            "run_id": rows["run_id"].astype(str),
            "step": rows["step"].astype("int64"),
            "tokens": rows["tokens"].astype("float64"),
            "flops": rows["flops"].astype("float64"),
            "loss": rows["value"].astype("float64"),
        }
    )
    return frame.sort_values(["run_id", "step"]).reset_index(drop=True)


def _scores(
    evals: pd.DataFrame, runs: pd.DataFrame, convention: str | None, notes: list[str]
) -> pd.DataFrame:
    rows = evals[evals["run_id"].isin(runs["run_id"])].copy()
    if rows.empty:
        return rows.assign(benchmark=[], variant=[])
    named = [canonical_variant(v) for v in rows["variant"]]
    rows["benchmark"] = [
        canonical_benchmark(suite.multi_speaker(str(b)) if multi else str(b))
        for b, (_, multi) in zip(rows["benchmark"], named, strict=True)
    ]
    rows["variant"] = [v for v, _ in named]
    rows = _one_convention(rows, convention, notes)
    last = rows.groupby(["run_id", "benchmark", "variant"])["step"].transform("max")
    rows = rows[rows["step"] == last]
    return rows.sort_values(["run_id", "benchmark", "variant"]).reset_index(drop=True)


def _one_convention(rows: pd.DataFrame, convention: str | None, notes: list[str]) -> pd.DataFrame:
    present = rows["convention"].astype(str).value_counts()
    if convention is not None:
        if convention not in present.index:
            raise ConfigError(
                f"--convention {convention!r}: no scores use it; the store has "
                f"{', '.join(sorted(present.index))}"
            )
        return rows[rows["convention"] == convention]
    if len(present) > 1:
        chosen = _default_convention(present)
        notes.append(
            f"scores use several conventions ({', '.join(sorted(present.index))}); showing "
            f"'{chosen}' (pick one with --convention)"
        )
        return rows[rows["convention"] == chosen]
    return rows


def _default_convention(counts: pd.Series) -> str:
    """SIMS's convention when present, else the most used one (ties: by name)."""
    if SIMS_CONVENTION in counts.index:
        return SIMS_CONVENTION
    return str(sorted(counts.index, key=lambda c: (-counts[c], c))[0])


def _where(table: pd.DataFrame, filters: Sequence[str]) -> pd.DataFrame:
    """The runs matching every ``KEY=VALUE`` filter, as ``slscale fit`` reads ``--where``."""
    return sources.select(table, filters, source="the store's runs", rows="succeeded runs")
