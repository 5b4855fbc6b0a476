"""The results store interface and its concurrency contract.

Concurrency contract (every backend honours it; ``tests/store`` checks each one):

* ``register`` is idempotent: registering a run id that exists leaves its row untouched.
* State changes are atomic compare-and-set: ``set_state(..., expected=...)`` changes the row only
  if its current state is one of ``expected`` and reports whether it did.
* A run is executed by at most one driver: ``claim`` takes a time-limited lease on the run row
  (owner + expiry) only if no other owner holds an unexpired lease; ``heartbeat`` extends it;
  ``release`` drops it.
* Metrics are keyed by (run_id, step, name) and evals by (run_id, step, benchmark, variant,
  convention); writing a key twice keeps one row with the last value (a resumed run re-logging
  a step never duplicates it).
* Many processes may write at once (SQLite: WAL + busy timeout; PostgreSQL: row locks); readers
  never block writers.
"""

from __future__ import annotations

import abc
import dataclasses
import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from slscale.spec import RunState

if TYPE_CHECKING:
    import pandas as pd


@dataclasses.dataclass(frozen=True)
class Metric:
    """One logged scalar of a run's training curve."""

    run_id: str
    step: int
    name: str
    value: float
    tokens: int | None = None
    flops: float | None = None


@dataclasses.dataclass(frozen=True)
class EvalResult:
    """One evaluation score of a checkpoint."""

    run_id: str
    step: int
    benchmark: str
    variant: str
    value: float
    n_items: int
    convention: str
    margin: float | None = None
    """Mean log-likelihood margin of the set, positive minus negative, in the convention's
    unit (nats per token for mean conventions); None where it was not measured."""


@dataclasses.dataclass(frozen=True)
class RunRecord:
    """A run row as stored."""

    run_id: str
    spec: dict[str, Any]
    state: RunState
    attempts: int
    error: str | None
    host: str | None
    summary: dict[str, Any]
    created_at: dt.datetime
    updated_at: dt.datetime
    lease_owner: str | None = None
    lease_expires_at: dt.datetime | None = None


@dataclasses.dataclass(frozen=True)
class AttemptRecord:
    """One attempt of a run, as its scheduler started it."""

    run_id: str
    attempt: int
    """The run's attempt count when it started (1 for its first attempt)."""
    workers: int
    """Data-parallel workers it was started on (its world size)."""
    started_at: dt.datetime


class Store(abc.ABC):
    """Where runs, their curves and their evaluations live."""

    @abc.abstractmethod
    def register(self, specs: Mapping[str, Mapping[str, Any]]) -> list[str]:
        """Add runs (run_id -> spec dict) as PENDING; return the ids that were new."""

    @abc.abstractmethod
    def get_run(self, run_id: str) -> RunRecord | None:
        """The run's row, or None."""

    @abc.abstractmethod
    def list_runs(self, states: Sequence[RunState] | None = None) -> list[RunRecord]:
        """All runs (optionally only those in ``states``), ordered by run id."""

    @abc.abstractmethod
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
        """Move the run to ``state`` (only from ``expected`` states if given); True if moved.

        ``error`` is stored with the new state (None clears an earlier one); ``host`` is kept
        when None. An unregistered run id raises :class:`~slscale.errors.StoreError`."""

    @abc.abstractmethod
    def claim(self, run_id: str, owner: str, lease_seconds: float) -> bool:
        """Take the run's lease for ``owner`` unless another owner holds a live one."""

    @abc.abstractmethod
    def heartbeat(self, run_id: str, owner: str, lease_seconds: float) -> bool:
        """Extend ``owner``'s lease; False if the lease was lost to another owner."""

    @abc.abstractmethod
    def release(self, run_id: str, owner: str) -> None:
        """Drop ``owner``'s lease on the run (no-op if not held)."""

    @abc.abstractmethod
    def set_summary(self, run_id: str, summary: Mapping[str, Any]) -> None:
        """Merge keys into the run's summary (n_params, n_params_non_embedding, tokens,
        flops_6nd, flops_exact, loss, val_loss, seconds, ...)."""

    @abc.abstractmethod
    def record_attempt(self, run_id: str, attempt: int, workers: int) -> None:
        """Note that attempt number ``attempt`` of the run starts on ``workers`` workers, now
        (an attempt recorded again is replaced). An unregistered run id raises
        :class:`~slscale.errors.StoreError`."""

    @abc.abstractmethod
    def list_attempts(self, run_ids: Sequence[str] | None = None) -> list[AttemptRecord]:
        """The recorded attempts (of ``run_ids`` only if given), by run id and attempt."""

    @abc.abstractmethod
    def log_metrics(self, rows: Iterable[Metric]) -> int:
        """Upsert metric rows in one transaction; return how many were written. Rows of an
        unregistered run raise :class:`~slscale.errors.StoreError` and write nothing."""

    @abc.abstractmethod
    def log_evals(self, rows: Iterable[EvalResult]) -> int:
        """Upsert evaluation rows; return how many were written."""

    @abc.abstractmethod
    def runs_frame(self) -> pd.DataFrame:
        """One row per run: run_id, state, attempts, error, host, timestamps, the spec
        flattened with dotted names (family, modality, tokens, mix.synthetic_share, ...), and
        the summary keys as columns."""

    @abc.abstractmethod
    def metrics_frame(
        self, run_ids: Sequence[str] | None = None, names: Sequence[str] | None = None
    ) -> pd.DataFrame:
        """Long-format metrics: run_id, step, tokens, flops, name, value."""

    @abc.abstractmethod
    def evals_frame(self) -> pd.DataFrame:
        """run_id, step, benchmark, variant, value, n_items, convention."""

    def progress_frame(self) -> pd.DataFrame:
        """One row per run (by run id): run_id, last_loss (the ``loss`` metric at the run's
        last logged step, NaN if none) and tokens_done (the largest ``tokens`` of any of its
        metrics, <NA> if none). Backends may override this with a cheaper query."""
        import pandas as pd

        metrics = self.metrics_frame()
        loss = metrics[metrics["name"] == "loss"].sort_values("step").groupby("run_id")["value"]
        frame = pd.DataFrame({"run_id": [r.run_id for r in self.list_runs()]})
        frame["last_loss"] = frame["run_id"].map(loss.last()).astype("float64")
        tokens = metrics.groupby("run_id")["tokens"].max()
        frame["tokens_done"] = frame["run_id"].map(tokens).astype("Int64")
        return frame

    @abc.abstractmethod
    def close(self) -> None:
        """Release connections."""

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
