"""Fixtures of the analysis tests: a synthetic study in a real store, drawn once per session.

The study (see analysis_helpers) is written through the store API; ``drawn`` runs
``slscale figures`` on it once with a small bootstrap, and the tests read its outputs.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from analysis_helpers import BOOTSTRAP, WHERE, build_store, run_figures

os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("study")
    build_store(path)
    return path


@pytest.fixture(scope="session")
def drawn(workdir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """(FIGDIR, stdout) of one ``slscale figures`` run over the synthetic study."""
    out = tmp_path_factory.mktemp("figures")
    stdout = run_figures(["--workdir", str(workdir), "--out", str(out), *WHERE, *BOOTSTRAP])
    return out, stdout
