"""Approach 3 on Epoch's 240 Chinchilla points: batched multi-start and bootstrap vs scipy loops.

Goals (2-core CPU): the 4,500-start fit in ≤ 5 s and 4,000 bootstrap refits in ≤ 60 s, with
the optimum of the straightforward loop (objective equal to 1e-9 relative).

Baselines measured in the same run:
* the straightforward loop — scipy L-BFGS-B (tight tolerances, analytic gradient) from each of
  Hoffmann's starts in turn — timed on every ``--loop-stride``-th start and scaled to 4,500;
  and the same with finite-difference gradients (as in the published notebooks) on every
  100th start;
* a straightforward bootstrap — scipy L-BFGS-B per resample from the full-data optimum —
  timed on 100 resamples and scaled to 4,000.

BLAS is kept to one thread (OpenBLAS wakes its threads for every small call, which makes
scipy's L-BFGS-B many times slower on a shared machine): set before numpy loads when this
module is run on its own, and through threadpoolctl when installed.
"""

from __future__ import annotations

import os
import sys

if "numpy" not in sys.modules:  # only effective before BLAS is loaded
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import statistics
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from slscale.compute import tokens_6nd
from slscale.fitting import IsoFlopFit, ParametricLossFit, SamplingWarning
from slscale.fitting.bootstrap import check_warm_starts, distinct_optima, refit_resamples
from slscale.fitting.objective import LogPoints
from slscale.fitting.optimise import hoffmann_grid, lbfgs_multistart, multistart
from slscale.fitting.powerlaw import resample_counts
from slscale.fitting.threads import single_threaded_blas

DATA = (
    Path(__file__).resolve().parents[1]
    / "tests"
    / "public_data"
    / "chinchilla_epoch_svg_extracted.csv"
)
DELTA = 1e-3


def epoch_points() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """N, D = C/(6N), L of Epoch's 240 points (5 highest-loss points dropped)."""
    frame = pd.read_csv(DATA).sort_values("loss").iloc[:-5]
    n, c = frame["Model Size"].to_numpy(), frame["Training FLOP"].to_numpy()
    return n, tokens_6nd(c, n), frame["loss"].to_numpy()


def timed(work: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    """Median wall time of ``repeats`` calls and the last call's result."""
    seconds, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = work()
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds), result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_fitting")
    parser.add_argument(
        "--loop-stride",
        type=int,
        default=10,
        help="time the loop on every k-th start (1: all 4,500)",
    )
    parser.add_argument("--resamples", type=int, default=4000, help="bootstrap resamples")
    parser.add_argument("--repeats", type=int, default=3, help="timed repetitions")
    args = parser.parse_args(argv)
    with single_threaded_blas() as limited:
        rows = run(args)
    threads = os.environ.get("OPENBLAS_NUM_THREADS", "default")
    print(f"\nBLAS threads: OPENBLAS_NUM_THREADS={threads}; threadpoolctl limit: {limited}\n")
    print("| measure | slscale | baseline | ratio |\n|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print(
        "\nApproach 2 on the published IsoFLOP sweeps (points flagged as outliers removed; "
        "1,000 resamples within budgets)\n"
    )
    print(
        "| experiment | budgets | a [95% CI] | b [95% CI] | N_opt error at the largest budget |"
        " warnings | time (s) |\n|---|---|---|---|---|---|---|"
    )
    for row in approach2_table():
        print("| " + " | ".join(row) + " |")


