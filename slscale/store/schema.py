"""Tables of the results store (SQLAlchemy Core) and their version.

Metrics and evals are keyed by their natural keys (primary keys, so a re-logged step overwrites
instead of duplicating). On SQLite both are ``WITHOUT ROWID`` tables: rows are stored in key
order, which makes the key lookups of an upsert cheap and lets a full ordered read skip a sort.
Specs and summaries are JSON text, so both backends store them the same way.
"""

from __future__ import annotations

import sqlalchemy as sa

from slscale.errors import StoreError

SCHEMA_VERSION = 3
"""Version of the table layout below; stored in ``schema_version`` and checked on open.
2 added ``evals.margin``; a version-1 store gains the column (NULL for its old rows) when
this code opens it. 3 added the ``attempts`` table; an older store gains it, empty (its runs'
earlier attempts keep only their count, ``runs.attempts``)."""

_PG_SCHEMA_LOCK = 0x736C7363  # advisory-lock key ("slsc") serialising schema creation

metadata = sa.MetaData()

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("run_id", sa.String, primary_key=True),
    sa.Column("spec", sa.Text, nullable=False, doc="RunSpec as JSON (spec_to_dict form)"),
    sa.Column("state", sa.String(16), nullable=False, index=True),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("error", sa.Text),
    sa.Column("host", sa.String),
    sa.Column("summary", sa.Text, nullable=False, doc="JSON object of end-of-run figures"),
    sa.Column("created_at", sa.DateTime, nullable=False, doc="UTC"),
    sa.Column("updated_at", sa.DateTime, nullable=False, doc="UTC"),
    sa.Column("lease_owner", sa.String),
    sa.Column("lease_expires_at", sa.DateTime, doc="UTC"),
)

metrics = sa.Table(
    "metrics",
    metadata,
    sa.Column("run_id", sa.String, sa.ForeignKey("runs.run_id"), primary_key=True),
    sa.Column("step", sa.BigInteger, primary_key=True),
    sa.Column("tokens", sa.BigInteger),
    sa.Column("flops", sa.Double),
    sa.Column("name", sa.String, primary_key=True),
    # Nullable: SQLite stores a NaN (a diverged loss) as NULL; it reads back as NaN.
    sa.Column("value", sa.Double),
    sqlite_with_rowid=False,
)

evals = sa.Table(
    "evals",
    metadata,
    sa.Column("run_id", sa.String, sa.ForeignKey("runs.run_id"), primary_key=True),
    sa.Column("step", sa.BigInteger, primary_key=True),
    sa.Column("benchmark", sa.String, primary_key=True),
    sa.Column("variant", sa.String, primary_key=True),
    sa.Column("value", sa.Double),
    sa.Column("n_items", sa.Integer, nullable=False),
    sa.Column("convention", sa.String, primary_key=True),
    sa.Column("margin", sa.Double, doc="mean log-likelihood margin, positive minus negative"),
    sqlite_with_rowid=False,
)

attempts = sa.Table(
    "attempts",
    metadata,
    sa.Column("run_id", sa.String, sa.ForeignKey("runs.run_id"), primary_key=True),
    sa.Column("attempt", sa.Integer, primary_key=True, doc="the run's attempt count then"),
    sa.Column("workers", sa.Integer, nullable=False, doc="data-parallel workers (world size)"),
    sa.Column("started_at", sa.DateTime, nullable=False, doc="UTC"),
)

schema_version = sa.Table(
    "schema_version",
    metadata,
    sa.Column("version", sa.Integer, nullable=False),
)

METRIC_KEY = ("run_id", "step", "name")
EVAL_KEY = ("run_id", "step", "benchmark", "variant", "convention")


def schema_is_current(conn: sa.Connection) -> bool:
    """True if every table exists and the stored version is this code's (a read only)."""
    if not sa.inspect(conn).has_table(schema_version.name):
        return False
    return _stored_version(conn) == SCHEMA_VERSION


def create_schema(conn: sa.Connection, shown_url: str) -> None:
    """Create missing tables and record the version, inside the caller's write transaction."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_PG_SCHEMA_LOCK)))
    metadata.create_all(conn)
    version = _stored_version(conn)
    if version is None:
        conn.execute(schema_version.insert().values(version=SCHEMA_VERSION))
    elif version < SCHEMA_VERSION:
        _upgrade(conn, version)
    elif version > SCHEMA_VERSION:
        raise StoreError(
            f"results store {shown_url!r} has schema version {version}, newer than this "
            f"slscale's ({SCHEMA_VERSION}): upgrade slscale to read it"
        )


def _upgrade(conn: sa.Connection, version: int) -> None:
    """Bring a store of an older layout to this one, in the caller's transaction (tables it
    lacks were just made by ``create_all``)."""
    if version < 2:
        kind = evals.c.margin.type.compile(dialect=conn.dialect)
        conn.execute(sa.text(f"ALTER TABLE {evals.name} ADD COLUMN margin {kind}"))
    conn.execute(schema_version.update().values(version=SCHEMA_VERSION))


def _stored_version(conn: sa.Connection) -> int | None:
    return conn.execute(sa.select(sa.func.max(schema_version.c.version))).scalar()
