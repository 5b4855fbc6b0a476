"""Worker 0's link to the results store: every write is queued, flushed in order, and retried.

A store that is briefly unreachable (a database restart, a full connection pool) must not kill
a run that has been training for hours. Writes (register, state, summary, metrics) go into a
queue that :meth:`StoreLink.flush` drains in order; a failure leaves the rest queued for the
next flush. Metric rows are also appended to ``metrics.jsonl`` in the run directory as they are
produced, so a curve survives even a store that never comes back (a re-logged step appears
twice there; :func:`read_metrics_jsonl` keeps the last row per (step, name), as the store does).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from slscale.spec import RunState
from slscale.store.base import Metric, Store

log = logging.getLogger(__name__)

StoreOpener = Callable[[], Store]


@dataclasses.dataclass
class _Op:
    what: str
    apply: Callable[[Store], object]
    rows: list[Metric] = dataclasses.field(default_factory=list)


class StoreLink:
    """Buffered writes of one run to a store (used on worker 0 only)."""

    def __init__(self, opener: StoreOpener | None, run_id: str, metrics_file: Path | None) -> None:
        self._opener = opener
        self._store: Store | None = None
        self.run_id = run_id
        self._queue: list[_Op] = []
        self._metrics_file = metrics_file
        self._failing_since: float | None = None
        self._backoff_seconds = 0.0
        self._next_attempt = 0.0

    @property
    def pending(self) -> int:
        return len(self._queue)

    def register(self, spec: Mapping[str, Any]) -> None:
        self._push("register", lambda s: s.register({self.run_id: dict(spec)}))

    def set_state(self, state: RunState, error: str | None = None, host: str | None = None) -> None:
        self._push(
            f"state {state}", lambda s: s.set_state(self.run_id, state, error=error, host=host)
        )

    def set_summary(self, summary: Mapping[str, Any]) -> None:
        data = dict(summary)
        self._push("summary", lambda s: s.set_summary(self.run_id, data))

    def log_metrics(self, rows: Iterable[Metric]) -> None:
        batch = list(rows)
        if not batch:
            return
        self._append_jsonl(batch)
        self._queue.append(_Op("metrics", lambda s: s.log_metrics(batch), batch))

    def pending_metrics(self) -> list[Metric]:
        """Metric rows not yet in the store (saved with a checkpoint, re-queued on resume)."""
        return [row for op in self._queue for row in op.rows]

    def _push(self, what: str, apply: Callable[[Store], object]) -> None:
        self._queue.append(_Op(what, apply))

    def flush(self, force: bool = False) -> bool:
        """Apply queued writes in order; True when the queue is empty afterwards. After a
        failure, attempts back off (1 s doubling to 60 s) unless ``force``d, so that a dead
        database host does not cost a connection timeout at every logged step."""
        if self._opener is None:
            self._queue.clear()
            return True
        if not force and time.monotonic() < self._next_attempt:
            return not self._queue
        while self._queue:
            try:
                if self._store is None:
                    self._store = self._opener()
                self._queue[0].apply(self._store)
            except Exception as exc:  # any store failure is retried later, never fatal
                self._note_failure(exc)
                self._drop_store()
                return False
            self._queue.pop(0)
        self._backoff_seconds, self._next_attempt = 0.0, 0.0
        if self._failing_since is not None:
            log.warning(
                "results store reachable again after %.0f s", time.monotonic() - self._failing_since
            )
            self._failing_since = None
        return True

    def close(self, retry_seconds: float = 60.0, pause_seconds: float = 1.0) -> bool:
        """Flush, retrying for up to ``retry_seconds``; then release the store."""
        deadline = time.monotonic() + retry_seconds
        done = self.flush(force=True)
        while not done and time.monotonic() < deadline:
            time.sleep(pause_seconds)
            done = self.flush(force=True)
        if not done:
            log.warning(
                "results store unreachable; %d writes for run %s were not stored "
                "(its curve is in metrics.jsonl)",
                len(self._queue),
                self.run_id,
            )
        self._drop_store()
        return done

    def discard(self) -> None:
        """Drop the writes not yet stored and release the store (an attempt that was
        superseded: the run's rows now belong to the newer attempt)."""
        self._queue.clear()
        self._drop_store()

    def _note_failure(self, exc: Exception) -> None:
        self._backoff_seconds = min(60.0, max(1.0, 2 * self._backoff_seconds))
        self._next_attempt = time.monotonic() + self._backoff_seconds
        if self._failing_since is None:
            self._failing_since = time.monotonic()
            log.warning(
                "results store write failed (%s: %s); buffering %d writes and retrying",
                exc.__class__.__name__,
                exc,
                len(self._queue),
            )

    def _drop_store(self) -> None:
        if self._store is not None:
            # closing a broken connection may fail too; there is nothing left to do then
            with contextlib.suppress(Exception):
                self._store.close()
            self._store = None

    def _append_jsonl(self, rows: list[Metric]) -> None:
        if self._metrics_file is None:
            return
        with self._metrics_file.open("a") as fh:
            for row in rows:
                fh.write(json.dumps(dataclasses.asdict(row)) + "\n")


def read_metrics_jsonl(path: Path) -> dict[tuple[int, str], Metric]:
    """The rows of a ``metrics.jsonl``, the last one per (step, name)."""
    rows: dict[tuple[int, str], Metric] = {}
    for line in Path(path).read_text().splitlines():
        if line.strip():
            row = Metric(**json.loads(line))
            rows[(row.step, row.name)] = row
    return rows
