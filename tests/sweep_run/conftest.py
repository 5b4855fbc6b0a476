"""Fixtures of the sweep scheduler tests: one local Ray cluster per test module (2 CPUs)."""

from __future__ import annotations

import os
from typing import Any

import pytest

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("DS_ACCELERATOR", "cpu")


@pytest.fixture(scope="module")
def ray_address() -> Any:
    """Address of a local Ray cluster with 2 CPUs, shared by the tests of one module; other
    drivers (subprocesses) join it with ``--address``."""
    import ray

    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()
