"""Known laws and small studies for the plan-next tests."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from slscale.fitting import FitResult, ParametricLossFit
from slscale.fitting.laws import optimal_allocation, parametric_loss
from slscale.spec import RunState
from slscale.store import EvalResult, open_store
from slscale.sweep.plan import param_counts

DATA = Path(__file__).resolve().parents[1] / "public_data"
CHINCHILLA = DATA / "chinchilla_epoch_svg_extracted.csv"
TEXTLESS = {"E": 1.73, "A": 13.9, "B": 39.8, "alpha": 0.25, "beta": 0.24}
"""Cuervo & Marxer (2024) Table 5."""
CHINCHILLA_LIKE = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}
RECIPE = {"context_length": 128, "global_batch_size": 8}
"""1,024 tokens per optimizer step."""
STEP_TOKENS = 1024


def isoflop(law: dict[str, float], budgets: Sequence[float], sizes: int = 5, span_dex=1.2):
    """N, D of IsoFLOP budgets: ``sizes`` log-spaced sizes centred on the law's N_opt."""
    n, d = [], []
    for c in budgets:
        mid = float(optimal_allocation(c, **{k: law[k] for k in ("A", "B", "alpha", "beta")})[0])
        grid = mid * np.logspace(-span_dex / 2, span_dex / 2, sizes)
        n += list(grid)
        d += list(c / (6 * grid))
    return np.array(n), np.array(d)


def noisy_loss(law: dict[str, float], n, d, sigma: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return parametric_loss(n, d, **law) * np.exp(rng.normal(0.0, sigma, np.size(n)))


def small_fit(
    law=CHINCHILLA_LIKE, budgets=(1e18, 3e18, 1e19), sigma=0.015, seed=1, bootstrap=300
) -> FitResult:
    """Approach 3 on a 3-budget IsoFLOP design of ``law``."""
    n, d = isoflop(law, budgets)
    y = noisy_loss(law, n, d, sigma, seed)
    return (
        ParametricLossFit(n_bootstrap=bootstrap, random_state=0, validate=False)
        .fit(n, d, y)
        .result_
    )


SIZES = ("1M", "1.6M", "2.5M", "4M", "6.3M", "10M", "16M")
"""Non-embedding targets of the stored study (llama builds each within 2%)."""
BUDGETS = (1e15, 3e15, 1e16)


def spec(size: str, tokens: int, modality: str = "textless", seed: int = 0) -> dict:
    base = {
        "family": "llama",
        "modality": modality,
        "size": size,
        "tokens": int(tokens),
        "recipe": dict(RECIPE),
        "seed": seed,
    }
    if modality == "textless":
        base["units_only_vocab"] = True
    else:
        base["init"] = f"textlm-{size}"
        base["mix"] = {"text_share": 0.3, "interleaved_share": 0.4, "speech_share": 0.3}
    return base


def study_cells(budgets: Sequence[float] = BUDGETS, sizes: Sequence[str] = SIZES):
    """(size, tokens) of an IsoFLOP grid over the stored sizes, D rounded to whole steps."""
    cells = []
    for c in budgets:
        for size in sizes:
            n = param_counts({"family": "llama", "size": size, "units_only_vocab": True})
            tokens = max(1, round(c / (6 * n["n_params"]) / STEP_TOKENS)) * STEP_TOKENS
            if tokens / n["n_params"] >= 1:
                cells.append((size, tokens))
    return cells


def write_study(
    workdir: Path,
    law=TEXTLESS,
    sigma=0.01,
    seed=0,
    cells=None,
    modality: str = "textless",
    scores: bool = False,
    pending: bool = True,
) -> Path:
    """A results store holding SUCCEEDED runs of ``cells`` with losses from ``law``; with
    ``scores`` each run also has an sSC evaluation following 0.3·C^0.02."""
    cells = study_cells() if cells is None else cells
    specs = {f"{modality}-{size}-{tokens}": spec(size, tokens, modality) for size, tokens in cells}
    rng = np.random.default_rng(seed)
    with open_store(workdir) as store:
        store.register(specs)
        for run, s in specs.items():
            counts = param_counts(s)
            n, d = counts["n_params"], s["tokens"]
            loss = float(parametric_loss(n, d, **law) * np.exp(rng.normal(0, sigma)))
            store.set_state(run, RunState.SUCCEEDED)
            store.set_summary(run, {**counts, "tokens": d, "flops_6nd": 6.0 * n * d, "loss": loss})
            if scores:
                value = 0.3 * (6.0 * n * d) ** 0.02 * (1 - 0.02 * abs(np.log10(d / n) - 1.3))
                store.log_evals([EvalResult(run, 1, "sSC", "S->S", float(value), 1871, "sum")])
        if pending:
            store.register({"pending": spec("1M", 4096, modality, seed=9)})
    return workdir
