"""Where a store is opened from, and the errors for targets that cannot be opened."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa

from slscale.errors import StoreError
from slscale.spec import RunState
from slscale.store import open_store, resolve_store_target
from slscale.store.base import EvalResult
from slscale.store.targets import ENV_VAR, mask_url, store_url

SECRET = "s3cr3t-pw"


def test_a_workdir_gets_results_db_and_is_created(tmp_path: Path) -> None:
    workdir = tmp_path / "study" / "wd"
    with open_store(workdir) as store:
        assert store.register({"r": {"family": "llama"}}) == ["r"]
    assert (workdir / "results.db").is_file()
    with open_store(str(workdir)) as again:
        assert [r.run_id for r in again.list_runs()] == ["r"]


def test_sqlite_files_are_wal_with_foreign_keys(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "my.db"
    with open_store(path) as store:
        store.register({"r": {}})
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [(3,)]
    with open_store(f"sqlite:///{path}") as same:
        assert [r.run_id for r in same.list_runs()] == ["r"]


def test_an_existing_sqlite_file_without_suffix_is_opened_as_a_file(tmp_path: Path) -> None:
    path = tmp_path / "store"
    with open_store(tmp_path / "x.db") as store:
        store.register({"r": {}})
    (tmp_path / "x.db").rename(path)
    with open_store(path) as store:
        assert [r.run_id for r in store.list_runs()] == ["r"]


def test_resolve_prefers_store_then_env_then_workdir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert resolve_store_target("postgresql://h/db", "wd") == "postgresql://h/db"
    assert resolve_store_target(None, "wd") == "wd"
    monkeypatch.setenv(ENV_VAR, "sqlite:///env.db")
    assert resolve_store_target(None, "wd") == "sqlite:///env.db"
    assert resolve_store_target("other.db", None) == "other.db"
    monkeypatch.delenv(ENV_VAR)
    with pytest.raises(StoreError, match="pass --workdir DIR or --store URL"):
        resolve_store_target(None, None)


def test_postgres_spellings_use_psycopg3() -> None:
    for text in ("postgresql://u:p@h:5432/db", "postgres://u:p@h:5432/db"):
        assert store_url(text).drivername == "postgresql+psycopg"
    assert store_url("postgresql+psycopg://u@h/db").drivername == "postgresql+psycopg"


def test_masking_hides_passwords_everywhere() -> None:
    assert SECRET not in mask_url(f"postgresql://user:{SECRET}@host/db")
    assert mask_url(f"postgresql://user:{SECRET}@host/db") == "postgresql://user:***@host/db"
    assert SECRET not in mask_url(f"postgresql://user@host/db?password={SECRET}")
    assert SECRET not in mask_url(f"bad url://user:{SECRET}@host")


def test_unreachable_server_error_is_one_masked_line() -> None:
    url = f"postgresql://slscale:{SECRET}@127.0.0.1:1/results"
    with pytest.raises(StoreError) as info:
        open_store(url)
    message = str(info.value)
    assert SECRET not in message and "\n" not in message
    assert "postgresql+psycopg://slscale:***@127.0.0.1:1/results" in message
    assert "check that the server is running" in message
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_unsupported_or_malformed_urls_are_refused() -> None:
    with pytest.raises(StoreError, match=r"uses 'mysql'.*supports SQLite .* and PostgreSQL"):
        open_store(f"mysql://root:{SECRET}@localhost/db")
    with pytest.raises(StoreError, match="not a valid database URL"):
        open_store("::://nonsense")


def test_a_file_that_is_not_sqlite_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_text("these are my notes, not a database\n" * 100)
    with pytest.raises(StoreError, match=r"cannot open results store .*notes\.db.*SQLite file"):
        open_store(path)


def test_a_path_below_a_regular_file_is_refused(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreError, match=r"cannot create folder .*file.*writable --workdir"):
        open_store(blocker / "wd")


def test_a_version_1_store_gains_the_margin_column_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "results.db"
    with open_store(path) as store:
        store.register({"r": {}})
        store.log_evals([EvalResult("r", 5, "sSC", "S", 0.6, 200, "mean", margin=0.1)])
    with sqlite3.connect(path) as conn:  # the layout of version 1: no margin column
        conn.execute("ALTER TABLE evals DROP COLUMN margin")
        conn.execute("UPDATE schema_version SET version = 1")
    with open_store(path) as store:
        old = store.evals_frame()
        store.log_evals([EvalResult("r", 9, "sSC", "S", 0.7, 200, "mean", margin=0.2)])
        both = store.evals_frame()
    assert old["value"].tolist() == [0.6] and old["margin"].isna().all()
    assert both["margin"].tolist()[1] == 0.2
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [(3,)]


def test_a_version_2_store_gains_the_attempts_table_and_keeps_its_runs(tmp_path: Path) -> None:
    path = tmp_path / "results.db"
    with open_store(path) as store:
        store.register({"r": {}})
        store.set_state("r", RunState.PREEMPTED, increment_attempts=True)
    with sqlite3.connect(path) as conn:  # the layout of version 2: no attempts table
        conn.execute("DROP TABLE attempts")
        conn.execute("UPDATE schema_version SET version = 2")
    with open_store(path) as store:
        assert store.list_attempts() == []  # the attempts before the upgrade were not recorded
        record = store.get_run("r")
        assert record is not None and record.attempts == 1
        store.record_attempt("r", 2, 1)
        assert [(a.attempt, a.workers) for a in store.list_attempts()] == [(2, 1)]
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [(3,)]


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "results.db"
    open_store(path).close()
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE schema_version SET version = 99")
    engine.dispose()
    with pytest.raises(StoreError, match="schema version 99, newer than this slscale's"):
        open_store(path)


@pytest.mark.postgres
def test_repr_of_a_postgres_store_masks_the_password(postgres_url: str) -> None:
    with_password = sa.make_url(postgres_url).set(password=SECRET)  # trust auth ignores it
    with open_store(with_password.render_as_string(hide_password=False)) as store:
        assert SECRET not in repr(store) and "***" in repr(store)
        assert store.get_run("no-such-run") is None  # connected despite the extra password
