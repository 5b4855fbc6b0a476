"""Fixtures of the store tests: one contract suite, run against every backend.

``store_target`` is parametrised over SQLite (a file in the test's tmp folder) and PostgreSQL
(a fresh database per test on a throwaway server started once per session; see
tests/pg_server.py). The PostgreSQL cases are marked ``postgres`` and are skipped only when
the server binaries are absent, and fail instead under CI (``CI=true``).
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from slscale.spec import Architecture, DataMix, Modality, Recipe, RunSpec, spec_to_dict
from slscale.store import Store, open_store

_TESTS = str(Path(__file__).resolve().parents[1])  # tests/ holds the shared pg_server.py
if _TESTS not in sys.path:
    sys.path.append(_TESTS)

from pg_server import create_database, postgres_server, require_pg_server  # noqa: E402

_db_numbers = itertools.count()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """URL of a database on a PostgreSQL server that lives for the whole session."""
    require_pg_server()
    with postgres_server() as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_target(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty store's target: a SQLite file path, or the URL of a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path / "results.db")
    return fresh_database(request.getfixturevalue("postgres_url"))


@pytest.fixture
def store(store_target: str) -> Iterator[Store]:
    with open_store(store_target) as opened:
        yield opened


def fresh_database(server_url: str) -> str:
    """A new, empty database on the server of ``server_url``; returns its URL."""
    head, _, _ = server_url.rpartition("/")
    port = int(head.rsplit(":", 1)[1])
    name = f"store_test_{next(_db_numbers)}"
    create_database(port, name)
    return f"{head}/{name}"


@pytest.fixture
def make_spec() -> Callable[..., dict[str, Any]]:
    """Factory of the plain-dict form of a real RunSpec (what the sweep registers)."""
    return _make_spec


def _make_spec(tokens: int = 2_000_000, lr: float = 5e-4, share: float = 0.25) -> dict[str, Any]:
    spec = RunSpec(
        family="llama",
        modality=Modality.INTERLEAVED,
        tokens=tokens,
        arch=Architecture(
            num_layers=2,
            hidden_size=64,
            num_heads=4,
            num_kv_heads=2,
            intermediate_size=128,
            vocab_size=600,
        ),
        mix=DataMix(text_share=0.2, interleaved_share=0.5, speech_share=0.3, synthetic_share=share),
        recipe=Recipe(lr=lr, lr_min=lr / 10),
    )
    return spec_to_dict(spec)
