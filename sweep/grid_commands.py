"""``slscale grid ...``: list, show and plan grids."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from slscale.errors import SlscaleError
from slscale.identity import diff_specs, human_count, readable_name, run_id, varying_fields
from slscale.spec import RunSpec, RunState
from slscale.sweep import plan as plan_mod
from slscale.sweep import targets
from slscale.sweep.grid import expand_with_targets
from slscale.sweep.io import grid_to_yaml, load_grid, shipped_grids
from slscale.sweep.resources import GPU_TYPES
from slscale.sweep.scheduler.policy import SimResult


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    grid = sub.add_parser("grid", help="list, show and plan grids of runs")
    gsub = grid.add_subparsers(dest="grid_command", required=True, metavar="GRID_COMMAND")

    p = gsub.add_parser(
        "plan", help="per-run N, D, FLOPs, GPUs, ZeRO, GPU-hours, wall clock and state"
    )
    p.add_argument("grid", help="grid YAML, shipped grid name, or module:function")
    p.add_argument("--json", action="store_true", help="print a JSON list of runs")
    p.add_argument(
        "--gpu",
        default="a100-80gb",
        choices=sorted(GPU_TYPES),
        help="GPU type for the resource plan (default a100-80gb)",
    )
    p.add_argument("--mfu", type=float, default=0.4, help="assumed model FLOPs utilisation")
    targets.add_arguments(p)
    p.add_argument("--workdir", help="show each run's state in this workdir's store")
    p.add_argument("--store", help="store URL (default: <workdir>/results.db or $SLSCALE_STORE)")
    p.add_argument(
        "--explain",
        action="store_true",
        help="show which fields make the runs (and same-named runs) differ",
    )
    p.set_defaults(func=cmd_plan)

    s = gsub.add_parser("show", help="print a grid as YAML (round-trips)")
    s.add_argument("grid")
    s.set_defaults(func=lambda a: print(grid_to_yaml(load_grid(a.grid)), end="") or 0)

    ls = gsub.add_parser("list", help="list the shipped grids")
    ls.set_defaults(func=lambda a: print("\n".join(shipped_grids())) or 0)


def cmd_plan(args: argparse.Namespace) -> int:
    if not 0 < args.mfu <= 1:
        raise SlscaleError(f"--mfu {args.mfu}: must be in (0, 1]")
    grid = load_grid(args.grid)
    runs = expand_with_targets(grid, plan_mod.param_counts)
    specs = [spec for spec, _ in runs]
    flags = targets.from_arguments(args)
    states = _store_states(args.workdir, args.store)
    widths = plan_mod.run_targets(runs, flags)
    rows = plan_mod.plan(specs, gpu=args.gpu, mfu=args.mfu, states=states, targets=widths)
    per_node = flags.over(grid.target).per_node
    estimate = cluster_makespan(rows, args.cluster_gpus, per_node)
    if args.json:
        json.dump([r.to_json() for r in rows], sys.stdout, indent=1)
        print()
        return 0
    print(f"grid {grid.name}: {len(rows)} runs on {args.gpu} at MFU {args.mfu:g}")
    print(format_table(rows))
    print(format_totals(plan_mod.totals(rows)))
    ladders = plan_mod.ladder_totals(rows)
    if ladders is not None:
        print(format_ladders(ladders))
    if estimate is not None:
        print(format_makespan(estimate, args.cluster_gpus, per_node))
    if args.explain:
        print(explain(specs))
    return 0


def _store_states(workdir: str | None, store: str | None) -> dict[str, RunState]:
    if workdir is None and store is None and not os.environ.get("SLSCALE_STORE"):
        return {}
    from slscale.store import open_store, resolve_store_target  # pandas: only when needed

    target = resolve_store_target(store, workdir)
    if "://" not in target and not Path(target).exists():
        return {}  # nothing launched yet: every run is new
    with open_store(target) as st:
        return {r.run_id: r.state for r in st.list_runs()}


COLUMNS = (
    "run_id",
    "N",
    "N_nonemb",
    "D",
    "trains",
    "D/N",
    "FLOPs",
    "GPUs",
    "nodes",
    "ZeRO",
    "mb×acc",
    "GPU-h",
    "wall-h",
    "state",
)


def format_table(rows: Sequence[plan_mod.PlanRow]) -> str:
    """The plan as a text table; a grid with WSD branches gets a "trains" column (the tokens
    a run trains itself) next to D."""
    cells: list[tuple[str, ...]] = [COLUMNS]
    cells += [
        (
            r.run_id,
            human_count(r.n_params),
            human_count(r.n_params_non_embedding),
            human_count(r.tokens),
            human_count(r.tokens_trained),
            f"{r.tokens_per_param:.1f}",
            f"{r.flops_6nd:.2e}",
            str(r.gpus),
            str(r.nodes),
            str(r.zero_stage),
            f"{r.micro_batch_size}×{r.grad_accum_steps}",
            f"{r.gpu_hours:.3g}",
            f"{r.wall_hours:.3g}",
            r.state,
        )
        for r in rows
    ]
    if all(r.tokens_trained == r.tokens for r in rows):  # no WSD branch: "trains" is D
        trains = COLUMNS.index("trains")
        cells = [row[:trains] + row[trains + 1 :] for row in cells]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    )


def format_totals(t: dict[str, float]) -> str:
    return (
        f"total: {int(t['runs'])} runs, {human_count(t['tokens'])} tokens trained, "
        f"{t['flops_6nd']:.3g} FLOPs (6ND), {t['flops_exact']:.3g} FLOPs (exact), "
        f"{t['gpu_hours']:.4g} GPU-hours ({t['gpu_hours_left']:.4g} not done)"
    )


def format_ladders(t: dict[str, float]) -> str:
    """The ladders' line of ``grid plan`` and ``sweep status`` (:func:`plan.ladder_totals`)."""
    trained, alone = t["flops_6nd_trained"], t["flops_6nd_independent"]
    trunks, branches = int(t["trunks"]), int(t["branches"])
    return (
        f"WSD ladders: {_count(trunks, 'trunk')} and {_count(branches, 'branch')} train "
        f"{trained:.3g} FLOPs (6ND); independent runs of the same {branches} cells "
        f"would train {alone:.3g} ({trained / alone:.2f}×)"
    )


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}{'es' if noun.endswith('ch') else 's'}"


