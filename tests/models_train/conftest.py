"""Fixtures of the trainer and evaluation tests (helpers live in train_helpers.py)."""

from __future__ import annotations

import os
from typing import Any

import pytest
import torch


@pytest.fixture(scope="session")
def dist() -> Any:
    """This test process's (single-worker) process group, initialised once and never destroyed.

    Training here uses one thread: the test process shares the cores with other processes, and
    several multi-threaded processes on the same cores run many times slower.
    """
    os.environ.setdefault("DS_ACCELERATOR", "cpu")
    torch.set_num_threads(1)
    from slscale.models.train.distributed import init_distributed

    return init_distributed("cpu")
