"""A synthetic study with known laws, written through the real store API.

Two arms (interleaved, textless) each follow a parametric loss L(N, D) = E + A/N^α + B/D^β
on an IsoFLOP grid of four budgets × five sizes centred on the compute-optimal N; every run
logs a training curve along the same law, and its final checkpoint is scored on sSC and tSC
by a metric law a·C^b minus a penalty for being off the optimal size (so the best run per
budget sits on the law). Extra runs make the tables and the TextLM-family figure: an
interleaved synthetic-data ablation, a second TextLM family (qwen2), cross-modal and
multi-speaker variants, sBLIMP and sWUGGY, and one FAILED run that must never show up.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from slscale.analysis import commands
from slscale.fitting.laws import optimal_allocation, parametric_loss
from slscale.identity import run_id
from slscale.spec import DataMix, RunSpec, RunState, spec_to_dict
from slscale.store import EvalResult, Metric, open_store

BUDGETS = (1e18, 3e18, 1e19, 3e19)
SIZES_PER_BUDGET = 5
SPAN_DEX = 1.0
CURVE_POINTS = 16
CONVENTION = "nll=mean,span=sequence,softmax=full"  # the evaluator's SlamKit name

LAWS = {
    "interleaved": {"E": 1.55, "A": 12.0, "B": 60.0, "alpha": 0.24, "beta": 0.30},
    "textless": {"E": 1.75, "A": 15.0, "B": 42.0, "alpha": 0.26, "beta": 0.24},
}
"""Parametric loss of each arm: interleaved puts more compute into N (a = 0.56 vs 0.48)."""
METRIC_LAWS = {
    ("interleaved", "sSC"): (0.20, 0.025),
    ("interleaved", "tSC"): (0.38, 0.018),
    ("textless", "sSC"): (0.26, 0.017),
    ("textless", "tSC"): (0.24, 0.025),
}
"""(a, b) of Q(C) = a·C^b for the best run per budget."""
OFF_OPTIMUM_PENALTY = 0.03
"""Score lost per squared decade between a run's N and N_opt(C)."""


@dataclasses.dataclass
class Run:
    arm: str
    n_params: float
    tokens: int
    family: str = "llama"
    synthetic_share: float = 0.0
    seed: int = 0
    state: RunState = RunState.SUCCEEDED

    @property
    def flops(self) -> float:
        return 6.0 * self.n_params * self.tokens

    def spec(self) -> RunSpec:
        textless = self.arm == "textless"
        shares = (
            {"speech_share": 1.0}
            if textless
            else {"text_share": 0.334, "interleaved_share": 0.333, "speech_share": 0.333}
        )
        return RunSpec(
            family=self.family,
            modality=self.arm,  # type: ignore[arg-type]
            tokens=self.tokens,
            size=f"{self.n_params / 1e6:.4g}M",
            init="scratch"
            if textless
            else f"/ckpt/textlm-{self.family}-{self.n_params / 1e6:.0f}m",
            mix=DataMix(synthetic_share=self.synthetic_share, dataset="synthetic", **shares),
            seed=self.seed,
            units_only_vocab=textless,
        )

    @property
    def id(self) -> str:
        return run_id(self.spec())


def scaling_runs() -> list[Run]:
    """The IsoFLOP grid of both arms, sizes centred on each law's N_opt(C)."""
    runs = []
    for arm, law in LAWS.items():
        for budget in BUDGETS:
            n_opt, _ = optimal_allocation(
                budget, A=law["A"], B=law["B"], alpha=law["alpha"], beta=law["beta"]
            )
            for n in float(n_opt) * np.logspace(-SPAN_DEX / 2, SPAN_DEX / 2, SIZES_PER_BUDGET):
                runs.append(Run(arm=arm, n_params=float(f"{n:.4g}"), tokens=int(budget / (6 * n))))
    return runs


def ablation_runs() -> list[Run]:
    """Synthetic-share ablation, a second TextLM family, and a failed run."""
    grid = [r for r in scaling_runs() if r.arm == "interleaved" and r.flops > 0.9e19][1:3]
    out = [dataclasses.replace(r, synthetic_share=s) for r in grid for s in (0.5, 1.0)]
    out += [
        Run(arm="interleaved", n_params=n, tokens=int(1e19 / (6 * n)), family="qwen2")
        for n in (1.5e8, 3e8, 6e8)
    ]
    out.append(
        Run(arm="textless", n_params=5e7, tokens=int(1e18 / 3e8), seed=7, state=RunState.FAILED)
    )
    return out


def build_store(workdir: Path, *, with_evals: bool = True, with_curves: bool = True) -> dict:
    """Write the synthetic study into ``workdir``'s store; return its runs by id."""
    rng = np.random.default_rng(1234)
    runs = {r.id: r for r in scaling_runs() + ablation_runs()}
    with open_store(workdir) as store:
        store.register({rid: spec_to_dict(r.spec()) for rid, r in runs.items()})
        for rid, run in runs.items():
            _write_run(store, rid, run, rng, with_evals=with_evals, with_curves=with_curves)
    return runs


