"""Bulk statements sent straight to the DBAPI cursor.

SQLAlchemy builds and compiles each statement once; the rows then go to
``cursor.executemany`` / ``cursor.execute`` as plain tuples, skipping SQLAlchemy's per-row
parameter processing (which alone capped SQLite upserts near 250,000 rows/s).
"""

from __future__ import annotations

from collections.abc import Sequence
from operator import itemgetter
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite


def insert(table: sa.Table, dialect: sa.Dialect) -> Any:
    """The dialect's INSERT construct (the one with ``on_conflict_*``)."""
    return (postgresql if dialect.name == "postgresql" else sqlite).insert(table)


def upsert_sql(table: sa.Table, key: Sequence[str], dialect: sa.Dialect) -> str:
    """``INSERT ... ON CONFLICT (key) DO UPDATE`` of every other column, as SQL text."""
    stmt = insert(table, dialect)
    update = {c.name: stmt.excluded[c.name] for c in table.c if c.name not in key}
    compiled = stmt.on_conflict_do_update(index_elements=list(key), set_=update).compile(
        dialect=dialect
    )
    names = [c.name for c in table.c]
    assert not compiled.positional or compiled.positiontup == names, compiled.positiontup
    return compiled.string


def upsert_params(
    table: sa.Table, key: Sequence[str], rows: list[tuple[Any, ...]], dialect: sa.Dialect
) -> Sequence[Any]:
    """``rows`` (in column order) as the dialect's executemany parameters.

    PostgreSQL rows are sorted by key so that concurrent writers lock rows in one order and
    cannot deadlock; the sort is stable, so of two rows with one key the last still wins.
    """
    if dialect.name != "postgresql":
        return rows
    names = [c.name for c in table.c]
    rows = sorted(rows, key=itemgetter(*(names.index(k) for k in key)))
    return [dict(zip(names, row, strict=True)) for row in rows]


def compiled_select(stmt: sa.Select[Any], dialect: sa.Dialect) -> tuple[str, Any]:
    """SQL text and DBAPI parameters of ``stmt`` (``IN`` lists expanded)."""
    compiled = stmt.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
    params: Any = compiled.params
    if compiled.positional:
        params = tuple(params[name] for name in compiled.positiontup or ())
    return compiled.string, params
