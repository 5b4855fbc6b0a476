"""Sweep scheduler: per-run overhead, packing on a small cluster, and SIMS-scale makespans.

1. Scheduling overhead: 32 trivial runs (one step each, logging to the store) launched through
   the real path — grid, plan, store registration, leases, one Ray process per attempt — on a
   local Ray runtime with 2 CPUs, against two baselines measured in the same run: the same run
   function called directly in a loop in this process, and the same calls as bare Ray tasks
   (one fresh process each, no driver). Overhead per run = (sweep wall time − loop time) / 32,
   split into the cost of a fresh process per attempt and the driver's own.
2. Packing: 8 equal runs of ``--run-seconds`` (default 15) on 2 CPU slots, logging every
   step to the store; makespan / ideal, where ideal = 8 × run time / 2 (the run time measured
   alone, directly, in this process).
3. SIMS-scale simulation: the shipped ``sims-paper`` grid planned on A100-80GB, list-scheduled
   by the driver's own policy on clusters of 8-GPU nodes; makespan against the lower bound
   max(total GPU-hours / GPUs, longest run), for largest-first against grid order and
   smallest-first. Planned three ways, as ``slscale grid plan`` plans them: each run on the
   fewest GPUs that fit, and with ``--max-hours-per-run`` 336 and 168 (two weeks, one week: each
   run on the fewest GPUs that finish it in time). The largest-first figure is the makespan
   ``grid plan --cluster-gpus N`` prints.

``python -m benchmarks.bench_sweep [--runs 32] [--run-seconds 15] [--skip-ray]``
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from slscale.sweep.scheduler.backend import REUSE_CALLS

os.environ.setdefault("RAY_AUTH_MODE", "disabled")

GOALS = {"overhead_s": 0.5, "packing": 1.15, "simulation": 1.1}
ARCH = {
    "num_layers": 1,
    "hidden_size": 16,
    "num_heads": 2,
    "num_kv_heads": 1,
    "intermediate_size": 32,
    "vocab_size": 64,
}
STEP_TOKENS = 4 * 32


def write_grid(path: Path, runs: int, steps: int) -> Path:
    grid = {
        "name": "bench",
        "base": {
            "family": "llama",
            "modality": "textless",
            "arch": ARCH,
            "tokens": steps * STEP_TOKENS,
            "recipe": {"global_batch_size": 4, "context_length": 32},
        },
        "axes": {"seed": list(range(runs))},
    }
    path.write_text(yaml.safe_dump(grid))
    return path


def specs(grid: Path) -> list[Any]:
    from slscale.sweep import plan
    from slscale.sweep.grid import expand
    from slscale.sweep.io import load_grid

    return expand(load_grid(grid), plan.param_counts)


def sweep_seconds(workdir: Path, grid: Path, run_fn: Any, reuse: bool = True) -> float:
    from slscale.sweep.launch import LaunchOptions, launch

    options = LaunchOptions(
        workdir=str(workdir), poll_seconds=0.05, lease_seconds=30, reuse_processes=reuse
    )
    start = time.perf_counter()
    report = launch(specs(grid), options, run_fn=run_fn)
    seconds = time.perf_counter() - start
    assert report.ok, report.states
    return seconds


def loop_seconds(workdir: Path, grid: Path, run_fn: Any) -> float:
    """The baseline: the run function called directly, one run after another."""
    runs = registered(workdir, grid)
    start = time.perf_counter()
    for rid, spec in runs:
        run_fn(spec, rid, str(workdir), str(workdir), 1)
    return time.perf_counter() - start


def overhead(tmp: Path, runs: int, log_to_store: bool) -> dict[str, float]:
    from slscale.sweep.scheduler.runners import SyntheticRun

    run_fn = SyntheticRun(store=log_to_store)
    grid = write_grid(tmp / "overhead.yaml", runs, steps=1)
    tag = "logging" if log_to_store else "trivial"
    return {
        "runs": runs,
        "loop_s": loop_seconds(tmp / f"direct-{tag}", grid, run_fn),
        # The sweep goes first: it pays for starting Ray's worker processes, not the baseline.
        "sweep_s": sweep_seconds(tmp / f"swept-{tag}", grid, run_fn),
        "bare_s": bare_ray_seconds(tmp / f"bare-{tag}", grid, run_fn, max_calls=REUSE_CALLS),
        "bare_fresh_s": bare_ray_seconds(tmp / f"bare-fresh-{tag}", grid, run_fn, max_calls=1),
        "sweep_fresh_s": sweep_seconds(tmp / f"swept-fresh-{tag}", grid, run_fn, reuse=False),
    }


def bare_ray_seconds(workdir: Path, grid: Path, run_fn: Any, max_calls: int) -> float:
    """The floor of the scheduler: the same calls as Ray tasks on 2 CPUs, all submitted at
    once, without the driver, leases or state changes (``max_calls=1``: a fresh process per
    call, as ``--fresh-process-per-run``)."""
    import ray

    from slscale.sweep.scheduler.outcome import execute

    runs = registered(workdir, grid)
    task = ray.remote(max_calls=max_calls, max_retries=0, num_cpus=1)(execute)
    start = time.perf_counter()
    refs = [task.remote(run_fn, spec, rid, str(workdir), str(workdir), 1) for rid, spec in runs]
    ray.get(refs)
    return time.perf_counter() - start


def registered(workdir: Path, grid: Path) -> list[tuple[str, dict[str, Any]]]:
    """The grid's runs, registered in the store of ``workdir``."""
    from slscale.identity import run_id
    from slscale.spec import spec_to_dict
    from slscale.store import open_store

    runs = {run_id(s): spec_to_dict(s) for s in specs(grid)}
    with open_store(workdir) as store:
        store.register(runs)
    return list(runs.items())


