"""Fixtures of the plan-next tests: the CLI, and stored studies."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from plan_next_helpers import write_study

from slscale import cli


@pytest.fixture
def run_cli(monkeypatch: pytest.MonkeyPatch) -> Callable[[list[str]], int]:
    """``slscale`` main, with no store URL inherited from the environment."""
    monkeypatch.delenv("SLSCALE_STORE", raising=False)
    return cli.main


@pytest.fixture(scope="module")
def textless_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store with a textless IsoFLOP study (3 budgets) of the Cuervo & Marxer law and sSC."""
    return write_study(tmp_path_factory.mktemp("study"), scores=True)
