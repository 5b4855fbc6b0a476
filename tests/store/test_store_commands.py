"""``slscale status`` and ``slscale export`` on a populated store."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from slscale.errors import SlscaleError
from slscale.spec import RunState
from slscale.store import EvalResult, Metric, Store, open_store
from slscale.store.commands import add_commands


def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="slscale")
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


@pytest.fixture
def populated(store: Store, make_spec) -> Store:
    store.register({"done": make_spec(), "broken": make_spec(lr=1e-3), "waiting": make_spec()})
    store.set_state("done", RunState.SUCCEEDED, host="n1", increment_attempts=True)
    store.set_state("broken", RunState.FAILED, error="RuntimeError: NaN loss\n  at step 7")
    store.set_state("broken", RunState.FAILED, increment_attempts=True, error="OOM\ntrace")
    store.set_summary("done", {"loss": 2.5, "note": "fine"})
    store.set_summary("broken", {"note": 3})  # mixed types in one summary column
    store.record_attempt("done", 1, 4)  # world sizes of the attempts, as a sweep records them
    store.record_attempt("broken", 1, 2)
    store.record_attempt("broken", 2, 1)
    curve = [Metric("done", s, "loss", 4.0 - s / 2, tokens=500_000 * s) for s in range(5)]
    store.log_metrics(curve)
    store.log_metrics([Metric("broken", 7, "loss", float("nan"), tokens=7000)])
    store.log_evals([EvalResult("done", 4, "sSC", "S->S", 0.53, 1871, "sum")])
    return store


def test_status_table(populated: Store, store_target: str, capsys) -> None:
    assert run_cli("status", "--store", store_target) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith(": 3 runs (1 FAILED, 1 PENDING, 1 SUCCEEDED)")
    assert lines[1].split() == ["run", "id", "state", "attempts", "workers", "last", "loss",
                                "tokens", "done", "error"]  # fmt: skip
    assert lines[2].split() == ["broken", "FAILED", "1", "2,1", "-", "7,000", "OOM"]
    assert lines[3].split() == ["done", "SUCCEEDED", "1", "4", "2.0000", "2,000,000"]
    assert lines[4].split() == ["waiting", "PENDING", "0", "-", "-", "-"]
    assert len(lines) == 5 and "trace" not in "\n".join(lines)


def test_status_json(populated: Store, store_target: str, capsys) -> None:
    assert run_cli("status", "--store", store_target, "--json") == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows == [
        {"run_id": "broken", "state": "FAILED", "attempts": 1, "workers": [2, 1],
         "last_loss": None, "tokens_done": 7000, "error": "OOM"},
        {"run_id": "done", "state": "SUCCEEDED", "attempts": 1, "workers": [4],
         "last_loss": 2.0, "tokens_done": 2_000_000, "error": None},
        {"run_id": "waiting", "state": "PENDING", "attempts": 0, "workers": [],
         "last_loss": None, "tokens_done": None, "error": None},
    ]  # fmt: skip


def test_status_shows_the_latest_world_sizes_of_many_attempts(tmp_path: Path, capsys) -> None:
    with open_store(tmp_path / "wd") as store:
        store.register({"r": {}})
        for attempt, workers in enumerate([8, 8, 4, 4, 2, 8, 1], start=1):
            store.record_attempt("r", attempt, workers)
    assert run_cli("status", "--workdir", str(tmp_path / "wd")) == 0
    assert capsys.readouterr().out.splitlines()[2].split()[:4] == [
        "r",
        "PENDING",
        "0",
        "…,4,4,2,8,1",
    ]


def test_status_of_an_empty_store(tmp_path: Path, capsys) -> None:
    open_store(tmp_path / "wd").close()
    assert run_cli("status", "--workdir", str(tmp_path / "wd")) == 0
    assert capsys.readouterr().out.strip().endswith("results.db: 0 runs")


@pytest.mark.parametrize("where", [["--workdir", "no_such_dir"], ["--store", "no_such.db"]])
def test_status_of_no_study_says_so_and_creates_nothing(tmp_path: Path, where) -> None:
    target = str(tmp_path / where[1])
    with pytest.raises(SlscaleError, match=f"no study at {target}: .* does not exist"):
        run_cli("status", where[0], target)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_export_round_trips(populated: Store, store_target: str, tmp_path: Path, fmt) -> None:
    out = tmp_path / "exported"
    assert run_cli("export", "--store", store_target, "--format", fmt, "--out", str(out)) == 0
    assert sorted(p.name for p in out.iterdir()) == [f"{t}.{fmt}" for t in ("evals", "metrics",
                                                                           "runs")]  # fmt: skip
    read = pd.read_csv if fmt == "csv" else pd.read_parquet
    metrics = read(out / f"metrics.{fmt}")
    pd.testing.assert_frame_equal(metrics, populated.metrics_frame(), check_dtype=False)
    evals = read(out / f"evals.{fmt}")
    pd.testing.assert_frame_equal(evals, populated.evals_frame(), check_dtype=False)
    runs = read(out / f"runs.{fmt}").set_index("run_id")
    assert runs.loc["broken", "recipe.lr"] == 1e-3 and runs.loc["done", "loss"] == 2.5
    assert runs.loc["broken", "error"] == "OOM\ntrace" and runs.loc["done", "state"] == "SUCCEEDED"
    assert (runs.loc["done", "note"], runs.loc["broken", "note"]) == ("fine", "3")


def test_export_defaults_to_the_workdir(tmp_path: Path) -> None:
    workdir = tmp_path / "wd"
    with open_store(workdir) as store:
        store.register({"r": {"family": "llama"}})
    assert run_cli("export", "--workdir", str(workdir)) == 0
    assert (workdir / "export" / "runs.parquet").is_file()
    assert len(pd.read_parquet(workdir / "export" / "metrics.parquet")) == 0


def test_export_to_an_unwritable_path_is_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    open_store(tmp_path / "wd").close()
    with pytest.raises(SlscaleError, match=r"cannot write the export to .*a-file.*writable --out"):
        run_cli("export", "--workdir", str(tmp_path / "wd"), "--out", str(blocker / "out"))
    with pytest.raises(SlscaleError, match="give --out DIR"):
        run_cli("export", "--store", str(tmp_path / "x.db"))


def test_cli_prints_store_errors_as_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    open_store(tmp_path / "wd").close()
    argv = ["export", "--workdir", str(tmp_path / "wd"), "--out", str(blocker / "out")]
    done = subprocess.run([sys.executable, "-m", "slscale.cli", *argv], capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("slscale: error: cannot write")
