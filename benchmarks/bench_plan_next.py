"""Planning the next runs: does spending extra compute on the planner's cells beat extending
the IsoFLOP grid by one budget?

Simulation study. For two known laws — Chinchilla-like (E 1.69, A 406.4, B 410.7, α 0.34,
β 0.28; Hoffmann et al. 2022) and textless-like (E 1.73, A 13.9, B 39.8, α 0.25, β 0.24;
Cuervo & Marxer 2024, Table 5) — and log-normal loss noise σ, each seed starts from a small
IsoFLOP design (3 budgets half a decade apart × 5 sizes over 1.2 decades, centred on the true
optimum) and spends extra compute X either on

* the baseline: the next IsoFLOP budget (3× the largest) with 5 sizes centred on the *true*
  optimum (generous to the baseline), X = 5 × that budget; or
* the planner: ``slscale plan-next --quantity a`` (or ``n_opt`` at 100× the largest initial
  budget) from the initial fit, within X, X/2 or X/4;

then refits (Approach 3: 4,500 starts, 1,000 bootstrap resamples) and records the bootstrap
interval of a, the estimate of a and the error of N_opt at 100× the largest initial budget.
A second part checks the delta-method criterion against preposterior simulation, and a third
plans ten runs for Epoch's Chinchilla data.

Run: ``.venv/bin/python -m benchmarks.bench_plan_next [seeds]`` (default 40 seeds per law,
about 10 minutes of CPU on the 2-core machine; the results are seeded and repeat exactly).
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from slscale.compute import flops_6nd, tokens_6nd
from slscale.fitting import ParametricLossFit
from slscale.fitting.design import ParametricDesign
from slscale.fitting.design_sim import simulate_widths
from slscale.fitting.laws import allocation_exponents, optimal_allocation, parametric_loss
from slscale.workflows import plan_next

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
# A drifting bootstrap draw overflows the fit's standard-error summary; intervals are unaffected.
warnings.filterwarnings("ignore", "overflow encountered", RuntimeWarning)

LAWS = {
    "chinchilla-like": {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28},
    "textless-like": {"E": 1.73, "A": 13.9, "B": 39.8, "alpha": 0.25, "beta": 0.24},
}
BUDGETS = {"chinchilla-like": (1e18, 3e18, 1e19), "textless-like": (1e17, 3e17, 1e18)}
NEXT_FACTOR, SIZES, SPAN_DEX = 3.0, 5, 1.2
NOISE = 0.015
"""Log-normal σ of the final loss (seed-to-seed spread of small runs is ~1–2%)."""
TPP = (1.0, 500.0)
"""D/N range of the planner's candidates (the CLI default)."""
BOOTSTRAP = 1000
PER_DECADE = 8
BELOW_DEX = 1.0
"""The 'open region' variant lets cells go one decade below the smallest N and D done."""
CHINCHILLA = (
    Path(__file__).resolve().parents[1]
    / "tests"
    / "public_data"
    / ("chinchilla_epoch_svg_extracted.csv")
)


def isoflop(law: dict[str, float], budgets: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray]:
    """N, D of IsoFLOP budgets, SIZES sizes each over SPAN_DEX decades centred on N_opt."""
    n, d = [], []
    for c in budgets:
        mid, _ = optimal_allocation(c, **{k: law[k] for k in ("A", "B", "alpha", "beta")})
        sizes = float(mid) * np.logspace(-SPAN_DEX / 2, SPAN_DEX / 2, SIZES)
        n += list(sizes)
        d += list(tokens_6nd(c, sizes))
    return np.array(n), np.array(d)


def observe(law: dict[str, float], n: np.ndarray, d: np.ndarray, rng: np.random.Generator):
    return parametric_loss(n, d, **law) * np.exp(rng.normal(0.0, NOISE, n.size))