def cluster_makespan(
    rows: Sequence[plan_mod.PlanRow], cluster_gpus: int | None, gpus_per_node: int
) -> SimResult | None:
    """The makespan of the runs not done on ``cluster_gpus`` GPUs (None: not asked)."""
    if cluster_gpus is None:
        return None
    return plan_mod.makespan(rows, plan_mod.cluster_nodes(cluster_gpus, gpus_per_node))


def format_makespan(result: SimResult, cluster_gpus: int, gpus_per_node: int) -> str:
    hours = result.makespan_hours
    return (
        f"makespan on {cluster_gpus} GPUs ({gpus_per_node} per node), largest-first as the "
        f"driver places runs: {hours:,.0f} h ({hours / 24:.1f} days); lower bound "
        f"{result.lower_bound_hours:,.0f} h (GPU-hours / GPUs, or the longest run)"
    )


def explain(specs: Sequence[RunSpec]) -> str:
    """Fields that vary across the grid, per run; and the differences of same-named runs."""
    fields = varying_fields(specs)
    lines = [f"fields that vary across the grid: {', '.join(fields) or '(none)'}"]
    for spec in specs:
        values = _values(spec, fields)
        lines.append(f"  {run_id(spec)}: " + ", ".join(f"{k}={v}" for k, v in values.items()))
    by_name: dict[str, list[RunSpec]] = {}
    for spec in specs:
        by_name.setdefault(readable_name(spec), []).append(spec)
    for name, group in by_name.items():
        for other in group[1:]:
            diffs = "; ".join(f"{k}: {a!r} vs {b!r}" for k, a, b in diff_specs(group[0], other))
            lines.append(
                f"same name {name}: {run_id(group[0])} vs {run_id(other)} differ in {diffs}"
            )
    return "\n".join(lines)


def _values(spec: RunSpec, fields: Sequence[str]) -> dict[str, object]:
    from slscale.identity import flatten, identity_fields

    flat = flatten(identity_fields(spec))
    return {k: flat.get(k) for k in fields}