def packing(tmp: Path, run_seconds: float) -> dict[str, float]:
    from slscale.sweep.scheduler.runners import SyntheticRun

    steps = 20
    run_fn = SyntheticRun(step_seconds=run_seconds / steps)
    grid = write_grid(tmp / "packing.yaml", 8, steps)
    alone = loop_seconds(tmp / "alone", write_grid(tmp / "one.yaml", 1, steps), run_fn)
    makespan = sweep_seconds(tmp / "packed", grid, run_fn)
    fresh = sweep_seconds(tmp / "packed-fresh", grid, run_fn, reuse=False)
    ideal = 8 * alone / 2
    return {
        "run_s": alone,
        "makespan_s": makespan,
        "ideal_s": ideal,
        "ratio": makespan / ideal,
        "fresh_s": fresh,
    }


def sims_rows(max_hours_per_run: float | None = None) -> list[Any]:
    """The plan of ``sims-paper`` on A100-80GB, as ``grid plan [--max-hours-per-run H]``."""
    from slscale.identity import run_id
    from slscale.sweep import plan
    from slscale.sweep.grid import expand
    from slscale.sweep.io import load_grid
    from slscale.sweep.targets import ResourceTarget

    specs = expand(load_grid("sims-paper"), plan.param_counts)
    target = ResourceTarget(max_hours_per_run=max_hours_per_run)
    return plan.plan(specs, gpu="a100-80gb", targets={run_id(s): target for s in specs})


