"""Fixtures of the cluster tests: a two-node Ray cluster started on this machine.

tests/ (pg_server.py), tests/sweep_run (tiny grids, store readers) and this folder (the run
function the nodes import) are put on ``sys.path``.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("DS_ACCELERATOR", "cpu")

_HERE = Path(__file__).resolve().parent
for _path in (_HERE, _HERE.parent, _HERE.parent / "sweep_run"):
    if str(_path) not in sys.path:
        sys.path.append(str(_path))

from cluster_helpers import (  # noqa: E402
    free_port,
    node_env,
    short_temp_dir,
    start_node,
    wait_for_nodes,
)


@pytest.fixture
def two_nodes(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A head node offering ``node_a`` and a worker node offering ``node_b`` (1 CPU each) on
    127.0.0.1; yields the address, the nodes and the environment drivers must use. Only the
    processes of these two nodes are stopped afterwards. Parametrised indirectly, the
    parameter is environment variables of the nodes and drivers (over ``node_env``'s)."""
    env = {**node_env(str(_HERE)), **getattr(request, "param", {})}
    port, temp_dir = free_port(), short_temp_dir()
    nodes = {}
    try:
        nodes["node_a"] = start_node("node_a", env, tmp_path, port, head=True, temp_dir=temp_dir)
        address = f"127.0.0.1:{port}"
        wait_for_nodes(address, {"node_a"}, 60, env)
        nodes["node_b"] = start_node("node_b", env, tmp_path, port, head=False, temp_dir=temp_dir)
        wait_for_nodes(address, {"node_a", "node_b"}, 60, env)
        yield {"address": address, "nodes": nodes, "env": env}
    finally:
        for node in reversed(list(nodes.values())):
            node.stop()
        leftovers = {name: node.session_pids() for name, node in nodes.items()}
        shutil.rmtree(temp_dir, ignore_errors=True)
    assert not any(leftovers.values()), f"processes left running: {leftovers}"


@pytest.fixture(scope="session")
def ray_eight_cpus() -> Iterator[str]:
    """Address of a local Ray runtime offering 8 CPUs (8 runs at once on this machine), shared
    by this folder's modules (starting one costs ~10 s); another folder's fixture that starts
    its own runtime shuts this one down first."""
    import ray

    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_cpus=8, include_dashboard=False, log_to_driver=False)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    """URL of a database on a throwaway PostgreSQL server (tests/pg_server.py)."""
    from pg_server import postgres_server, require_pg_server

    require_pg_server()
    with postgres_server() as url:
        yield url


_databases = iter(range(10**6))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty store: a SQLite file, or a fresh database on the PostgreSQL server."""
    if request.param == "sqlite":
        return str(tmp_path / "results.db")
    from pg_server import create_database

    head, _, _ = request.getfixturevalue("postgres_server_url").rpartition("/")
    name = f"cluster_test_{next(_databases)}"
    create_database(int(head.rsplit(":", 1)[1]), name)
    return f"{head}/{name}"


@pytest.fixture
def outage_server() -> Iterator[Any]:
    """A PostgreSQL server a test can crash and start again (tests/cluster/pg_restart.py)."""
    from pg_restart import RestartablePostgres
    from pg_server import require_pg_server

    require_pg_server()
    server = RestartablePostgres()
    yield server
    server.remove()
