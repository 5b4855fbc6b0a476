"""SQLite specifics: waiting out another writer's lock, and forked children."""

from __future__ import annotations

import multiprocessing as mp
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from slscale.errors import StoreError
from slscale.store import Metric, Store, engine, open_store


@contextmanager
def lock_held(path: Path, seconds: float) -> Iterator[threading.Thread]:
    """Another connection holds the write lock of ``path`` for ``seconds``."""
    locked = threading.Event()

    def holder() -> None:
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        locked.set()
        time.sleep(seconds)
        conn.execute("COMMIT")
        conn.close()

    thread = threading.Thread(target=holder)
    thread.start()
    locked.wait()
    try:
        yield thread
    finally:
        thread.join()


@pytest.fixture
def short_busy_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Store]:
    """A store whose connections give up waiting for a lock after 50 ms (so retries show)."""
    monkeypatch.setattr(engine, "BUSY_TIMEOUT_MS", 50)
    with open_store(tmp_path / "results.db") as store:
        store.register({"r": {}})
        yield store


def test_a_write_retries_until_the_lock_is_released(short_busy_store: Store, tmp_path) -> None:
    with lock_held(tmp_path / "results.db", 0.6):
        start = time.monotonic()
        assert short_busy_store.log_metrics([Metric("r", 1, "loss", 1.0)]) == 1
        assert time.monotonic() - start >= 0.4  # it waited far beyond one 50 ms busy timeout
    assert len(short_busy_store.metrics_frame()) == 1


def test_a_lock_held_too_long_is_a_store_error(
    short_busy_store: Store, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine, "RETRY_SECONDS", 0.3)
    with lock_held(tmp_path / "results.db", 1.5), pytest.raises(StoreError, match="stayed busy"):
        short_busy_store.log_metrics([Metric("r", 1, "loss", 1.0)])


def _log_in_child(store: Store, step: int) -> None:
    assert store._engine.pool.checkedin() == 0  # type: ignore[attr-defined]  # parent's dropped
    store.log_metrics([Metric("r", step, "loss", float(step))])


def test_a_forked_child_uses_its_own_connections(tmp_path: Path) -> None:
    with open_store(tmp_path / "results.db") as store:
        store.register({"r": {}})
        store.log_metrics([Metric("r", 0, "loss", 0.0)])  # the parent's pool holds a connection
        children = [mp.get_context("fork").Process(target=_log_in_child, args=(store, s))
                    for s in (1, 2, 3)]  # fmt: skip
        for child in children:
            child.start()
        for child in children:
            child.join(timeout=60)
            assert child.exitcode == 0
        store.log_metrics([Metric("r", 4, "loss", 4.0)])
        assert store.metrics_frame()["step"].tolist() == [0, 1, 2, 3, 4]
