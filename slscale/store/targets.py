"""Where a results store lives: a workdir, a SQLite file, or a database URL.

A target is resolved in this order: an explicit ``--store``, the ``SLSCALE_STORE`` environment
variable, then the ``--workdir`` (whose store is ``<workdir>/results.db``). Database URLs are
SQLAlchemy URLs; ``postgresql://`` and ``postgres://`` mean PostgreSQL through psycopg 3.
Passwords never leave this module unmasked: every message shows :func:`mask_url`'s form.
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from slscale.errors import StoreError

ENV_VAR = "SLSCALE_STORE"
"""Environment variable naming the store when no ``--store`` is given."""

DB_FILENAME = "results.db"
"""File name of the SQLite store inside a workdir."""

SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")
"""A target path ending in one of these is a SQLite file, not a workdir."""

_POSTGRES_DRIVER = "postgresql+psycopg"
_SUPPORTED = ("sqlite", "postgresql")
_USERINFO = re.compile(r"(://[^:/@]*:)[^@/]*@")


def resolve_store_target(store: str | None, workdir: str | os.PathLike[str] | None) -> str:
    """The store to open: ``store`` if given, else ``$SLSCALE_STORE``, else ``workdir``."""
    target = store or os.environ.get(ENV_VAR) or (os.fspath(workdir) if workdir else None)
    if not target:
        raise StoreError(
            f"no results store given: pass --workdir DIR or --store URL, or set {ENV_VAR}"
        )
    return target


def store_url(target: str | os.PathLike[str]) -> sa.URL:
    """The SQLAlchemy URL of ``target`` (a URL, a SQLite file or a workdir).

    A workdir and the parent folder of a SQLite file are created when missing.
    """
    text = os.fspath(target)
    if "://" in text:
        return _database_url(text)
    path = _sqlite_file(text)
    _make_parent(path, text)
    return sa.URL.create("sqlite", database=str(path.resolve()))


def require_existing(target: str | os.PathLike[str]) -> None:
    """Raise :class:`StoreError` when a local ``target`` (a workdir or a SQLite file) holds no
    store yet, without creating anything: for commands that only read a study."""
    text = os.fspath(target)
    path: Path | None = None
    if "://" not in text:
        path = _sqlite_file(text)
    elif text.startswith("sqlite"):
        with contextlib.suppress(sa.exc.ArgumentError):  # a bad URL: open_store says so
            database = make_url(text).database
            path = Path(database) if database and database != ":memory:" else None
    if path is not None and not path.is_file():
        raise StoreError(
            f"no study at {text}: {path} does not exist; check --workdir/--store "
            "(a sweep launch creates the store)"
        )


def _sqlite_file(text: str) -> Path:
    """The SQLite file of a path target: the path itself, or a workdir's results.db."""
    path = Path(text).expanduser()
    if path.suffix.lower() not in SQLITE_SUFFIXES and not path.is_file():
        path = path / DB_FILENAME
    return path


def mask_url(url: sa.URL | str) -> str:
    """``url`` as text with its password (in the netloc or the query) replaced by ``***``."""
    if isinstance(url, str):
        try:
            url = make_url(url)
        except sa.exc.ArgumentError:
            return _USERINFO.sub(r"\1***@", str(url))
    if "password" in url.query:
        url = url.update_query_dict({"password": "***"})
    return url.render_as_string(hide_password=True)


def scrub(message: str, url: sa.URL) -> str:
    """``message`` with ``url``'s password removed (driver errors may echo connection text)."""
    secrets = [url.password, url.query.get("password")]
    for secret in secrets:
        if isinstance(secret, str) and secret:
            message = message.replace(secret, "***")
    return message


def _database_url(text: str) -> sa.URL:
    try:
        url = make_url(text)
    except sa.exc.ArgumentError:
        raise StoreError(
            f"store URL {mask_url(text)!r} is not a valid database URL: use a path, "
            "sqlite:///FILE or postgresql://USER:PASSWORD@HOST:PORT/DB"
        ) from None
    backend = url.get_backend_name()
    if backend == "postgres" or (backend == "postgresql" and "+" not in url.drivername):
        # postgres:// is libpq's spelling; a bare postgresql:// means psycopg 3 here
        url = url.set(drivername=_POSTGRES_DRIVER)
    elif backend not in _SUPPORTED:
        raise StoreError(
            f"store URL {mask_url(url)!r} uses {backend!r}: the results store supports "
            "SQLite (a path or sqlite:///FILE) and PostgreSQL (postgresql://...)"
        )
    if backend == "sqlite" and url.database and url.database != ":memory:":
        _make_parent(Path(url.database), mask_url(url))
    return url


def _make_parent(path: Path, shown: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(
            f"cannot create folder {str(path.parent)!r} for the results store {shown!r}: "
            f"{exc.strerror or exc}; choose a writable --workdir or --store path"
        ) from None