def run(args: argparse.Namespace) -> list[tuple[str, str, str, str]]:
    points = LogPoints.from_arrays(*epoch_points())
    grid = hoffmann_grid()
    fast_s, fast = timed(lambda: multistart(points, DELTA, grid), args.repeats)
    subset = grid[:: args.loop_stride]
    loop_s, loop = timed(lambda: lbfgs_multistart(points, DELTA, subset), 1)
    loop_full_s = loop_s * grid.shape[0] / subset.shape[0]
    numeric = grid[::100]
    fd_s, _ = timed(lambda: lbfgs_multistart(points, DELTA, numeric, analytic_gradient=False), 1)
    fd_full_s = fd_s * grid.shape[0] / numeric.shape[0]
    gap = (loop.value - fast.value) / loop.value

    counts = resample_counts(np.random.default_rng(0), len(points), args.resamples)
    starts = distinct_optima(fast, 4)
    boot_s, fits = timed(lambda: refit_resamples(points, DELTA, starts, counts), args.repeats)
    one_start = fast.theta[None, :]
    naive_s, _ = timed(
        lambda: [lbfgs_multistart(points, DELTA, one_start, weights=w) for w in counts[:100]], 1
    )
    naive_full_s = naive_s * args.resamples / 100
    check = check_warm_starts(points, DELTA, grid, counts, fits, np.arange(5))
    se = np.std(fits.theta[:, 3:5], axis=0, ddof=1)

    n, d, y = epoch_points()
    full_s, fit = timed(
        lambda: ParametricLossFit(n_bootstrap=args.resamples, random_state=0).fit(n, d, y), 1
    )
    k = grid.shape[0]
    return [
        (
            f"{k}-start fit (s)",
            f"{fast_s:.2f}",
            f"{loop_full_s:.1f} (L-BFGS-B loop, {subset.shape[0]} starts × {k // subset.shape[0]})",
            f"{loop_full_s / fast_s:.0f}×",
        ),
        (
            f"{k}-start fit vs finite-difference loop (s)",
            f"{fast_s:.2f}",
            f"{fd_full_s:.0f} ({numeric.shape[0]} starts × 100)",
            f"{fd_full_s / fast_s:.0f}×",
        ),
        (
            "objective: fast vs loop (relative)",
            f"{fast.value:.13g}",
            f"{loop.value:.13g}",
            f"{gap:+.1e}",
        ),
        (
            f"{args.resamples} bootstrap refits (s)",
            f"{boot_s:.2f} ({starts.shape[0]} start(s) each)",
            f"{naive_full_s:.0f} (L-BFGS-B per resample, 100 × {args.resamples // 100})",
            f"{naive_full_s / boot_s:.0f}×",
        ),
        ("warm start vs full multi-start, 5 resamples (max rel. gap)", f"{check:.1e}", "—", "—"),
        ("bootstrap SE α, β (Epoch: 0.015, 0.021)", f"{se[0]:.4f}, {se[1]:.4f}", "—", "—"),
        (
            f"ParametricLossFit().fit, {args.resamples} resamples + extrapolation check (s)",
            f"{full_s:.1f}",
            "—",
            "—",
        ),
        (
            "E, α, β (Epoch: 1.8172, 0.3473, 0.3672)",
            f"{fit.params_['E']:.4f}, {fit.params_['alpha']:.4f}, {fit.params_['beta']:.4f}",
            "—",
            "—",
        ),
    ]


def approach2_table() -> list[tuple[str, ...]]:
    """Approach 2 per experiment of Czech et al.'s collection (tests/public_data)."""
    frame = pd.read_csv(DATA.with_name("isoflops_open_athena.csv"))
    rows = []
    for name, group in frame[~frame["outlier"]].groupby("experiment"):
        start = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", SamplingWarning)
            fit = IsoFlopFit(random_state=0).fit(
                group["params"], group["tokens"], group["loss"], budget=group["budget"]
            )
        seconds = time.perf_counter() - start
        p, ci, ex = fit.params_, fit.ci_, fit.extrapolation_
        used = sum(r["used"] for r in fit.budgets_)
        error = f"{100 * ex['mean_abs_rel_error']:.0f}%" if "mean_abs_rel_error" in ex else "—"
        rows.append(
            (
                f"`{name}`",
                f"{used}/{len(fit.budgets_)}",
                f"{p['a']:.3f} [{ci['a'][0]:.3f}, {ci['a'][1]:.3f}]",
                f"{p['b']:.3f} [{ci['b'][0]:.3f}, {ci['b'][1]:.3f}]",
                error,
                str(len(caught)),
                f"{seconds:.2f}",
            )
        )
    return rows


if __name__ == "__main__":
    main()
