"""``slscale export --to wandb|tensorboard``: a finished study's store pushed to the trackers
after the fact reads back, in the trackers' own formats, as the store."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
from test_store_commands import run_cli

from slscale.errors import SlscaleError
from slscale.spec import RunState
from slscale.store import EvalResult, Metric, open_store
from slscale.trackers import wandb_run_id

sys.path.insert(0, str(Path(__file__).parents[1]))
from tracker_files import tensorboard_scalars, wandb_runs

REFERENCE = Path(__file__).parents[2] / "fitting" / "reference"
TB_FLOAT = 1e-6
"""TensorBoard keeps scalars as 32-bit floats."""


@pytest.fixture
def study(tmp_path: Path, make_spec: Any) -> Path:
    """A workdir whose SQLite store holds two runs with curves and evals."""
    workdir = tmp_path / "study-a"
    with open_store(workdir) as store:
        store.register({"small": make_spec(tokens=1_000_000), "large": make_spec(lr=1e-3)})
        for run_id, scale in (("small", 1.0), ("large", 0.5)):
            store.set_state(run_id, RunState.SUCCEEDED, increment_attempts=True)
            store.set_summary(run_id, {"loss": 2.0 * scale, "n_params": 1000})
            store.log_metrics(
                Metric(run_id, step, name, value * scale, tokens=100 * step)
                for step in range(1, 6)
                for name, value in (("loss", 4.0 - step / 3), ("lr", 1e-3 / step))
            )
        store.log_evals([
            EvalResult("small", 5, "sSC", "S", 0.55, 1000, "slamkit", margin=0.01),
            EvalResult("large", 5, "tSC", "S", 0.61, 1000, "slamkit", margin=None),
        ])  # fmt: skip
    return workdir


def curves(workdir: Path, run_id: str) -> dict[str, dict[int, float]]:
    with open_store(workdir) as store:
        frame = store.metrics_frame(run_ids=[run_id])
    return {
        str(name): dict(zip(part["step"].astype(int), part["value"].astype(float), strict=True))
        for name, part in frame.groupby("name")
    }


def test_push_to_tensorboard(study: Path, tmp_path: Path, capsys: Any) -> None:
    board = tmp_path / "tb"
    assert run_cli("export", "--workdir", str(study), "--to", "tensorboard",
                   "--tensorboard", str(board)) == 0  # fmt: skip
    assert capsys.readouterr().out.startswith("pushed 2 runs (20 metric rows, 2 evals)")
    for run_id in ("small", "large"):
        read = tensorboard_scalars(board / run_id)
        for name, curve in curves(study, run_id).items():
            assert read[name] == pytest.approx(curve, rel=TB_FLOAT)
    assert tensorboard_scalars(board / "small")["eval/sSC/S/slamkit/margin"] == {
        5: pytest.approx(0.01, rel=TB_FLOAT)
    }


def test_push_to_wandb_with_fits(
    study: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    fit = REFERENCE / "sims2025_interleaved_ssc.json"
    argv = ["export", "--workdir", str(study), "--to", "wandb", "--wandb", "slscale-test",
            "--wandb-dir", str(tmp_path / "wb"), "--fits", str(fit)]  # fmt: skip
    assert run_cli(*argv) == 0
    runs = {run.name: run for run in wandb_runs(tmp_path / "wb")}
    assert set(runs) == {"small", "large", "fits-study-a"}
    for run_id in ("small", "large"):
        run = runs[run_id]
        assert run.run_id == wandb_run_id(run_id) and run.group == "study-a"
        got: dict[str, dict[int, float]] = {}
        for step, values in run.history.items():
            for name, value in values.items():
                got.setdefault(name, {})[step] = float(value)
        assert got == curves(study, run_id)
        assert run.summary["state"] == "SUCCEEDED"
        assert run.config["D"] == run.config["tokens"]
        assert run.config["flops_6nd"] == 6.0 * 1000 * run.config["tokens"]
    assert runs["small"].summary["eval/sSC/S/slamkit"] == 0.55
    assert runs["small"].summary["eval/sSC/S/slamkit/margin"] == 0.01
    assert "eval/tSC/S/slamkit/margin" not in runs["large"].summary
    raw = json.loads(fit.read_text())
    expected = {f"fit/{raw['label']}/params/{k}": v for k, v in raw["params"].items()}
    expected |= {f"fit/{raw['label']}/exponents/{k}": v for k, v in raw["exponents"].items()}
    assert runs["fits-study-a"].summary == expected


def test_push_errors_name_the_flag(study: Path, tmp_path: Path) -> None:
    with pytest.raises(SlscaleError, match=r"--to wandb: give --wandb PROJECT"):
        run_cli("export", "--workdir", str(study), "--to", "wandb")
    with pytest.raises(SlscaleError, match=r"--to tensorboard: give --tensorboard DIR"):
        run_cli("export", "--workdir", str(study), "--to", "tensorboard", "--wandb", "p")
    with pytest.raises(SlscaleError, match=r"--fits goes with --to wandb"):
        run_cli("export", "--workdir", str(study), "--fits", "x.json")
    not_a_fit = tmp_path / "fit.json"
    shutil.copy(REFERENCE.parent / "__init__.py", not_a_fit)
    with pytest.raises(SlscaleError, match=r"--fits .*fit.json: cannot read it as a fit result"):
        run_cli("export", "--workdir", str(study), "--to", "tensorboard",
                "--tensorboard", str(tmp_path / "tb"), "--fits", str(not_a_fit))  # fmt: skip