def simulation() -> list[dict[str, Any]]:
    from slscale.sweep import plan
    from slscale.sweep.scheduler.policy import simulate

    scenarios = (
        ("plan's GPUs", sims_rows(), (1, 2, 4)),
        ("--max-hours-per-run 336", sims_rows(14 * 24), (4, 8, 16)),
        ("--max-hours-per-run 168", sims_rows(7 * 24), (4, 8, 16)),
    )
    out = []
    for label, rows, cluster in scenarios:
        jobs = plan.sim_jobs(rows)
        for nodes in cluster:
            shape = plan.cluster_nodes(8 * nodes, 8)
            cli = plan.makespan(rows, shape)  # what grid plan --cluster-gpus prints
            assert cli is not None
            row: dict[str, Any] = {"runs": label, "nodes": nodes, "jobs": len(jobs)}
            row.update(bound_h=cli.lower_bound_hours, makespan_h=cli.makespan_hours)
            row["largest-first"] = cli.ratio
            for order in ("grid", "smallest-first"):
                row[order] = simulate(jobs, shape, order).ratio
            by_area = simulate(
                jobs, shape, "largest-first", size_of=lambda j: j.hours * j.resources.gpus
            )
            row["by_area"] = by_area.ratio
            out.append(row)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=32)
    parser.add_argument("--run-seconds", type=float, default=15.0)
    parser.add_argument("--skip-ray", action="store_true", help="simulation only")
    args = parser.parse_args(argv or [])
    if not args.skip_ray:
        ray_tables(args)
    print("\nSIMS-scale grid (sims-paper, A100-80GB plan), 8-GPU nodes: makespan / lower bound\n")
    print(
        "| runs | nodes | lower bound (h) | makespan, largest-first (h) | largest-first "
        "(duration) | goal | grid order | smallest-first | largest GPU-hours first |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in simulation():
        print(
            f"| {r['runs']} ({r['jobs']}) | {r['nodes']} | {r['bound_h']:,.0f} | "
            f"{r['makespan_h']:,.0f} | {r['largest-first']:.3f} | ≤ {GOALS['simulation']} | "
            f"{r['grid']:.3f} | {r['smallest-first']:.3f} | {r['by_area']:.3f} |"
        )


def ray_tables(args: argparse.Namespace) -> None:
    import ray

    tmp = Path(tempfile.mkdtemp(prefix="bench-sweep-"))
    try:
        start = time.perf_counter()
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        print(f"local Ray runtime (2 CPUs) started in {time.perf_counter() - start:.1f} s\n")
        trivial = overhead(tmp, args.runs, log_to_store=False)
        logging = overhead(tmp, args.runs, log_to_store=True)
        packed = packing(tmp, args.run_seconds)
    finally:
        ray.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)
    print("| measure | slscale | goal | baseline | ratio |")
    print("|---|---|---|---|---|")
    for label, o in (("trivial runs", trivial), ("runs logging to the store", logging)):
        print_overhead(label, o, f"≤ {GOALS['overhead_s']}" if o is trivial else "")
    p = packed
    print(
        f"| 8 equal runs on 2 slots: makespan (s) | {p['makespan_s']:.2f} | "
        f"≤ {GOALS['packing']} × ideal | {p['ideal_s']:.2f} ideal (8 × {p['run_s']:.2f} s / 2) "
        f"| {p['ratio']:.3f} |"
    )
    print(
        f"| … with a fresh process per run: makespan (s) | {p['fresh_s']:.2f} | | | "
        f"{p['fresh_s'] / p['ideal_s']:.3f} |"
    )


def print_overhead(label: str, o: dict[str, float], goal: str) -> None:
    n = o["runs"]
    print(
        f"| {n:.0f} {label}: wall time (s) | {o['sweep_s']:.2f} | | {o['loop_s']:.2f} direct "
        f"loop; {o['bare_s']:.2f} bare Ray tasks | {o['sweep_s'] / o['bare_s']:.2f}× bare Ray |"
    )
    per_run = (o["sweep_s"] - o["loop_s"]) / n
    print(f"| {label}: overhead per run vs the direct loop (s) | {per_run:.3f} | {goal} | | |")
    ray_cost = (o["bare_s"] - o["loop_s"]) / n
    print(f"| {label}: of which Ray's tasks (bare Ray − loop) | {ray_cost:.3f} | | | |")
    driver = (o["sweep_s"] - o["bare_s"]) / n
    print(f"| {label}: of which the driver (sweep − bare Ray) | {driver:.3f} | | | |")
    fresh = (o["sweep_fresh_s"] - o["loop_s"]) / n
    print(
        f"| {label}, a fresh process per run: overhead per run (s) | {fresh:.3f} | | "
        f"{(o['bare_fresh_s'] - o['loop_s']) / n:.3f} bare Ray tasks with max_calls=1 | |"
    )


if __name__ == "__main__":
    main(sys.argv[1:])
