"""The results store: runs, their training curves and their evaluation scores.

``open_store(target)`` opens the store behind a workdir (``<workdir>/results.db``), a SQLite
file or a database URL, creating it when missing; ``read_store(target)`` opens one that must
exist (what commands that only read a study use); :func:`resolve_store_target` picks the
target from ``--store``, ``$SLSCALE_STORE`` or ``--workdir``. The interface and its
concurrency contract are in :mod:`slscale.store.base`.
"""

from __future__ import annotations

import os

from slscale.store.base import AttemptRecord, EvalResult, Metric, RunRecord, Store
from slscale.store.targets import require_existing, resolve_store_target, store_url

__all__ = [
    "AttemptRecord",
    "EvalResult",
    "Metric",
    "RunRecord",
    "Store",
    "open_store",
    "read_store",
    "resolve_store_target",
]


def open_store(target: str | os.PathLike[str]) -> Store:
    """Open (creating if needed) the store at a workdir, a SQLite file or a database URL.

    Raises :class:`~slscale.errors.StoreError` with one line naming the (masked) target when it
    cannot be opened.
    """
    from slscale.store.sql import SqlStore

    return SqlStore(store_url(target))


def read_store(target: str | os.PathLike[str]) -> Store:
    """Open the store at ``target`` for a command that only reads a study: a local target (a
    workdir or a SQLite file) that holds no store raises :class:`~slscale.errors.StoreError`
    ("no study at ...") and nothing is created."""
    require_existing(target)
    return open_store(target)
