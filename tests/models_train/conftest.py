"""Fixtures of the trainer and evaluation tests (helpers live in train_helpers.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
import torch


@pytest.fixture(scope="session")
def dist() -> Any:
    """This test process's (single-worker) process group, initialised once and never destroyed."""
    os.environ.setdefault("DS_ACCELERATOR", "cpu")
    from slscale.models.train.distributed import init_distributed

    return init_distributed("cpu")


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Train and score on one thread: the test process shares the cores with other processes,
    and several multi-threaded processes on the same cores run many times slower. The thread
    count of the session is restored after each test."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
