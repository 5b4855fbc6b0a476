"""Fixtures of the fitting tests: public data (tests/public_data) and synthetic scaling laws."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from slscale import cli
from slscale.fitting.laws import parametric_loss

DATA = Path(__file__).resolve().parents[1] / "public_data"


@pytest.fixture(scope="session")
def chinchilla() -> pd.DataFrame:
    """Epoch's 240 points: N, C, D = C/(6N), loss (5 highest-loss points dropped, as Epoch)."""
    raw = pd.read_csv(DATA / "chinchilla_epoch_svg_extracted.csv")
    kept = raw.sort_values("loss").iloc[:-5]
    n, c = kept["Model Size"].to_numpy(), kept["Training FLOP"].to_numpy()
    return pd.DataFrame(
        {"n_params": n, "flops": c, "tokens": c / (6 * n), "loss": kept["loss"].to_numpy()}
    )


@pytest.fixture(scope="session")
def isoflops() -> pd.DataFrame:
    return pd.read_csv(DATA / "isoflops_open_athena.csv")


@pytest.fixture(scope="session")
def olmo_curves() -> pd.DataFrame:
    return pd.read_csv(DATA / "olmo_ladder_curves.csv")


def isoflop_grid(
    budgets: Sequence[float],
    sizes_per_budget: int = 9,
    span_dex: float = 1.2,
    centre: Callable[[float], float] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """N, D and budget of an IsoFLOP design: sizes log-spaced around ``centre(C)``."""
    n, d, c = [], [], []
    for budget in budgets:
        mid = centre(budget) if centre else 0.1 * (budget / 6) ** 0.5
        sizes = mid * np.logspace(-span_dex / 2, span_dex / 2, sizes_per_budget)
        n.extend(sizes)
        d.extend(budget / (6 * sizes))
        c.extend([budget] * sizes_per_budget)
    return np.array(n), np.array(d), np.array(c)


def synthetic_losses(
    params: dict[str, float], n: np.ndarray, d: np.ndarray, noise: float, seed: int
) -> np.ndarray:
    """Losses of the parametric law with multiplicative log-normal noise of sd ``noise``."""
    rng = np.random.default_rng(seed)
    return parametric_loss(n, d, **params) * np.exp(rng.normal(0.0, noise, n.size))


@pytest.fixture
def run_cli() -> Callable[[list[str]], int]:
    """The real ``slscale`` entry point (``fit`` is one of its commands)."""
    assert cli.COMMANDS["fit"] == "slscale.fitting.commands"
    return cli.main


_LOOP = """
import json, sys
import numpy as np
from slscale.fitting.objective import LogPoints
from slscale.fitting.optimise import hoffmann_grid, lbfgs_multistart
n, d, y = np.load(sys.argv[1])
fit = lbfgs_multistart(LogPoints.from_arrays(n, d, y), float(sys.argv[2]),
                       hoffmann_grid()[:: int(sys.argv[3])])
print(json.dumps({"value": fit.value, "theta": fit.theta.tolist()}))
"""


def scipy_loop(tmp_path: Path, n, d, loss, delta: float, stride: int) -> dict:
    """Best of scipy L-BFGS-B from every ``stride``-th Hoffmann start, run in a child process
    with single-threaded BLAS (multi-threaded OpenBLAS slows scipy's L-BFGS-B 15x on a busy
    machine, and the variable is read only when BLAS loads)."""
    data = tmp_path / "points.npy"
    np.save(data, np.array([n, d, loss], dtype=np.float64))
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [sys.executable, "-c", _LOOP, str(data), repr(delta), str(stride)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=900,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])