def fit(n: np.ndarray, d: np.ndarray, y: np.ndarray, seed: int):
    return ParametricLossFit(n_bootstrap=BOOTSTRAP, random_state=seed, validate=False).fit(n, d, y)


def planner_cells(result, n_done, d_done, budget, quantity, target, seed, below_dex=0.0):
    """What plan-next chooses with its defaults: sizes (8 per decade) and token counts from
    the smallest done (``below_dex`` decades lower for the open region), D/N in TPP, compute
    levels (8 per decade) up to the budget, the greedy design over bootstrap draws."""
    low_n, low_d = n_done.min() / 10**below_dex, d_done.min() / 10**below_dex
    high = np.sqrt(budget / (6 * TPP[0]))
    sizes = plan_next.abstract_sizes(plan_next.ladder(low_n, high, PER_DECADE))
    floor = plan_next.cheapest_flops(sizes["n_fit"].min(), low_d, TPP[0])
    levels = plan_next.flops_levels(floor, max(budget, floor), PER_DECADE)
    cells = plan_next.candidate_cells(
        sizes, levels, tokens_per_param=TPP, min_tokens=low_d, done=(n_done, d_done)
    )
    design = ParametricDesign(quantity=quantity, target_flops=target, random_state=seed)
    design.fit(result)
    cost = cells["flops_6nd"].to_numpy(float)
    picked = design.select(cells["n_fit"], cells["tokens"], cost, budget)
    chosen = cells.iloc[picked.index]
    return chosen["n_fit"].to_numpy(float), chosen["tokens"].to_numpy(float)


def one_seed(name: str, seed: int) -> list[dict]:
    law, budgets = LAWS[name], BUDGETS[name]
    rng = np.random.default_rng(seed)
    a_true = float(allocation_exponents(law["alpha"], law["beta"])[0])
    target = 100 * budgets[-1]
    n_true = float(
        optimal_allocation(target, **{k: law[k] for k in ("A", "B", "alpha", "beta")})[0]
    )
    n0, d0 = isoflop(law, budgets)
    y0 = observe(law, n0, d0, rng)
    start = fit(n0, d0, y0, seed)
    extra = SIZES * NEXT_FACTOR * budgets[-1]

    def record(design: str, spent: float, f) -> dict:
        ci = f.ci_["a"]
        n_hat = float(f.optimal_allocation(target)[0])
        return {
            "law": name,
            "seed": seed,
            "design": design,
            "extra": spent,
            "a": f.result_.exponents["a"],
            "width": ci[1] - ci[0],
            "covers": ci[0] <= a_true <= ci[1],
            "n_err_dex": abs(np.log10(n_hat / n_true)),
        }

    rows = [record("initial IsoFLOP (3 budgets)", 0.0, start)]
    n1, d1 = isoflop(law, (NEXT_FACTOR * budgets[-1],))
    both = (np.r_[n0, n1], np.r_[d0, d1])
    rows.append(
        record(
            "+ next IsoFLOP budget", extra, fit(*both, np.r_[y0, observe(law, n1, d1, rng)], seed)
        )
    )
    plans: list[tuple[str, float, str, float | None, float]] = [
        ("planner, a", 1.0, "a", None, 0.0),
        ("planner, a", 0.5, "a", None, 0.0),
        ("planner, a", 0.25, "a", None, 0.0),
        ("planner, N_opt(100×C)", 1.0, "n_opt", target, 0.0),
        ("planner, a, open region", 1.0, "a", None, BELOW_DEX),
        ("planner, a, open region", 0.5, "a", None, BELOW_DEX),
    ]
    for label, share, quantity, at, below in plans:
        n2, d2 = planner_cells(start.result_, n0, d0, share * extra, quantity, at, seed, below)
        y2 = observe(law, n2, d2, np.random.default_rng([seed, int(share * 100), len(label)]))
        spent = float(flops_6nd(n2, d2).sum())
        rows.append(
            record(
                f"{label}, {share:g}×X",
                spent,
                fit(np.r_[n0, n2], np.r_[d0, d2], np.r_[y0, y2], seed),
            )
        )
    return rows


