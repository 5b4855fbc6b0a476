"""`grid plan` of a 1,000-run grid (goal: under 2 s, CLI start-up included).

Baseline in the same run: counting parameters the obvious way, by instantiating each distinct
model on PyTorch's meta device and summing ``numel`` (what a plan without an accounting model
would do), scaled to the same grid.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from slscale.spec import RunSpec
from slscale.sweep.generators import ratio_grid
from slscale.sweep.grid import GridSpec, expand
from slscale.sweep.io import save_grid
from slscale.sweep.plan import architecture, param_counts, plan, vocab_size

SIZES = [
    f"{n}M"
    for n in (
        20,
        30,
        45,
        60,
        85,
        110,
        155,
        200,
        250,
        309,
        400,
        500,
        650,
        823,
        1000,
        1300,
        1700,
        2200,
        2800,
        3500,
    )
]


def thousand_run_grid() -> GridSpec:
    """20 sized shapes × 2 families... × D/N ratios × seeds = 1,000 runs."""
    return GridSpec(
        name="bench-1000",
        base={"modality": "textless", "units_only_vocab": True},
        axes={"family": ["llama", "qwen2"], "seed": [0, 1, 2, 3, 4]},
        generators=[ratio_grid(SIZES, [2, 4, 8, 20, 100])],
    )


def _meta_count(spec: RunSpec) -> int:
    import torch
    from transformers import AutoModelForCausalLM

    from slscale.models.families import hf_config

    arch = architecture(spec)
    config = hf_config(spec.family, arch, vocab_size=vocab_size(arch, spec.units_only_vocab))
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    return sum(p.numel() for p in model.parameters())


def main() -> None:
    grid = thousand_run_grid()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "grid.yaml"
        save_grid(grid, path)
        cli = [sys.executable, "-m", "slscale.cli", "grid", "plan", str(path), "--json"]
        start = time.perf_counter()
        out = subprocess.run(
            cli,
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONWARNINGS": "ignore"},
        )
        cli_seconds = time.perf_counter() - start
    runs = out.stdout.count('"run_id"')
    start = time.perf_counter()
    specs = expand(grid, param_counts)
    rows = plan(specs)
    inproc_seconds = time.perf_counter() - start
    sample = specs[:: max(1, len(specs) // 10)][:10]
    _meta_count(sample[0])  # warm-up: imports and first-call costs are not the baseline's
    start = time.perf_counter()
    for spec in sample:
        _meta_count(spec)
    meta_per_run = (time.perf_counter() - start) / len(sample)
    print("## grid plan of a 1,000-run grid\n")
    print("| measure | value |\n|---|---|")
    print(f"| runs planned | {runs} (in-process {len(rows)}) |")
    print(f"| `slscale grid plan --json` wall time (CLI start-up included) | {cli_seconds:.2f} s |")
    print(f"| in-process expand + plan | {inproc_seconds:.3f} s |")
    print(f"| baseline: meta-device instantiation per run | {meta_per_run * 1e3:.1f} ms |")
    print(f"| baseline scaled to {len(rows)} runs | {meta_per_run * len(rows):.1f} s |")
    print(
        f"| speed-up of the plan over the baseline | "
        f"{meta_per_run * len(rows) / inproc_seconds:.0f}× |"
    )


if __name__ == "__main__":
    main()
