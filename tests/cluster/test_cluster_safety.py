"""Safe defaults: a password in the store URL appears nowhere the sweep writes (its output,
run folders, result.json, store tables, exports, Ray's logs); the store holds JSON text,
never pickled objects; the local Ray runtime keeps Ray's token authentication on."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from sweep_run_helpers import specs_of, write_grid

from slscale.identity import run_id
from slscale.spec import RunState
from slscale.store import open_store

PASSWORD = "Hunter2-s3cret-Pw"
RUNTIME = {"log_every_steps": 1, "export_model": False, "device": "cpu"}


def slscale(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "slscale.cli", *args], capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def files_containing(root: Path, needle: bytes) -> list[str]:
    return [str(p) for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


@pytest.mark.postgres
def test_a_store_password_is_never_written(ray_eight_cpus, postgres_server_url, tmp_path):
    from pg_server import create_database

    head, _, _ = postgres_server_url.rpartition("/")
    create_database(int(head.rsplit(":", 1)[1]), "secret_test")
    # The throwaway server trusts every local login, so any password is accepted.
    url = f"{head}/secret_test".replace("slscale@", f"slscale:{PASSWORD}@")
    grid = write_grid(tmp_path / "grid.yaml", seeds=[1], steps=[6])
    (rid,) = [run_id(s) for s in specs_of(grid)]
    workdir, export = tmp_path / "w", tmp_path / "export"
    output = slscale(
        "sweep", "launch", str(grid), "--workdir", str(workdir), "--store", url,
        "--address", ray_eight_cpus,
        "--run-fn", "slscale.sweep.scheduler.runners:markov_trainer",
        "--run-fn-kwargs", json.dumps(RUNTIME),
    )  # fmt: skip
    output += slscale("status", "--store", url)
    output += slscale("export", "--store", url, "--format", "csv", "--out", str(export))
    with open_store(url) as store:
        run = store.get_run(rid)
        assert run is not None and run.state == RunState.SUCCEEDED
        tables = [store.runs_frame(), store.metrics_frame(), store.evals_frame()]
    assert (workdir / "runs" / rid / "result.json").exists()

    assert PASSWORD not in output and "***" in output
    assert files_containing(workdir, PASSWORD.encode()) == []
    assert files_containing(export, PASSWORD.encode()) == []
    assert not any(PASSWORD in frame.to_csv() for frame in tables)
    import ray

    session = Path(ray._private.worker._global_node.get_session_dir_path())
    assert files_containing(session / "logs", PASSWORD.encode()) == []


def test_the_store_holds_json_text_never_pickles(tmp_path):
    """Every column of the SQLite store is text or a number, and every spec and summary is
    JSON text that json.loads reads back."""
    path = tmp_path / "results.db"
    with open_store(str(path)) as store:
        store.register({"r1": {"family": "llama", "tokens": 10}})
        store.set_summary("r1", {"loss": 2.5, "steps": 3})
    with sqlite3.connect(path) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        types = {
            (t, c[1]): c[2].upper() for t in tables for c in conn.execute(f"PRAGMA table_info({t})")
        }
        assert not [k for k, v in types.items() if "BLOB" in v or v == ""], types
        blobs = [
            (t, c) for (t, c) in types for (kind,) in conn.execute(f"SELECT typeof({c}) FROM {t}")
            if kind == "blob"
        ]  # fmt: skip
        assert blobs == []
        texts = [v for (t, c), kind in types.items() for (v,) in conn.execute(
            f"SELECT {c} FROM {t}") if isinstance(v, str) and v.startswith("{")]  # fmt: skip
    assert {"family": "llama", "tokens": 10} in [json.loads(v) for v in texts]


def test_the_local_ray_runtime_keeps_token_authentication(tmp_path):
    """Without RAY_AUTH_MODE in the environment, ``sweep launch`` starts its local Ray runtime
    with Ray's default token authentication (slscale does not turn it off): the runs' worker
    processes see RAY_AUTH_MODE=token."""
    import os

    from cluster_helpers import placements

    grid = write_grid(tmp_path / "grid.yaml", seeds=[1, 2], steps=[3])
    workdir = tmp_path / "w"
    env = {k: v for k, v in os.environ.items() if k != "RAY_AUTH_MODE"}
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parent), env.get("PYTHONPATH", "")])
    command = [
        sys.executable, "-m", "slscale.cli", "sweep", "launch", str(grid),
        "--workdir", str(workdir), "--num-cpus", "2", "--quiet",
        "--run-fn", "cluster_helpers:NodeRecordingRun",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr
    modes = {p["ray_auth_mode"] for s in specs_of(grid) for p in placements(workdir, run_id(s))}
    assert modes == {"token"}