def summarise(frame: pd.DataFrame) -> pd.DataFrame:
    a_true = {k: float(allocation_exponents(v["alpha"], v["beta"])[0]) for k, v in LAWS.items()}

    def stats(g: pd.DataFrame) -> pd.Series:
        law = g.name[0]
        spread = np.percentile(g["a"], [2.5, 97.5])
        return pd.Series(
            {
                "extra FLOPs (median)": g["extra"].median(),
                "median CI width of a": g["width"].median(),
                "95% range of â over seeds": spread[1] - spread[0],
                "RMSE of â": float(np.sqrt(np.mean((g["a"] - a_true[law]) ** 2))),
                "CI coverage": g["covers"].mean(),
                "N_opt(100×C) error, median": 10 ** g["n_err_dex"].median() - 1,
                "N_opt(100×C) error, 90th pct": 10 ** g["n_err_dex"].quantile(0.9) - 1,
            }
        )

    return frame.groupby(["law", "design"], sort=False).apply(stats, include_groups=False)


def markdown(table: pd.DataFrame, formats: dict[str, Callable[[float], str]]) -> str:
    cols = list(table.columns)
    lines = ["| law | design | " + " | ".join(cols) + " |", "|---" * (len(cols) + 2) + "|"]
    for (law, design), row in table.iterrows():
        cells = [formats.get(c, lambda v: f"{v:.3g}")(row[c]) for c in cols]
        lines.append(f"| {law} | {design} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def simulation_study(seeds: int) -> pd.DataFrame:
    rows = []
    t0 = time.perf_counter()
    for name in LAWS:
        for seed in range(seeds):
            rows += one_seed(name, seed)
    print(f"simulation study: {seeds} seeds × {len(LAWS)} laws in {time.perf_counter() - t0:.0f} s")
    frame = pd.DataFrame(rows)
    if out := os.environ.get("BENCH_PLAN_NEXT_CSV"):
        frame.to_csv(out, index=False)
    table = summarise(frame)
    pct = {
        c: (lambda v: f"{100 * v:.1f}%") for c in table.columns if "error" in c or "coverage" in c
    }
    print(markdown(table, {**pct, "extra FLOPs (median)": lambda v: f"{v:.2g}"}))
    print()
    for name in LAWS:
        t = table.loc[name]
        base = t.loc["+ next IsoFLOP budget"]
        for design in t.index[2:]:
            ratio = t.loc[design] / base
            print(
                f"{name}: {design}: CI width ×{ratio['median CI width of a']:.2f}, RMSE of â "
                f"×{ratio['RMSE of â']:.2f} of the IsoFLOP extension's"
            )
    return frame


def criterion_check(cases: int = 3, replicas: int = 400) -> None:
    """Predicted width ratios (criterion) against preposterior simulation, a few cases."""
    print("\n| law | seed | cells | criterion ×width (θ̂ only) | simulated ×width | replicas |")
    print("|---|---|---|---|---|---|")
    for name, law in LAWS.items():
        budgets = BUDGETS[name]
        for seed in range(cases):
            rng = np.random.default_rng(1000 + seed)
            n0, d0 = isoflop(law, budgets)
            start = fit(n0, d0, observe(law, n0, d0, rng), seed).result_
            extra = SIZES * NEXT_FACTOR * budgets[-1]
            sets = {
                "next IsoFLOP budget": isoflop(law, (NEXT_FACTOR * budgets[-1],)),
                "planner (a, X)": planner_cells(start, n0, d0, extra, "a", None, seed),
            }
            for label, (n, d) in sets.items():
                design = ParametricDesign(quantity="a", random_state=seed).fit(start)
                local = ParametricDesign(quantity="a", n_draws=1).fit(start)
                sim = simulate_widths(start, "a", n, d, replicas=replicas, random_state=seed)
                print(
                    f"| {name} | {seed} | {label} | ×{design.width_ratio(n, d):.2f} "
                    f"(×{local.width_ratio(n, d):.2f}) | ×{sim.ratio:.2f} | {sim.replicas} |"
                )


def chinchilla_example(replicas: int = 400) -> None:
    """Ten more runs for Epoch's Chinchilla data (240 runs, the 5 highest losses dropped) with
    10% of the compute the 240 used: the planner's ten against ten IsoFLOP runs at 1e21."""
    raw = pd.read_csv(CHINCHILLA).sort_values("loss").iloc[:-5]
    n, c = raw["Model Size"].to_numpy(float), raw["Training FLOP"].to_numpy(float)
    d, y = tokens_6nd(c, n), raw["loss"].to_numpy(float)
    start = ParametricLossFit(n_bootstrap=4000, random_state=0, validate=False).fit(n, d, y)
    budget = 0.1 * c.sum()
    design = ParametricDesign(quantity="a", random_state=0).fit(start.result_)
    high = np.sqrt(budget / (6 * TPP[0]))
    sizes = plan_next.abstract_sizes(plan_next.ladder(n.min(), high, PER_DECADE))
    floor = plan_next.cheapest_flops(sizes["n_fit"].min(), d.min(), TPP[0])
    cells = plan_next.candidate_cells(
        sizes,
        plan_next.flops_levels(floor, budget, PER_DECADE),
        tokens_per_param=TPP,
        min_tokens=d.min(),
        done=(n, d),
    )
    pick = design.select(cells["n_fit"], cells["tokens"], cells["flops_6nd"], budget, max_runs=10)
    chosen = cells.iloc[pick.index]
    n_iso = float(start.optimal_allocation(1e21)[0]) * np.logspace(-0.6, 0.6, 10)
    sets = {
        "planner's ten": (chosen["n_fit"].to_numpy(float), chosen["tokens"].to_numpy(float)),
        "ten IsoFLOP runs at 1e21": (n_iso, tokens_6nd(1e21, n_iso)),
    }
    print(
        f"\nChinchilla (Epoch, 240 runs): a = {start.result_.exponents['a']:.4f}, 95% CI "
        f"[{start.ci_['a'][0]:.4f}, {start.ci_['a'][1]:.4f}] (bootstrap, 4,000); budget "
        f"{budget:.3g} FLOPs = 10% of the {c.sum():.3g} spent"
    )
    print("\n| rank | N | D | D/N | FLOPs | expected CI width of a |")
    print("|---|---|---|---|---|---|")
    rows = zip(chosen.iterrows(), pick.width_ratio, strict=True)
    for rank, ((_, row), ratio) in enumerate(rows, 1):
        print(
            f"| {rank} | {row['n_fit']:.3g} | {row['tokens']:.3g} | "
            f"{row['tokens'] / row['n_fit']:.3g} | {row['flops_6nd']:.3g} | "
            f"{design.width_ * ratio:.4f} |"
        )
    print("\n| ten runs | FLOPs | criterion: ×width (over θ draws) | at θ̂ | simulated ×width |")
    print("|---|---|---|---|---|")
    local = ParametricDesign(quantity="a", n_draws=1).fit(start.result_)
    for label, (nn, dd) in sets.items():
        sim = simulate_widths(start.result_, "a", nn, dd, replicas=replicas, random_state=0)
        print(
            f"| {label} | {float(flops_6nd(nn, dd).sum()):.3g} | ×{design.width_ratio(nn, dd):.3f} "
            f"| ×{local.width_ratio(nn, dd):.3f} | ×{sim.ratio:.3f} ({sim.replicas} studies) |"
        )


def main(seeds: int = 40) -> None:
    simulation_study(seeds)
    criterion_check()
    chinchilla_example()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 40)
