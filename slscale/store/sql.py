"""The results store on SQLite or PostgreSQL, written with SQLAlchemy Core.

How each clause of the contract in :mod:`slscale.store.base` is met:

* idempotent register: ``INSERT ... ON CONFLICT DO NOTHING RETURNING run_id``;
* compare-and-set: one ``UPDATE ... WHERE run_id = ? AND state IN (...)``, true iff a row
  changed (PostgreSQL re-checks the WHERE clause under the row lock; SQLite has one writer);
* leases: ``UPDATE ... WHERE lease_owner IS NULL OR lease_owner = ? OR lease_expires_at < now``;
  times are UTC from the writer's clock, so hosts sharing a PostgreSQL store need synchronised
  clocks (NTP) and leases much longer than their skew;
* upserts: ``INSERT ... ON CONFLICT (key) DO UPDATE``, executed as one ``executemany`` in one
  transaction per call. PostgreSQL batches are sorted by key so that concurrent writers lock
  rows in the same order and cannot deadlock.

Bulk paths bypass SQLAlchemy's per-row processing: the upsert is compiled once and sent to the
DBAPI cursor as tuples (:mod:`slscale.store.bulk`), and reads fetch tuples straight into Arrow
(:mod:`slscale.store.frames`).
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import sqlalchemy as sa

from slscale.errors import StoreError
from slscale.spec import RunState
from slscale.store import bulk, schema
from slscale.store.base import AttemptRecord, EvalResult, Metric, RunRecord, Store
from slscale.store.engine import create_store_engine, first_line, run_transaction
from slscale.store.rows import (
    dumps,
    eval_tuples,
    lease_expiry,
    metric_tuples,
    new_run_row,
    run_record,
    utcnow,
)
from slscale.store.targets import mask_url, scrub

if TYPE_CHECKING:  # pandas and pyarrow load on the first table read (0.45 s per process)
    import pandas as pd

T = TypeVar("T")
runs, metrics, evals, attempts = schema.runs, schema.metrics, schema.evals, schema.attempts

_IN_CHUNK = 10_000  # ids per IN (...) list: SQLite allows at most 32,766 bound variables


class SqlStore(Store):
    """The results store in a SQLite file or a PostgreSQL database.

    ``url`` is a SQLAlchemy URL as produced by :func:`slscale.store.targets.store_url`
    (``sqlite:////abs/path.db`` or ``postgresql+psycopg://...``). Open one store per process;
    a pickled store reopens from its URL.
    """

    def __init__(self, url: sa.URL) -> None:
        self.url = url
        self._shown = mask_url(url)
        self._engine = self._connect()
        dialect = self._engine.dialect
        self._upserts = {
            metrics.name: bulk.upsert_sql(metrics, schema.METRIC_KEY, dialect),
            evals.name: bulk.upsert_sql(evals, schema.EVAL_KEY, dialect),
        }

    def __repr__(self) -> str:
        return f"SqlStore({self._shown!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (SqlStore, (self.url,))

    # ------------------------------------------------------------------ runs

    def register(self, specs: Mapping[str, Mapping[str, Any]]) -> list[str]:
        now = utcnow()
        rows = [new_run_row(run_id, spec, now) for run_id, spec in specs.items()]
        if not rows:
            return []
        stmt = bulk.insert(runs, self._engine.dialect)
        stmt = stmt.on_conflict_do_nothing(index_elements=["run_id"])
        stmt = stmt.returning(runs.c.run_id)
        new: set[str] = set(
            self._write(lambda c: c.execute(stmt, rows).scalars().all(), "register runs")
        )
        return [run_id for run_id in specs if run_id in new]

    def get_run(self, run_id: str) -> RunRecord | None:
        stmt = sa.select(runs).where(runs.c.run_id == run_id)
        row = self._read(lambda c: c.execute(stmt).first(), f"read run {run_id!r}")
        return None if row is None else run_record(row)

    def list_runs(self, states: Sequence[RunState] | None = None) -> list[RunRecord]:
        stmt = sa.select(runs).order_by(runs.c.run_id)
        if states is not None:
            stmt = stmt.where(runs.c.state.in_([str(s) for s in states]))
        rows = self._read(lambda c: c.execute(stmt).all(), "list runs")
        return [run_record(row) for row in rows]

    def set_state(
        self,
        run_id: str,
        state: RunState,
        *,
        expected: Sequence[RunState] | None = None,
        error: str | None = None,
        host: str | None = None,
        increment_attempts: bool = False,
    ) -> bool:
        values: dict[str, Any] = {"state": str(state), "error": error, "updated_at": utcnow()}
        if host is not None:
            values["host"] = host
        if increment_attempts:
            values["attempts"] = runs.c.attempts + 1
        stmt = sa.update(runs).where(runs.c.run_id == run_id).values(values)
        if expected is not None:
            stmt = stmt.where(runs.c.state.in_([str(s) for s in expected]))
        return self._update_run(run_id, stmt, f"set state of run {run_id!r}")

    def claim(self, run_id: str, owner: str, lease_seconds: float) -> bool:
        now = utcnow()
        free = sa.or_(
            runs.c.lease_owner.is_(None), runs.c.lease_owner == owner, runs.c.lease_expires_at < now
        )
        stmt = (
            sa.update(runs)
            .where(runs.c.run_id == run_id, free)
            .values(lease_owner=owner, lease_expires_at=lease_expiry(now, lease_seconds))
        )
        return self._update_run(run_id, stmt, f"claim run {run_id!r}")

    def heartbeat(self, run_id: str, owner: str, lease_seconds: float) -> bool:
        expires = lease_expiry(utcnow(), lease_seconds)
        stmt = (
            sa.update(runs)
            .where(runs.c.run_id == run_id, runs.c.lease_owner == owner)
            .values(lease_expires_at=expires)
        )
        return self._update_run(run_id, stmt, f"extend the lease of run {run_id!r}")

    def release(self, run_id: str, owner: str) -> None:
        stmt = (
            sa.update(runs)
            .where(runs.c.run_id == run_id, runs.c.lease_owner == owner)
            .values(lease_owner=None, lease_expires_at=None)
        )
        self._write(lambda c: c.execute(stmt), f"release run {run_id!r}")

    def set_summary(self, run_id: str, summary: Mapping[str, Any]) -> None:
        where = runs.c.run_id == run_id

        def merge(conn: sa.Connection) -> None:
            current = conn.execute(sa.select(runs.c.summary).where(where).with_for_update())
            text = current.scalar()
            if text is None:
                raise self._unknown_run(run_id)
            merged = {**json.loads(text), **summary}
            encoded = dumps(merged, f"summary of run {run_id!r}")
            conn.execute(sa.update(runs).where(where).values(summary=encoded, updated_at=utcnow()))

        self._write(merge, f"set summary of run {run_id!r}")

    # ------------------------------------------------------------------ attempts

    def record_attempt(self, run_id: str, attempt: int, workers: int) -> None:
        row = {
            "run_id": run_id,
            "attempt": int(attempt),
            "workers": int(workers),
            "started_at": utcnow(),
        }
        stmt = bulk.insert(attempts, self._engine.dialect)
        stmt = stmt.on_conflict_do_update(
            index_elements=["run_id", "attempt"],
            set_={"workers": stmt.excluded.workers, "started_at": stmt.excluded.started_at},
        )
        try:
            self._write(lambda c: c.execute(stmt, row), f"record an attempt of run {run_id!r}")
        except sa.exc.IntegrityError:
            raise self._unknown_run(run_id) from None

    def list_attempts(self, run_ids: Sequence[str] | None = None) -> list[AttemptRecord]:
        stmt = sa.select(attempts).order_by(attempts.c.run_id, attempts.c.attempt)
        wanted = None if run_ids is None else set(run_ids)
        if wanted is not None and len(wanted) <= _IN_CHUNK:
            stmt = stmt.where(attempts.c.run_id.in_(sorted(wanted)))
        rows = self._read(lambda c: c.execute(stmt).all(), "list attempts")
        return [
            AttemptRecord(
                run_id=row.run_id,
                attempt=row.attempt,
                workers=row.workers,
                started_at=row.started_at.replace(tzinfo=dt.UTC),
            )
            for row in rows
            if wanted is None or row.run_id in wanted
        ]

    # ------------------------------------------------------------------ curves and scores

    def log_metrics(self, rows: Iterable[Metric]) -> int:
        return self._upsert(metrics, schema.METRIC_KEY, metric_tuples(rows), "log metrics")

    def log_evals(self, rows: Iterable[EvalResult]) -> int:
        return self._upsert(evals, schema.EVAL_KEY, eval_tuples(rows), "log evals")

    # ------------------------------------------------------------------ frames

    def runs_frame(self) -> pd.DataFrame:
        from slscale.store import frames

        return frames.runs_frame(self.list_runs())

    def metrics_frame(
        self, run_ids: Sequence[str] | None = None, names: Sequence[str] | None = None
    ) -> pd.DataFrame:
        import pandas as pd

        from slscale.store import frames

        stmt = sa.select(*metrics.c).order_by(*metrics.primary_key.columns)
        if names is not None:
            stmt = stmt.where(metrics.c.name.in_(list(names)))
        if run_ids is None:
            return self._frame(stmt, frames.METRIC_COLUMNS)
        ids = sorted(set(run_ids))
        chunks = [ids[i : i + _IN_CHUNK] for i in range(0, len(ids), _IN_CHUNK)] or [[]]
        parts = [
            self._frame(stmt.where(metrics.c.run_id.in_(c)), frames.METRIC_COLUMNS) for c in chunks
        ]
        return parts[0] if len(parts) == 1 else pd.concat(parts, ignore_index=True)

    def evals_frame(self) -> pd.DataFrame:
        from slscale.store import frames

        stmt = sa.select(*evals.c).order_by(*evals.primary_key.columns)
        return self._frame(stmt, frames.EVAL_COLUMNS)

    def progress_frame(self) -> pd.DataFrame:
        m = metrics.alias("m")
        last_loss = (
            sa.select(m.c.value)
            .where(m.c.run_id == runs.c.run_id, m.c.name == "loss")
            .order_by(m.c.step.desc())
            .limit(1)
            .scalar_subquery()
        )
        tokens = sa.select(sa.func.max(m.c.tokens)).where(m.c.run_id == runs.c.run_id)
        stmt = sa.select(
            runs.c.run_id,
            last_loss.label("last_loss"),
            tokens.scalar_subquery().label("tokens_done"),
        ).order_by(runs.c.run_id)
        from slscale.store import frames

        return self._frame(stmt, frames.PROGRESS_COLUMNS, nullable=("tokens_done",))

    def close(self) -> None:
        self._engine.dispose()

    # ------------------------------------------------------------------ internals

    def _connect(self) -> sa.Engine:
        try:
            engine = create_store_engine(self.url)
        except (sa.exc.ArgumentError, ImportError) as exc:
            raise StoreError(
                f"cannot open results store {self._shown!r}: its driver is unavailable "
                f"({scrub(first_line(exc), self.url)}); use postgresql://... or a SQLite path"
            ) from None
        self._engine = engine
        try:
            if not self._read(schema.schema_is_current, "open", wrap=False):
                self._write(
                    functools.partial(schema.create_schema, shown_url=self._shown),
                    "create tables",
                    wrap=False,
                )
        except sa.exc.DBAPIError as exc:
            engine.dispose()
            raise StoreError(
                f"cannot open results store {self._shown!r}: "
                f"{scrub(first_line(exc.orig), self.url)}; {self._open_hint()}"
            ) from None
        return engine

    def _open_hint(self) -> str:
        if self._engine.dialect.name == "sqlite":
            return "check that the path is a SQLite file (or a folder) you can write to"
        return (
            "check that the server is running and the URL's host, port, user, password "
            "and database are right"
        )

    def _upsert(
        self, table: sa.Table, key: Sequence[str], rows: list[tuple[Any, ...]], what: str
    ) -> int:
        if not rows:
            return 0
        sql = self._upserts[table.name]
        params = bulk.upsert_params(table, key, rows, self._engine.dialect)
        try:
            self._write(lambda c: c.exec_driver_sql(sql, params), what)
        except sa.exc.IntegrityError as exc:
            raise self._integrity_error({row[0] for row in rows}, exc) from None
        return len(rows)

    def _integrity_error(self, run_ids: set[str], exc: sa.exc.IntegrityError) -> StoreError:
        stmt = sa.select(runs.c.run_id).where(runs.c.run_id.in_(sorted(run_ids)[:_IN_CHUNK]))
        known: set[str] = set(self._read(lambda c: c.execute(stmt).scalars().all(), "check runs"))
        missing = sorted(run_ids - known)
        if missing:
            return self._unknown_run(missing[0])
        return StoreError(f"results store {self._shown!r} refused rows: {first_line(exc.orig)}")

    def _update_run(self, run_id: str, stmt: sa.Update, what: str) -> bool:
        def work(conn: sa.Connection) -> bool:
            if conn.execute(stmt).rowcount == 1:
                return True
            if conn.execute(sa.select(runs.c.run_id).where(runs.c.run_id == run_id)).first():
                return False
            raise self._unknown_run(run_id)

        return self._write(work, what)

    def _unknown_run(self, run_id: str) -> StoreError:
        return StoreError(
            f"run {run_id!r} is not registered in results store {self._shown!r}: "
            "register it first (slscale launch registers a grid's runs)"
        )

    def _frame(
        self,
        stmt: sa.Select[Any],
        columns: Sequence[tuple[str, Any]],
        nullable: Sequence[str] = ("tokens",),
    ) -> pd.DataFrame:
        sql, params = bulk.compiled_select(stmt, self._engine.dialect)

        from slscale.store import frames

        def fetch(conn: sa.Connection) -> pd.DataFrame:
            cursor = conn.connection.cursor()
            try:
                cursor.execute(sql, params)
                return frames.cursor_frame(cursor, columns, nullable)
            finally:
                cursor.close()

        return self._read(fetch, "read a table")

    def _read(self, work: Callable[[sa.Connection], T], what: str, wrap: bool = True) -> T:
        return self._run(work, what, write=False, wrap=wrap)

    def _write(self, work: Callable[[sa.Connection], T], what: str, wrap: bool = True) -> T:
        return self._run(work, what, write=True, wrap=wrap)

    def _run(self, work: Callable[[sa.Connection], T], what: str, write: bool, wrap: bool) -> T:
        try:
            return run_transaction(self._engine, work, write=write, shown_url=self._shown)
        except sa.exc.IntegrityError:
            raise
        except sa.exc.DBAPIError as exc:
            if not wrap:
                raise
            reason = scrub(first_line(exc.orig), self.url)
            raise StoreError(f"results store {self._shown!r}: {what} failed: {reason}") from None
