"""Engines and transactions of the SQL store, with the settings concurrency needs.

SQLite: WAL journal (readers never block the writer), ``synchronous=NORMAL`` (durable at
checkpoints, safe with WAL), a 30 s busy timeout and foreign keys. Python's sqlite3 module is
put in autocommit mode so that transactions are begun here: writes use ``BEGIN IMMEDIATE``,
which takes the write lock up front and waits for it under the busy timeout, instead of a
deferred read-then-upgrade that fails at once with "database is locked" when two writers meet
(SQLite docs, "Transaction", and SQLAlchemy's pysqlite "Serializable isolation" recipe).

Both backends retry a whole transaction on transient failures: a lock still held after the
busy timeout (SQLite), a deadlock or serialisation failure, or a dropped connection
(PostgreSQL).
"""

from __future__ import annotations

import os
import random
import time
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import event

from slscale.errors import StoreError

T = TypeVar("T")

BUSY_TIMEOUT_MS = 30_000
"""How long one SQLite statement waits for another writer's lock."""

RETRY_SECONDS = 300.0
"""How long a transaction is retried on transient failures before giving up."""

_WRITE = "slscale_write"
_PG_TRANSIENT = ("40P01", "40001")  # deadlock_detected, serialization_failure


def create_store_engine(url: sa.URL) -> sa.Engine:
    """An engine for ``url`` configured for many concurrent writers."""
    if url.get_backend_name() == "sqlite":
        engine = sa.create_engine(url)
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
    else:
        connect_args = {"connect_timeout": 10, "application_name": "slscale"}
        engine = sa.create_engine(url, pool_pre_ping=True, connect_args=connect_args)
    _forget_connections_after_fork(engine)
    return engine


def _forget_connections_after_fork(engine: sa.Engine) -> None:
    """A forked child must not reuse its parent's pooled connections (a SQLite handle or a
    PostgreSQL socket shared by two processes corrupts both): drop them, unclosed, in the
    child (SQLAlchemy docs, "Using Connection Pools with Multiprocessing or os.fork()")."""
    ref = weakref.ref(engine)

    def in_child() -> None:
        alive = ref()
        if alive is not None:
            alive.dispose(close=False)

    os.register_at_fork(after_in_child=in_child)


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # transactions are begun in _sqlite_begin
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA journal_mode = WAL")
    cursor.execute("PRAGMA synchronous = NORMAL")
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.close()


def _sqlite_begin(conn: sa.Connection) -> None:
    write = conn.get_execution_options().get(_WRITE, False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def is_transient(exc: sa.exc.DBAPIError) -> bool:
    """Whether retrying the transaction may succeed."""
    if exc.connection_invalidated:
        return True
    if getattr(exc.orig, "sqlstate", None) in _PG_TRANSIENT:
        return True
    text = str(exc.orig).lower()
    return "database is locked" in text or "database table is locked" in text


def run_transaction(
    engine: sa.Engine, work: Callable[[sa.Connection], T], *, write: bool, shown_url: str
) -> T:
    """Run ``work(conn)`` in one transaction, retried with backoff on transient failures."""
    deadline = time.monotonic() + RETRY_SECONDS
    delay = 0.02
    while True:
        try:
            with engine.connect() as conn:
                conn.execution_options(**{_WRITE: write})
                with conn.begin():
                    return work(conn)
        except sa.exc.DBAPIError as exc:
            if not is_transient(exc):
                raise
            if time.monotonic() > deadline:
                raise StoreError(
                    f"results store {shown_url!r} stayed busy for {RETRY_SECONDS:.0f} s "
                    f"({first_line(exc.orig)}): check for a stuck writer and retry"
                ) from exc
        time.sleep(delay * (1 + random.random()))
        delay = min(delay * 2, 2.0)


def first_line(exc: BaseException | None) -> str:
    """The first non-empty line of an exception's message."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__
