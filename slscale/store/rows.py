"""Conversions between Python values and the store's rows.

Timestamps are stored as naive UTC (``TIMESTAMP WITHOUT TIME ZONE`` on both backends) and
handed out timezone-aware. Specs and summaries are JSON text; numpy scalars and paths in them
are converted on the way in.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa

from slscale.spec import RunState
from slscale.store.base import EvalResult, Metric, RunRecord


def utcnow() -> dt.datetime:
    """Now, as naive UTC."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def lease_expiry(now: dt.datetime, lease_seconds: float) -> dt.datetime:
    """When a lease taken ``now`` for ``lease_seconds`` runs out."""
    if not lease_seconds > 0:
        raise ValueError(f"lease_seconds = {lease_seconds!r}: must be positive")
    return now + dt.timedelta(seconds=lease_seconds)


def new_run_row(run_id: str, spec: Mapping[str, Any], now: dt.datetime) -> dict[str, Any]:
    """The ``runs`` row of a freshly registered (PENDING) run."""
    if not isinstance(run_id, str) or not run_id:
        raise ValueError(f"run id {run_id!r}: must be a non-empty string")
    return {
        "run_id": run_id,
        "spec": dumps(spec, f"spec of run {run_id!r}"),
        "state": str(RunState.PENDING),
        "attempts": 0,
        "error": None,
        "host": None,
        "summary": "{}",
        "created_at": now,
        "updated_at": now,
        "lease_owner": None,
        "lease_expires_at": None,
    }


def run_record(row: sa.Row[Any]) -> RunRecord:
    """A ``runs`` row as a :class:`RunRecord`."""
    return RunRecord(
        run_id=row.run_id,
        spec=json.loads(row.spec),
        state=RunState(row.state),
        attempts=row.attempts,
        error=row.error,
        host=row.host,
        summary=json.loads(row.summary),
        created_at=row.created_at.replace(tzinfo=dt.UTC),
        updated_at=row.updated_at.replace(tzinfo=dt.UTC),
        lease_owner=row.lease_owner,
        lease_expires_at=_aware(row.lease_expires_at),
    )


def metric_tuples(rows: Iterable[Metric]) -> list[tuple[Any, ...]]:
    """Metric rows in ``metrics`` column order, with numpy numbers made plain."""
    return [
        (
            m.run_id,
            int(m.step),
            None if m.tokens is None else int(m.tokens),
            None if m.flops is None else float(m.flops),
            m.name,
            float(m.value),
        )
        for m in rows
    ]


def eval_tuples(rows: Iterable[EvalResult]) -> list[tuple[Any, ...]]:
    """Eval rows in ``evals`` column order, with numpy numbers made plain."""
    return [
        (e.run_id, int(e.step), e.benchmark, e.variant, float(e.value), int(e.n_items),
         e.convention, _margin(e.margin))
        for e in rows
    ]  # fmt: skip


def _margin(value: float | None) -> float | None:
    """A stored margin: None for a missing or undefined (NaN) one."""
    return None if value is None or value != value else float(value)


def dumps(value: Mapping[str, Any], what: str) -> str:
    """``value`` as JSON text; ``what`` names it in the error."""
    try:
        return json.dumps(dict(value), default=_json_default)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} is not JSON-serialisable: {exc}") from None


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    return None if value is None else value.replace(tzinfo=dt.UTC)


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if hasattr(value, "__fspath__"):
        return str(value)
    raise TypeError(f"{type(value).__name__} {value!r} has no JSON form")