def _law(run: Run) -> dict[str, float]:
    law = dict(LAWS[run.arm])
    if run.family == "qwen2":
        law["E"] -= 0.03  # the second family transfers a little better
    law["E"] -= 0.02 * run.synthetic_share
    return law


def _write_run(
    store: Any, rid: str, run: Run, rng: Any, *, with_evals: bool, with_curves: bool
) -> None:
    if run.state != RunState.SUCCEEDED:
        store.set_state(rid, run.state, error="synthetic failure")
        return
    law = _law(run)
    tokens = np.unique(np.geomspace(0.02 * run.tokens, run.tokens, CURVE_POINTS).astype(int))
    curve = parametric_loss(run.n_params, tokens, **law) * np.exp(rng.normal(0, 0.001, tokens.size))
    steps = np.arange(1, tokens.size + 1) * 10
    if with_curves:
        store.log_metrics(
            Metric(
                run_id=rid,
                step=int(s),
                name="loss",
                value=float(v),
                tokens=int(t),
                flops=6.0 * run.n_params * float(t),
            )
            for s, t, v in zip(steps, tokens, curve, strict=True)
        )
    store.set_summary(
        rid,
        {
            "n_params": run.n_params,
            "n_params_non_embedding": 0.9 * run.n_params,
            "tokens": int(tokens[-1]),
            "flops_6nd": run.flops,
            "flops_exact": 1.04 * run.flops,
            "loss": float(curve[-1]),
            "val_loss": float(curve[-1]) + 0.01,
        },
    )
    if with_evals:
        store.log_evals(_evals(rid, run, int(steps[-1]), rng))
    store.set_state(rid, RunState.SUCCEEDED)


def metric_value(run: Run, benchmark: str) -> float:
    """The noiseless score of a run (law minus the off-optimum penalty, plus ablation gains)."""
    a, b = METRIC_LAWS[(run.arm, benchmark)]
    law = LAWS[run.arm]
    n_opt, _ = optimal_allocation(
        run.flops, A=law["A"], B=law["B"], alpha=law["alpha"], beta=law["beta"]
    )
    off = float(np.log10(run.n_params / n_opt))
    bonus = 0.02 * run.synthetic_share + (0.015 if run.family == "qwen2" else 0.0)
    return a * run.flops**b - OFF_OPTIMUM_PENALTY * off**2 + bonus


MARGIN_PER_ACCURACY = 0.4
"""The synthetic study's log-likelihood margin: this many nats per point of accuracy above
chance (zero at chance, as a real model's mean margin is)."""


def _evals(rid: str, run: Run, step: int, rng: Any) -> Iterable[EvalResult]:
    def row(benchmark: str, variant: str, value: float, at: int = step) -> EvalResult:
        accuracy = float(np.clip(value + rng.normal(0, 0.001), 0, 1))
        return EvalResult(
            run_id=rid,
            step=at,
            benchmark=benchmark,
            variant=variant,
            value=accuracy,
            n_items=1871,
            convention=CONVENTION,
            margin=MARGIN_PER_ACCURACY * (accuracy - 0.5),
        )

    ssc, tsc = metric_value(run, "sSC"), metric_value(run, "tSC")
    rows = [
        row("sSC", "S", ssc),
        row("tSC", "S", tsc),
        row("sSC", "S", ssc - 0.05, step // 2),
        row("sBLIMP", "S", 0.5 + 0.3 * (ssc - 0.5)),
        row("MS-sSC", "S", ssc - 0.01),
    ]
    if run.arm == "textless":
        rows.append(row("sWUGGY", "S", 0.6 + 0.2 * (tsc - 0.5)))
    else:
        rows += [
            row("sSC", "S2T", ssc + 0.04),
            row("sSC", "T2S", ssc + 0.02),
            row("sSC", "T", ssc + 0.1),
            row("tSC", "S2T", tsc + 0.05),
            row("tSC", "T2S", tsc + 0.03),
            row("tSC", "T", min(tsc + 0.1, 0.99)),
        ]
    return rows


WHERE = ("--where", "family=llama", "--where", "mix.synthetic_share=0")
"""The scaling runs of the synthetic study (its ablation runs stay out of the laws)."""
BOOTSTRAP = ("--bootstrap", "100")


def run_figures(argv: Sequence[str]) -> str:
    """Run ``slscale figures ARGV`` through the command's own parser; return its stdout."""
    parser = argparse.ArgumentParser(prog="slscale")
    commands.add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["figures", *argv])
    out = io.StringIO()
    with contextlib.redirect_stdout(out), warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # e.g. a layout that does not fit
        assert args.func(args) == 0
    return out.getvalue()
