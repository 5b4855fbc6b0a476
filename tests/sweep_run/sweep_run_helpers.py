"""Helpers of the sweep scheduler tests: tiny grids, launching them, reading the store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import yaml

from slscale.store import open_store
from slscale.sweep import plan as plan_mod
from slscale.sweep.grid import expand
from slscale.sweep.io import load_grid
from slscale.sweep.launch import LaunchOptions, launch

ARCH = {
    "num_layers": 1,
    "hidden_size": 16,
    "num_heads": 2,
    "num_kv_heads": 1,
    "intermediate_size": 32,
    "vocab_size": 64,
}
TOKENS_PER_STEP = 4 * 32  # global batch 4 x context 32


def write_grid(path: Path, seeds: list[int], steps: list[int], name: str = "sched") -> Path:
    """A grid of len(seeds) x len(steps) tiny textless runs with explicit architectures."""
    grid = {
        "name": name,
        "base": {
            "family": "llama",
            "modality": "textless",
            "arch": ARCH,
            "recipe": {
                "global_batch_size": 4,
                "context_length": 32,
                "lr": 3e-3,
                "lr_min": 3e-4,
                "warmup_fraction": 0.1,
            },
        },
        "axes": {"seed": seeds, "tokens": [n * TOKENS_PER_STEP for n in steps]},
    }
    path.write_text(yaml.safe_dump(grid))
    return path


def specs_of(grid_path: Path) -> list[Any]:
    return expand(load_grid(grid_path), plan_mod.param_counts)


class Events:
    """A reporter that keeps every event."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def event(self, run_id: str, message: str) -> None:
        self.lines.append((run_id, message))

    def refresh(self, driver: Any) -> None:
        pass

    def started(self) -> list[str]:
        return [r for r, m in self.lines if m.startswith("attempt") and m.endswith("started")]


def run_sweep(
    workdir: Path,
    grid_path: Path,
    run_fn: Any,
    address: str,
    reporter: Any = None,
    **options: Any,
) -> Any:
    """Launch a grid in this process (short leases and polls, so the tests go fast)."""
    events = reporter or Events()
    settings = {"lease_seconds": 4.0, "poll_seconds": 0.2, "stop_grace_seconds": 10.0, **options}
    opts = LaunchOptions(workdir=str(workdir), address=address, **settings)
    report = launch(specs_of(grid_path), opts, run_fn=run_fn, reporter=events)
    return report, events


def run_sweep_during(
    action: Any, workdir: Path, grid_path: Path, run_fn: Any, address: str, **options: Any
) -> Any:
    """:func:`run_sweep` while ``action()`` runs in a thread of its own (a fault injected
    mid-sweep); the thread is joined before this returns."""
    thread = threading.Thread(target=action)
    thread.start()
    try:
        return run_sweep(workdir, grid_path, run_fn, address, **options)
    finally:
        thread.join()


def records(workdir: Path) -> dict[str, Any]:
    with open_store(workdir) as store:
        return {r.run_id: r for r in store.list_runs()}


def curve(workdir: Path, run_id: str, name: str = "loss") -> dict[int, float]:
    with open_store(workdir) as store:
        frame = store.metrics_frame(run_ids=[run_id], names=[name])
    assert frame["step"].is_unique
    return dict(zip(frame["step"].astype(int), frame["value"], strict=True))


def executions(workdir: Path, run_id: str) -> list[dict[str, Any]]:
    path = workdir / "runs" / run_id / "executions.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def wait_for(condition: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def cli_driver(
    workdir: Path,
    grid_path: Path,
    address: str,
    *args: str,
    run_fn_kwargs: dict[str, Any] | None = None,
) -> subprocess.Popen[str]:
    """``sweep launch`` as a separate driver process joining the test cluster."""
    command = [
        sys.executable,
        "-m",
        "slscale.cli",
        "sweep",
        "launch",
        str(grid_path),
        "--workdir",
        str(workdir),
        "--address",
        address,
        "--run-fn",
        "slscale.sweep.scheduler.runners:SyntheticRun",
        "--run-fn-kwargs",
        json.dumps(run_fn_kwargs or {}),
        *args,
    ]
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    return subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )


class LosesDataOnFirstAttempt:
    """A job builder training as :class:`~slscale.sweep.scheduler.runners.MarkovJob` does,
    except that on the run's first attempt opening the training data fails with a connection
    reset (an OSError, as from a network file system that dropped its connection): a transient
    error, which the next attempt does not meet."""

    def __call__(self, spec: Any, **runtime: Any) -> Any:
        import dataclasses

        from slscale.sweep.scheduler.runners import MarkovJob

        first = runtime.get("attempt") == 1
        job = MarkovJob()(spec, **runtime)
        return dataclasses.replace(job, train_data=_connection_reset) if first else job


def _connection_reset(shard: int, num_shards: int) -> Any:
    raise ConnectionResetError(104, "Connection reset by peer (the data's file server)")


def write_ladder(path: Path, steps: list[int], name: str = "ladder") -> Path:
    """A WSD ladder of one tiny size: a trunk and a decay branch (f = 0.2) per budget of
    ``steps`` optimizer steps."""
    grid = {
        "name": name,
        "base": {
            "family": "llama",
            "modality": "textless",
            "size": "mini-25k",
            "units_only_vocab": True,
            "recipe": {
                "global_batch_size": 4,
                "context_length": 32,
                "lr": 3e-3,
                "lr_min": 3e-4,
                "warmup_fraction": 0.05,
            },
        },
        "generators": [
            {"wsd_ladder": {"sizes": ["mini-25k"], "tokens": [n * TOKENS_PER_STEP for n in steps]}}
        ],
    }
    path.write_text(yaml.safe_dump(grid))
    return path


class TrunkLosesData:
    """A job builder training as :class:`~slscale.sweep.scheduler.runners.MarkovJob` does,
    except that a WSD trunk's training data fails with a connection reset at every attempt
    (a transient error that never clears: the trunk is FAILED once its retries are spent)."""

    def __call__(self, spec: Any, **runtime: Any) -> Any:
        import dataclasses

        from slscale.sweep.scheduler.runners import MarkovJob

        job = MarkovJob()(spec, **runtime)
        return dataclasses.replace(job, train_data=_connection_reset) if spec.is_trunk else job
