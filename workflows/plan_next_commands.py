"""``slscale plan-next`` and ``slscale recommend``: close the loop plan → launch → fit → plan.

``plan-next`` fits the arm's runs (Approach 3, bootstrap), then picks the new (N, D) cells
that shrink the interval of one quantity most within a compute budget
(:mod:`slscale.fitting.design`) and writes them as a grid that ``sweep launch`` accepts.
``recommend`` gives the compute-optimal (N, D) at a target compute with intervals, the
predicted loss and scores, and the nearest model the family builds with its resource plan.
Rows come from the store (``--workdir``/``--store``, ``--where`` filters), a CSV file or a
saved Approach-3 fit (``--fit``), as for ``slscale fit``.
"""

from __future__ import annotations

import argparse
import json
import math
from typing import Any

import numpy as np
import pandas as pd

from slscale.errors import ConfigError
from slscale.fitting import sources
from slscale.fitting.design import Selection
from slscale.sweep.resources import GPU_TYPES, get_gpu_type
from slscale.workflows import plan_next
from slscale.workflows.plan_next_data import Design, Study, StudyInputs, load_study

QUANTITY_CHOICES = ("a", "b", "n_opt", "d_opt", "tokens_per_param", "loss", "metric")
PLAN_TEXT = """\
Fit the arm's runs (Approach 3 with bootstrap), then choose the new (N, D) runs that
shrink the interval of one quantity most per unit of compute, within a budget: the
exponent a or b, or N_opt, D_opt, D/N, the loss or a score at --target-flops. Prints the
runs in the order chosen with the interval width expected after each; --out writes them
as a grid for `slscale sweep launch`; --check verifies the expected width by refitting
simulated studies. See docs/plan_next.md."""
RECOMMEND_TEXT = """\
The compute-optimal N and D at --target-flops with intervals, the predicted loss (and
scores named by --benchmark/--metric-col), and the nearest model the family builds with
its resource plan on --gpu. N is in the fit's convention (total parameters by default)."""


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``slscale plan-next`` and ``slscale recommend``."""
    p = sub.add_parser(
        "plan-next",
        help="choose the next runs that narrow a scaling-law interval most per FLOP",
        description=PLAN_TEXT,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _data_arguments(p)
    _arm_arguments(p)
    q = p.add_argument_group("question and budget")
    q.add_argument(
        "--quantity",
        choices=QUANTITY_CHOICES,
        default="a",
        help="a, b (exponents); n_opt, d_opt, tokens_per_param, loss or a metric "
        "at --target-flops (default a)",
    )
    q.add_argument("--target-flops", type=float, help="C* for quantities taken at a compute")
    q.add_argument("--budget-flops", type=float, help="total 6ND FLOPs of the new runs")
    q.add_argument("--budget-gpu-hours", type=float, help="total GPU-hours on --gpu instead")
    q.add_argument("--max-runs", type=int, help="at most this many new runs")
    c = p.add_argument_group("candidate cells")
    c.add_argument(
        "--sizes",
        action="append",
        default=[],
        metavar="S1,S2,...",
        help="sizes to consider: presets or non-embedding targets (85M); default: "
        "a log-spaced ladder the family builds",
    )
    c.add_argument(
        "--per-decade", type=int, default=8, help="sizes and compute levels per decade (8)"
    )
    c.add_argument(
        "--min-size",
        help="smallest N to consider, e.g. 20M (default: the smallest model done; smaller "
        "models rely on the law holding below the data)",
    )
    c.add_argument(
        "--min-tokens",
        type=float,
        help="smallest D to consider (default: the smallest D done; fewer tokens rely on the "
        "law holding below the data)",
    )
    c.add_argument("--min-tokens-per-param", type=float, default=1.0, help="smallest D/N (1)")
    c.add_argument("--max-tokens-per-param", type=float, default=500.0, help="largest D/N (500)")
    c.add_argument("--draws", type=int, default=32, help="θ draws the criterion averages over")
    c.add_argument(
        "--check",
        type=int,
        default=0,
        metavar="REPLICAS",
        help="check the expected width by refitting this many simulated studies",
    )
    o = p.add_argument_group("output")
    o.add_argument("--out", help="write the chosen cells as a grid YAML (for sweep launch)")
    o.add_argument("--name", default="next", help="name of the written grid")
    o.add_argument("--json", metavar="OUT", help="write the plan as JSON")
    p.set_defaults(func=cmd_plan_next)

    r = sub.add_parser(
        "recommend",
        help="compute-optimal N, D, loss and model at a target compute",
        description=RECOMMEND_TEXT,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _data_arguments(r)
    _arm_arguments(r)
    r.add_argument("--target-flops", type=float, required=True, help="compute C* to plan for")
    r.add_argument("--json", metavar="OUT", help="write the recommendation as JSON")
    r.set_defaults(func=cmd_recommend)


def _data_arguments(p: argparse.ArgumentParser) -> None:
    src = p.add_argument_group("rows")
    src.add_argument("--csv", help="read rows from this CSV file")
    src.add_argument("--workdir", help="the study's folder (its store: <workdir>/results.db)")
    src.add_argument("--store", help="store path or URL (default: $SLSCALE_STORE or workdir's)")
    src.add_argument("--fit", help="a saved Approach-3 FitResult JSON instead of rows")
    sources.add_where(src, "keep rows (and base-grid runs) whose KEY equals VALUE")
    cols = p.add_argument_group("columns")
    cols.add_argument("--params-col", default="n_params", help="N (default n_params: total)")
    cols.add_argument("--tokens-col", help="D (default tokens; store: the run summary's tokens)")
    cols.add_argument("--flops-col", help="C (default flops; store: flops_6nd)")
    cols.add_argument("--loss-col", default="loss", help="final loss column (loss)")
    cols.add_argument(
        "--benchmark",
        action="append",
        default=[],
        help="store: a score to fit Q = a·C^b to (e.g. sSC; repeatable)",
    )
    cols.add_argument("--variant", help="store: benchmark variant")
    cols.add_argument(
        "--metric-col", action="append", default=[], help="CSV: a score column (repeatable)"
    )
    fit = p.add_argument_group("fit")
    fit.add_argument("--huber-delta", type=float, default=1e-3, help="Huber δ (1e-3)")
    fit.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples (1000)")
    fit.add_argument("--seed", type=int, default=0, help="seed of the bootstrap and the design")
    fit.add_argument("--confidence", type=float, default=0.95, help="interval coverage (0.95)")


def study_inputs(args: argparse.Namespace) -> StudyInputs:
    """The :class:`StudyInputs` of :func:`_data_arguments`' and :func:`_arm_arguments`'
    options."""
    return StudyInputs(
        csv=args.csv,
        workdir=args.workdir,
        store=args.store,
        fit=args.fit,
        where=tuple(args.where),
        params_col=args.params_col,
        tokens_col=args.tokens_col,
        flops_col=args.flops_col,
        loss_col=args.loss_col,
        benchmarks=tuple(args.benchmark),
        variant=args.variant,
        metric_cols=tuple(args.metric_col),
        huber_delta=args.huber_delta,
        bootstrap=args.bootstrap,
        seed=args.seed,
        confidence=args.confidence,
        base_grid=args.base_grid,
        family=args.family,
        modality=args.modality,
    )


def _arm_arguments(p: argparse.ArgumentParser) -> None:
    arm = p.add_argument_group("new runs")
    arm.add_argument("--base-grid", help="take the new runs' fields from this grid's runs")
    arm.add_argument("--family", help="model family when the rows carry no run specs")
    arm.add_argument("--modality", default="textless", help="with --family: the runs' modality")
    arm.add_argument(
        "--gpu",
        default="a100-80gb",
        choices=sorted(GPU_TYPES),
        help="GPU type of the resource plan (a100-80gb)",
    )
    arm.add_argument("--mfu", type=float, default=0.4, help="assumed MFU (0.4)")


# ----------------------------------------------------------------------------- plan-next


def cmd_plan_next(args: argparse.Namespace) -> int:
    budget, unit = _budget(args)
    study = load_study(study_inputs(args), metric=args.quantity == "metric")
    design = study.design(args.quantity, args.target_flops, args.draws)
    cells = _candidates(args, study, budget, unit)
    cheapest = cells.loc[cells["cost"].idxmin()]
    if cheapest["cost"] > budget:
        raise ConfigError(
            f"budget {budget:.4g} {unit} is smaller than the cheapest candidate cell "
            f"({cheapest['size']}, {int(cheapest['tokens'])} tokens: {cheapest['cost']:.4g} "
            f"{unit}); raise the budget or add smaller --sizes"
        )
    selection = study.select(design, cells, budget, args.max_runs)
    chosen = cells.iloc[selection.index].reset_index(drop=True)
    chosen["width_after"] = design.width_ * selection.width_ratio
    report = _plan_report(args, study, design, chosen, selection, budget, unit)
    if args.check:
        report["check"] = study.check(args.quantity, args.target_flops, chosen, args.check)
    print(format_plan(report))
    if args.out:
        _write_out(args, study, chosen, report)
    if args.json:
        _write_json(args.json, report)
    return 0


def _budget(args: argparse.Namespace) -> tuple[float, str]:
    given = [b for b in (args.budget_flops, args.budget_gpu_hours) if b is not None]
    if len(given) != 1:
        raise ConfigError("give the next round's budget: --budget-flops C or --budget-gpu-hours H")
    if not (math.isfinite(given[0]) and given[0] > 0):
        raise ConfigError(f"budget {given[0]!r}: must be a positive number")
    if not 0 < args.min_tokens_per_param <= args.max_tokens_per_param:
        raise ConfigError(
            f"--min-tokens-per-param {args.min_tokens_per_param:g} and --max-tokens-per-param "
            f"{args.max_tokens_per_param:g}: need 0 < min ≤ max"
        )
    if args.max_runs is not None and args.max_runs < 1:
        raise ConfigError(f"--max-runs {args.max_runs}: must be ≥ 1")
    for option, value, least in (("--per-decade", args.per_decade, 1), ("--draws", args.draws, 1)):
        if value < least:
            raise ConfigError(f"{option} {value}: must be ≥ {least}")
    if args.check and args.check < 10:
        raise ConfigError(f"--check {args.check}: simulate at least 10 studies (e.g. 200)")
    _check_mfu(args.mfu)
    if args.quantity == "metric" and not (args.benchmark or args.metric_col):
        raise ConfigError("--quantity metric needs the score: --benchmark NAME or --metric-col")
    return (given[0], "FLOPs") if args.budget_flops is not None else (given[0], "GPU-hours")


def _candidates(args: argparse.Namespace, study: Study, budget: float, unit: str) -> pd.DataFrame:
    """Sizes × compute levels from the smallest done up to what one run of the budget buys
    (at least the cheapest cell, so that a too small budget is reported as such)."""
    gpu_flops = 3600 * get_gpu_type(args.gpu).peak_flops * args.mfu
    fewest, tpp = study.tokens_floor(args.min_tokens), args.min_tokens_per_param
    top = budget if unit == "FLOPs" else budget * gpu_flops
    top = max(top, plan_next.cheapest_flops(study.size_floor(args.min_size), fewest, tpp))
    sizes = study.sizes(args.sizes, top, tpp, args.per_decade, args.min_size)
    floor = plan_next.cheapest_flops(float(sizes["n_params"].min()), fewest, tpp)
    top = max(top, floor)
    cells = plan_next.candidate_cells(
        sizes,
        plan_next.flops_levels(floor, top, args.per_decade),
        tokens_per_step=study.arm.tokens_per_step if study.arm else 1,
        tokens_per_param=(args.min_tokens_per_param, args.max_tokens_per_param),
        min_tokens=fewest,
        done=study.done(),
    )
    if args.quantity == "metric":
        cells = study.compute_optimal_cells(cells)
    if cells.empty:
        raise ConfigError(
            f"no candidate cell: sizes {', '.join(sizes['size'][:6])} with D/N in "
            f"[{tpp:g}, {args.max_tokens_per_param:g}] and D ≥ {fewest:.3g} give no new "
            f"(N, D) up to {top:.3g} FLOPs; widen --sizes, the D/N range or --min-tokens"
        )
    cells["cost"] = (
        cells["flops_6nd"].to_numpy(float)
        if unit == "FLOPs"
        else plan_next.gpu_hours(study.require_arm("--budget-gpu-hours"), cells, args.gpu, args.mfu)
    )
    return cells


def _plan_report(
    args: argparse.Namespace,
    study: Study,
    design: Design,
    chosen: pd.DataFrame,
    selection: Selection,
    budget: float,
    unit: str,
) -> dict[str, Any]:
    return {
        "quantity": args.quantity,
        "target_flops": args.target_flops,
        "log_scale": study.log_scale(args.quantity),
        "value": design.value_,
        "confidence": args.confidence,
        "width_now": {
            "reference": design.width_,
            "bootstrap": design.bootstrap_width_,
            "delta_method": design.delta_width_,
        },
        "width_after": float(chosen["width_after"].iloc[-1]) if len(chosen) else design.width_,
        "width_ratio": float(selection.width_ratio[-1]) if len(chosen) else 1.0,
        "delta_width_after": float(selection.delta_width[-1]) if len(chosen) else None,
        "width_ratio_at_estimate": (
            float(selection.delta_width[-1] / design.delta_width_) if len(chosen) else 1.0
        ),
        "rule": selection.rule,
        "budget": budget,
        "unit": unit,
        "spent": selection.total_cost,
        "source": study.source,
        "n_runs": study.n_runs,
        "conventions": study.conventions(),
        "notes": [*study.notes, *study.design_notes(args.quantity)],
        "cells": chosen.drop(columns=[c for c in ("arch",) if c in chosen]).to_dict("records"),
    }


def _write_out(args: argparse.Namespace, study: Study, chosen: pd.DataFrame, report: dict) -> None:
    arm = study.require_arm("--out")
    text = f"plan-next: {len(chosen)} runs for {args.quantity} from {study.source}"
    count = plan_next.write_grid(plan_next.next_grid(arm, chosen, args.name, text), args.out)
    report["grid"] = args.out
    print(f"wrote {args.out} ({count} runs): slscale sweep launch {args.out} --workdir DIR")


def _write_json(path: str, report: dict[str, Any]) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(_plain(report), fh, indent=1)
    print(f"wrote {path}")


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# ----------------------------------------------------------------------------- recommend


def _check_mfu(mfu: float) -> None:
    if not 0 < mfu <= 1:
        raise ConfigError(f"--mfu {mfu}: must be in (0, 1]")


def cmd_recommend(args: argparse.Namespace) -> int:
    if not (args.target_flops and math.isfinite(args.target_flops) and args.target_flops > 0):
        raise ConfigError(f"--target-flops {args.target_flops!r}: must be a positive number")
    _check_mfu(args.mfu)
    study = load_study(study_inputs(args), metric=bool(args.benchmark or args.metric_col))
    report = study.recommend(args.target_flops, args.gpu, args.mfu)
    print(format_recommendation(report))
    if args.json:
        _write_json(args.json, report)
    return 0


# ----------------------------------------------------------------------------- text


def _width(value: float | None, log_scale: bool) -> str:
    if value is None or not math.isfinite(value):
        return "—"
    return f"×/÷{math.exp(value / 2):.4g}" if log_scale else f"{value:.4g}"


def format_plan(r: dict[str, Any]) -> str:
    """The plan as text: the question, the chosen cells, the expected width."""
    log = r["log_scale"]
    value = math.exp(r["value"]) if log else r["value"]
    at = f" at C*={r['target_flops']:.3g}" if r["target_flops"] else ""
    now = r["width_now"]
    lines = [
        f"plan-next: {r['quantity']}{at} = {value:.4g} from {r['n_runs']} runs ({r['source']})",
        f"  {100 * r['confidence']:g}% interval width now: {_width(now['reference'], log)} "
        f"(bootstrap {_width(now['bootstrap'], log)}, delta method "
        f"{_width(now['delta_method'], log)})",
        f"  budget {r['budget']:.4g} {r['unit']}; chosen {len(r['cells'])} runs costing "
        f"{r['spent']:.4g} {r['unit']} (greedy by {r['rule']})",
    ]
    head = ("#", "size", "N", "D", "D/N", "FLOPs", "cost", "width after")
    rows = [head] + [
        (
            str(i + 1),
            str(c["size"]),
            f"{c['n_fit']:.3g}",
            f"{c['tokens']:.3g}",
            f"{c['tokens'] / c['n_fit']:.3g}",
            f"{c['flops_6nd']:.3g}",
            f"{c['cost']:.3g}",
            _width(c["width_after"], log),
        )
        for i, c in enumerate(r["cells"])
    ]
    widths = [max(len(row[k]) for row in rows) for k in range(len(head))]
    lines += [
        "  " + "  ".join(x.ljust(w) for x, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    lines.append(
        f"  expected width after: {_width(r['width_after'], log)} (×{r['width_ratio']:.3g} of "
        f"now; delta method at the estimate {_width(r['delta_width_after'], log)})"
    )
    if "check" in r:
        ch = r["check"]
        lines.append(
            f"  check ({ch['replicas']} simulated studies): width ×{ch['ratio']:.3g} "
            f"({_width(ch['before'], log)} → {_width(ch['after'], log)}); criterion "
            f"×{r['width_ratio_at_estimate']:.3g} at the estimate (the simulation's truth), "
            f"×{r['width_ratio']:.3g} averaged over θ draws"
        )
    lines += [f"  note: {n}" for n in r["notes"]]
    lines.append("  conventions: " + "; ".join(f"{k}={v}" for k, v in r["conventions"].items()))
    return "\n".join(lines)


def format_recommendation(r: dict[str, Any]) -> str:
    """The recommendation as text."""

    def est(e: dict[str, Any], fmt: str = ".4g") -> str:
        ci = e.get("ci")
        inside = f" [{ci[0]:{fmt}}, {ci[1]:{fmt}}]" if ci else ""
        return f"{e['value']:{fmt}}{inside}"

    lines = [
        f"recommend at C* = {r['target_flops']:.4g} FLOPs ({r['n_runs']} runs, {r['source']}; "
        f"{100 * r['confidence']:g}% intervals)",
        f"  N_opt {est(r['n_opt'], '.3g')}   D_opt {est(r['d_opt'], '.3g')}   "
        f"D/N {r['tokens_per_param']:.3g}",
        f"  loss at the optimum {est(r['loss'])}",
    ]
    lines += [f"  {name} at C* {est(e)}" for name, e in r["metrics"].items()]
    model = r.get("model")
    if model:
        lines += [
            f"  nearest {model['family']} model: size {model['size']} "
            f"({model['num_layers']} layers × {model['hidden_size']} wide, "
            f"{model['num_heads']} heads), N = {model['n_params']:.4g} total / "
            f"{model['n_params_non_embedding']:.4g} non-embedding",
            f"  train it on D = {model['tokens']:.4g} tokens (predicted loss "
            f"{model['predicted_loss']:.4g}); on {model['gpu']}: {model['gpus']} "
            f"GPU{'s' if model['gpus'] != 1 else ''}, "
            f"ZeRO-{model['zero_stage']}, {model['gpu_hours']:.4g} GPU-hours "
            f"at MFU {model['mfu']:g}",
        ]
    lines += [f"  note: {n}" for n in r["notes"]]
    lines.append("  conventions: " + "; ".join(f"{k}={v}" for k, v in r["conventions"].items()))
    return "\n".join(lines)
