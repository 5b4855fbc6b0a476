"""WSD ladders against independent cosine runs of the same cells, on the miniature world.

One ladder (``wsd_ladder``: per size a trunk and a decay branch per budget, f = 0.2,
1 − sqrt decay) and one grid of independent cosine runs of the same (size, D) cells and the
same seed, each launched with ``slscale sweep launch --data WORLD`` on a local Ray cluster
(the real DeepSpeed trainer, CPU). Reported: each branch's final loss against the cosine run
of its cell (ratio; the final training loss the fits use, and the validation loss), the seed-
to-seed spread of the cosine runs on a few cells (a second seed), the tokens each design
trained, the Approach-3 exponent a of each design with its 95 % bootstrap interval, and each
launch's wall time.

``python -m benchmarks.bench_ladder [--quick] [--budget-steps 1000,2000,3000,4000]
[--spread-steps 2000]`` (``--quick``: 2 sizes × 2 budgets, a smoke run of the script, not a
measurement; ``--budget-steps``: the budgets in optimizer steps, default 50,100,200,400, far
below compute-optimal; ``--spread-steps``: the budget whose cosine runs get a second seed).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from slscale.fitting.approach3 import ParametricLossFit
from slscale.models.world.generate import WorldConfig, generate_world
from slscale.store import open_store

SIZES = ["mini-25k", "mini-50k", "mini-100k", "mini-200k"]
RECIPE = {
    "global_batch_size": 8,
    "context_length": 64,
    "lr": 3e-3,
    "lr_min": 3e-4,
    "warmup_fraction": 0.05,
}
TOKENS_PER_STEP = RECIPE["global_batch_size"] * RECIPE["context_length"]
BUDGET_STEPS = [50, 100, 200, 400]
"""Budgets in optimizer steps (every size trains each)."""
SPREAD_STEPS = 100
"""The budget whose cosine runs are repeated with a second seed (every size)."""
QUICK = (SIZES[:2], [20, 40], 20)
BOOTSTRAP = 400
WORDS = 300_000


def base() -> dict[str, Any]:
    return {
        "family": "llama",
        "modality": "textless",
        "units_only_vocab": True,
        "recipe": dict(RECIPE),
    }


def grids(sizes: list[str], steps: list[int], spread: int) -> dict[str, dict[str, Any]]:
    tokens = [s * TOKENS_PER_STEP for s in steps]
    return {
        "ladder": {
            "name": "bench-ladder",
            "base": base(),
            "generators": [{"wsd_ladder": {"sizes": sizes, "tokens": tokens}}],
        },
        "cosine": {
            "name": "bench-cosine",
            "base": base(),
            "axes": {"size": sizes, "tokens": tokens},
        },
        "spread": {
            "name": "bench-cosine-seed1",
            "base": {**base(), "seed": 1},
            "axes": {"size": sizes, "tokens": [spread * TOKENS_PER_STEP]},
        },
    }


def launch(grid: Path, workdir: Path, world: Path) -> float:
    """``slscale sweep launch`` of ``grid``; its wall time in seconds."""
    command = [
        sys.executable,
        "-m",
        "slscale.cli",
        "sweep",
        "launch",
        str(grid),
        "--workdir",
        str(workdir),
        "--data",
        str(world),
        "--num-cpus",
        "2",
        "--log-every",
        "10",
        "--quiet",
    ]
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "OMP_NUM_THREADS": "1"}
    start = time.perf_counter()
    subprocess.run(command, check=True, env=env)
    return time.perf_counter() - start


def finished(workdir: Path) -> list[dict[str, Any]]:
    with open_store(workdir) as store:
        records = store.list_runs()
    rows = []
    for r in records:
        if str(r.state) != "SUCCEEDED":
            raise RuntimeError(f"run {r.run_id} is {r.state}: {r.error}")
        spec, summary = r.spec, r.summary
        rows.append({
            "run_id": r.run_id,
            "size": spec["size"],
            "tokens": int(spec["tokens"]),
            "seed": int(spec.get("seed", 0)),
            "trunk": bool(spec.get("branch_tokens")),
            "branch": bool(spec.get("branch")),
            "n_params": float(summary["n_params"]),
            "loss": float(summary["loss"]),
            "val_loss": float(summary["val_loss"]),
            "tokens_trained": int(summary.get("tokens_trained", spec["tokens"])),
        })  # fmt: skip
    return rows


def exponent_a(points: list[dict[str, Any]]) -> tuple[float, tuple[float, float]]:
    n = np.array([p["n_params"] for p in points])
    d = np.array([p["tokens"] for p in points], np.float64)
    loss = np.array([p["loss"] for p in points])
    fit = ParametricLossFit(n_bootstrap=BOOTSTRAP, random_state=0).fit(n, d, loss).result_
    low, high = fit.ci["a"]
    return float(fit.exponents["a"]), (float(low), float(high))


def _steps(text: str) -> list[int]:
    steps = sorted(int(s) for s in text.split(","))
    if len(steps) < 2 or steps[0] < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give two or more step counts, e.g. 50,100")
    return steps


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench_ladder")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--keep", help="keep the work folder here")
    parser.add_argument("--budget-steps", type=_steps, default=BUDGET_STEPS)
    parser.add_argument("--spread-steps", type=int, default=SPREAD_STEPS)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.spread_steps not in args.budget_steps:
        parser.error(f"--spread-steps {args.spread_steps}: must be one of {args.budget_steps}")
    sizes, steps, spread = QUICK if args.quick else (SIZES, args.budget_steps, args.spread_steps)
    work = Path(args.keep or tempfile.mkdtemp(prefix="bench_ladder_"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        world = work / "world"
        generate_world(world, WorldConfig(words=WORDS, eval_pairs=20))
        walls, runs = {}, {}
        for name, grid in grids(sizes, steps, spread).items():
            path = work / f"{name}.yaml"
            path.write_text(yaml.safe_dump(grid))
            walls[name] = launch(path, work / name, world)
            runs[name] = finished(work / name)
            print(f"{name}: {len(runs[name])} runs in {walls[name]:.0f} s", flush=True)
        report(runs, walls, sizes, steps)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def report(
    runs: dict[str, list[dict[str, Any]]],
    walls: dict[str, float],
    sizes: list[str],
    steps: list[int],
) -> None:
    cosine = {(r["size"], r["tokens"]): r for r in runs["cosine"]}
    branches = [r for r in runs["ladder"] if r["branch"]]
    print("\n| size | D (steps) | D/N | cosine loss | branch loss | ratio | val ratio |")
    print("|---|---|---|---|---|---|---|")
    ratios, val_ratios = [], []
    for b in sorted(branches, key=lambda r: (sizes.index(r["size"]), r["tokens"])):
        c = cosine[(b["size"], b["tokens"])]
        ratio, val = b["loss"] / c["loss"], b["val_loss"] / c["val_loss"]
        ratios.append(ratio)
        val_ratios.append(val)
        print(
            f"| {b['size']} | {b['tokens'] // TOKENS_PER_STEP} | {b['tokens'] / b['n_params']:.1f} "
            f"| {c['loss']:.4f} | "
            f"{b['loss']:.4f} | {ratio:.4f} | {val:.4f} |"
        )
    worst = max(abs(r - 1) for r in ratios)
    print(
        f"\nbranch / cosine final loss: mean {statistics.mean(ratios):.4f}, worst |1 - ratio| "
        f"{worst:.2%}; validation loss: mean {statistics.mean(val_ratios):.4f}, worst "
        f"{max(abs(r - 1) for r in val_ratios):.2%}"
    )
    seed1 = {r["size"]: r for r in runs["spread"]}
    spreads = [abs(seed1[s]["loss"] / cosine[(s, seed1[s]["tokens"])]["loss"] - 1) for s in seed1]
    val_spreads = [
        abs(seed1[s]["val_loss"] / cosine[(s, seed1[s]["tokens"])]["val_loss"] - 1) for s in seed1
    ]
    print(
        f"seed-to-seed (cosine seed 1 vs 0, {len(seed1)} cells): |1 - ratio| mean "
        f"{statistics.mean(spreads):.2%}, max {max(spreads):.2%}; validation mean "
        f"{statistics.mean(val_spreads):.2%}, max {max(val_spreads):.2%}"
    )
    trained_ladder = sum(r["tokens_trained"] for r in runs["ladder"])
    trained_cosine = sum(r["tokens_trained"] for r in runs["cosine"])
    print(
        f"tokens trained: ladder {trained_ladder:,} (trunks + decays), cosine {trained_cosine:,}"
        f" ({trained_ladder / trained_cosine:.3f}×)"
    )
    for name, points in (("ladder", branches), ("cosine", runs["cosine"])):
        try:
            a, (low, high) = exponent_a(points)
        except Exception as exc:  # too few points (--quick), or a fit that does not converge
            print(f"Approach 3 a, {name}: no fit ({type(exc).__name__}: {exc})")
            continue
        print(
            f"Approach 3 a, {name}: {a:.3f} [{low:.3f}, {high:.3f}] (95 %, {BOOTSTRAP} resamples)"
        )
    print(
        "wall: "
        + ", ".join(f"{k} {v:.0f} s" for k, v in walls.items())
        + f" ({len(sizes)} sizes × {len(steps)} budgets {steps} steps of {TOKENS_PER_STEP} tokens)"
    )


if __name__ == "__main__":
    main()
