"""The sweep driver: claims runs in the store, starts them on the backend, retries by cause.

One loop (single-threaded, so the store sees one writer per driver):

1. start queued runs in priority order while they fit the cluster (backfill) and fewer than
   ``max_concurrent`` are in flight. Starting a run means: take its lease in the store
   (``claim``; a lease held by a driver that certainly died is dropped first), re-read it under
   the lease (another driver may have finished it), move it to RUNNING (attempts + 1), mark
   the run folder as that attempt's (:mod:`slscale.fence`: an older attempt still alive
   somewhere, e.g. behind a network partition, then stops without writing) and submit it;
2. wait up to ``poll_seconds`` for attempts to end and record each outcome
   (:mod:`~slscale.sweep.scheduler.outcome` says how each cause is retried);
3. every ``lease_seconds / 4``: extend the leases of the runs in flight, and stop those whose
   lease was lost or that ``slscale sweep cancel`` marked FAILED.

A store that stops answering (a database restart, a network cut) does not stop the sweep: the
driver keeps the outcomes of attempts that end meanwhile and records them when the store is
back, retrying every poll. Its runs go on training (the trainer buffers its own rows) while
their leases hold; once half a lease has passed without a renewal, the driver stops them
(they checkpoint) so that no other driver can take a run over while it still trains here.
After ``store_outage_seconds`` it gives up, leaving every run resumable.

Runs another driver holds stay queued until that driver finishes them (they leave the queue)
or its lease expires (they are taken over). SUCCEEDED and FAILED runs are never touched.

A run of several workers that is resumed — after a preemption, a lost node or a retried
error, or found so when the driver starts — waits for its planned workers. If it has
``narrower`` choices (``--min-workers-per-run``) and its planned workers are still not free
``elastic_wait_seconds`` after it stopped, it starts on the widest choice that is free; its
worker groups are then given that long to be placed (a node lost but not yet declared dead
leaves the driver's view of the cluster stale for a while), and a width that could not be
placed is not tried again within the next wait. Each attempt's width is recorded in the store
(``record_attempt``).
"""

from __future__ import annotations

import bisect
import contextlib
import dataclasses
import datetime as dt
import socket
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from slscale import fence
from slscale.errors import SlscaleError, StoreError
from slscale.spec import RunState
from slscale.sweep.scheduler import outcome as oc
from slscale.sweep.scheduler.api import (
    CANCELLED_KEY,
    CANCELLED_PREFIX,
    FINISHED,
    NOT_FINISHED,
    Backend,
    Reporter,
    RunRequest,
    SchedulerOptions,
    SweepReport,
)
from slscale.sweep.scheduler.backend import Attempt
from slscale.sweep.scheduler.ladders import TRUNK_NOT_READY, BranchGate, branch_point, trunks_first
from slscale.sweep.scheduler.leases import is_dead_owner, owner_name
from slscale.sweep.scheduler.policy import (
    NodePool,
    Placement,
    Resources,
    order_runs,
    pick_widest,
)

if TYPE_CHECKING:
    from slscale.store.base import RunRecord, Store

NOT_RETRIED = (
    "(not retried: another attempt would fail the same way; fix the cause, then launch with "
    "--retry-failed)"
)
"""Last line of the error of a run FAILED at its first attempt (an input or configuration
error, or a divergence: see :mod:`~slscale.sweep.scheduler.outcome`)."""
RETRYABLE = (RunState.PENDING, RunState.RUNNING, RunState.PREEMPTED, RunState.FAILED)
"""States an attempt's own writes may have left (the trainer records FAILED/PREEMPTED too)."""
RESUMABLE = (RunState.PENDING, RunState.RUNNING, RunState.PREEMPTED)
"""States of a run that, once attempted, resumes from its checkpoint."""
MIN_PLACEMENT_SECONDS = 5.0
"""Least time a worker group of a run that may narrow is given to be placed."""


@dataclasses.dataclass
class Flight:
    """An attempt in flight."""

    request: RunRequest
    attempt: int
    resources: Resources
    """What this attempt got (the planned resources, or fewer workers)."""
    placement: Placement
    started: float
    failures: int
    """Earlier attempts that raised."""
    preemptions: int
    """Earlier attempts whose process was lost."""
    stopping: str | None = None
    """Why this driver stopped the attempt: 'lease lost' or 'cancelled'."""
    stop_requested: float = 0.0
    """When it asked the attempt to stop (monotonic seconds)."""


class Driver:
    """Executes run requests on a backend, recording everything in the store."""

    def __init__(
        self,
        store: Store,
        backend: Backend,
        options: SchedulerOptions,
        reporter: Reporter | None = None,
        owner: str | None = None,
    ) -> None:
        self.store, self.backend, self.options = store, backend, options
        self.reporter = reporter
        self.owner = owner or owner_name()
        self.host = socket.gethostname()
        self.requests: dict[str, RunRequest] = {}
        self.queue: list[str] = []
        self.inflight: dict[Any, Flight] = {}
        self.final: dict[str, RunState] = {}
        self.attempts_started: dict[str, int] = {}
        self._rank: dict[str, int] = {}
        self._not_before: dict[str, float] = {}
        self._pool = NodePool([])
        self._last_beat = 0.0
        self.started_at = time.monotonic()
        self._renewed_at = self.started_at
        """When the leases of the runs in flight were last extended."""
        self._unsettled: list[tuple[Flight, oc.Outcome]] = []
        """Ended attempts whose outcome the store has not taken yet (oldest first)."""
        self._down_since: float | None = None
        self._resumable_since: dict[str, float] = {}
        """Runs that resume from a checkpoint, and since when they wait (monotonic)."""
        self._unplaced: dict[str, tuple[int, float]] = {}
        """Runs whose last attempt could not be placed: its width, and when it gave up."""
        self._gate = BranchGate({})
        """WSD ladders' branches, held until their trunks' checkpoints exist."""
        self._held: set[str] = set()
        """Branches this driver has reported waiting for their trunks."""

    # ------------------------------------------------------------------ the loop

    def run(self, requests: Sequence[RunRequest]) -> SweepReport:
        """Execute ``requests`` until each is SUCCEEDED or FAILED."""
        self._setup(requests)
        try:
            while self.queue or self.inflight or self._unsettled:
                try:
                    self._step()
                except StoreError as exc:
                    self._store_down(exc)
                else:
                    self._down_since = None
        except BaseException:
            self._abandon("the sweep driver stopped")
            raise
        self._refresh()
        return SweepReport(
            states={r: self.final.get(r, RunState.PENDING) for r in self.requests},
            attempts=dict(self.attempts_started),
            seconds=time.monotonic() - self.started_at,
        )

    def _setup(self, requests: Sequence[RunRequest]) -> None:
        self.requests = {r.run_id: r for r in requests}
        size = {r.run_id: r.work for r in requests}
        points = {r.run_id: branch_point(r.spec, self.options.workdir) for r in requests}
        self._gate = BranchGate({k: p for k, p in points.items() if p is not None})
        self.queue = order_runs(list(self.requests), size.__getitem__, self.options.order)
        self.queue = trunks_first(self.queue, self._gate.parent)
        self._rank = {run_id: i for i, run_id in enumerate(self.queue)}
        self._pool = NodePool(self.backend.nodes())
        for record in self.store.list_runs(RESUMABLE):
            if record.run_id in self.requests and record.attempts > 0:
                self._resumable_since[record.run_id] = self.started_at
        for request in requests:
            choices = [request.resources]
            if request.run_id in self._resumable_since:
                choices += request.narrower
            if not any(self._pool.can_ever_fit(res) for res in choices):
                raise SlscaleError(
                    f"run {request.run_id} needs {_describe(request.resources)} but no node of "
                    f"the cluster has that much (nodes: {self._pool.capacity}); lower its "
                    "resources or add larger nodes"
                )

    def _step(self) -> None:
        self._settle_unsettled()
        self._start_ready()
        if self.inflight:
            ended = self.backend.wait(list(self.inflight), self.options.poll_seconds)
        else:  # every queued run is held by another driver
            time.sleep(self.options.poll_seconds)
            ended = []
        for handle, outcome in ended:
            self._record(handle, outcome)
        if time.monotonic() - self._last_beat >= self.options.lease_seconds / 4:
            self._heartbeat()
        if self.reporter is not None:
            self.reporter.refresh(self)

    # ------------------------------------------------------------------ starting

    def _start_ready(self) -> None:
        limit = self.options.max_concurrent or len(self.requests)
        slots = limit - len(self.inflight)
        if slots <= 0 or not self.queue:
            return
        now = time.monotonic()
        ready = [r for r in self.queue if self._not_before.get(r, 0.0) <= now]
        ready = [r for r in ready if self._branch_ready(r)]
        if any(self.requests[r].narrower and r in self._resumable_since for r in ready):
            self._refresh_nodes()  # it may narrow: on the cluster as it is now
        picked = pick_widest(ready, self._choices, self._pool, slots)
        for i, (run_id, placement, res) in enumerate(picked):
            try:
                started = self._start(run_id, placement, res)
            except StoreError:
                for _, unused, unused_res in picked[i:]:
                    self._pool.release(unused, unused_res)
                raise
            if not started:
                self._pool.release(placement, res)

    def _branch_ready(self, run_id: str) -> bool:
        """Whether a queued run may start as far as its WSD trunk goes: a branch waits until
        its trunk's checkpoint at the branch point is complete, and is FAILED once the trunk
        can no longer write it (see :mod:`~slscale.sweep.scheduler.ladders`)."""
        parent = self._gate.parent(run_id)
        if parent is None:
            return True
        point = self._gate.points[run_id]
        if self._gate.ready(run_id):
            if run_id in self._held:
                self._held.discard(run_id)
                self._event(run_id, f"its trunk {parent} checkpointed step {point.step}")
            return True
        launched = parent in self.requests and parent not in self.final
        trunk = None if launched else self.store.get_run(parent)
        reason = self._gate.blocked(run_id, trunk, launched, self.final.get(parent))
        if reason is not None:
            self._fail_unstarted(run_id, reason)
        elif run_id not in self._held:
            self._held.add(run_id)
            self._event(run_id, f"waits for its trunk {parent} to checkpoint step {point.step}")
        return False

    def _fail_unstarted(self, run_id: str, reason: str) -> None:
        """FAIL a queued run that can never start (no attempt: it never ran)."""
        record = self._claim(run_id)
        if record is None:
            return
        try:
            if record.state in FINISHED:
                self._finished_elsewhere(run_id, record.state)
                return
            self._fail(run_id, f"{reason}\n{NOT_RETRIED}")
            self.queue.remove(run_id)
        finally:
            self.store.release(run_id, self.owner)

    def _choices(self, run_id: str) -> tuple[Resources, ...]:
        """What the run may start on now: its planned resources; once it has waited
        ``elastic_wait_seconds`` to resume, also its narrower choices, less any width that
        could not be placed within the last wait."""
        request = self.requests[run_id]
        since = self._resumable_since.get(run_id)
        wait = self.options.elastic_wait_seconds
        now = time.monotonic()
        if not request.narrower or since is None or now - since < wait:
            return (request.resources,)
        choices = (request.resources, *request.narrower)
        unplaced = self._unplaced.get(run_id)
        if unplaced is not None and now - unplaced[1] < wait:
            choices = tuple(res for res in choices if res.workers < unplaced[0])
        return choices

    def _placement_seconds(self, request: RunRequest) -> float | None:
        """How long Ray may take to place the attempt's worker group: bounded for a run that
        may narrow (unplaced, it tries fewer workers), unbounded otherwise."""
        if not request.narrower or request.run_id not in self._resumable_since:
            return None
        return max(self.options.elastic_wait_seconds, MIN_PLACEMENT_SECONDS)

    def _start(self, run_id: str, placement: Placement, res: Resources) -> bool:
        record = self._claim(run_id)
        if record is None:
            return False
        if record.state in FINISHED or not self.store.set_state(
            run_id,
            RunState.RUNNING,
            expected=NOT_FINISHED,
            host=self.host,
            increment_attempts=True,
        ):
            self.store.release(run_id, self.owner)
            self._finished_elsewhere(run_id, record.state)
            return False
        request = self.requests[run_id]
        attempt = Attempt(
            run_id=run_id,
            spec=request.spec,
            attempt=record.attempts + 1,
            resources=res,
            workdir=self.options.workdir,
            store_url=self.options.store_url,
            placement_seconds=self._placement_seconds(request),
        )
        displaced = fence.mark(Path(self.options.workdir, "runs", run_id), attempt.attempt)
        if displaced is not None:
            self._event(
                run_id,
                f"run folder named attempt {displaced}, the store {attempt.attempt - 1}: the "
                "store is behind the folder (replaced or restored?); its count wins",
            )
        self.store.record_attempt(run_id, attempt.attempt, res.workers)
        handle = self.backend.submit(attempt)
        self.inflight[handle] = Flight(
            request=request,
            attempt=attempt.attempt,
            resources=res,
            placement=placement,
            started=time.monotonic(),
            failures=int(record.summary.get("failures", 0)),
            preemptions=int(record.summary.get("preemptions", 0)),
        )
        self.queue.remove(run_id)
        self.attempts_started[run_id] = self.attempts_started.get(run_id, 0) + 1
        if res.workers < request.resources.workers:
            self._event(
                run_id,
                f"resumes on {res.workers} of its {request.resources.workers} workers (no "
                f"more were free {self.options.elastic_wait_seconds:g} s after it stopped)",
            )
        self._event(run_id, f"attempt {attempt.attempt} started")
        return True

    def _claim(self, run_id: str) -> RunRecord | None:
        """The run's record under this driver's lease, or None if another driver holds it."""
        lease = self.options.lease_seconds
        if not self.store.claim(run_id, self.owner, lease):
            record = self._get(run_id)
            if record.state in FINISHED:
                self._finished_elsewhere(run_id, record.state)
                return None
            if not is_dead_owner(record.lease_owner):
                self._not_before[run_id] = time.monotonic() + _until_expiry(record, lease)
                return None
            self.store.release(run_id, str(record.lease_owner))  # its driver is gone
            if not self.store.claim(run_id, self.owner, lease):
                return None
            self._event(run_id, f"took over from {record.lease_owner} (no longer running)")
        return self._get(run_id)

    def _get(self, run_id: str) -> RunRecord:
        record = self.store.get_run(run_id)
        if record is None:
            raise SlscaleError(f"run {run_id} is not registered in the store; launch its grid")
        return record

    def _finished_elsewhere(self, run_id: str, state: RunState) -> None:
        if state in FINISHED and run_id in self.queue:
            self.queue.remove(run_id)
            self.final[run_id] = state
            self._event(run_id, f"{state} (by another driver)")

    # ------------------------------------------------------------------ outcomes

    def _record(self, handle: Any, outcome: oc.Outcome) -> None:
        """Take an ended attempt off the cluster; its outcome goes to the store now or, while
        the store is unreachable, when it is back."""
        flight = self.inflight.pop(handle)
        self._pool.release(flight.placement, flight.resources)
        self._unsettled.append((flight, outcome))
        self._settle_unsettled()

    def _settle_unsettled(self) -> None:
        """Record the outcomes the store has not taken yet, oldest first (each is idempotent:
        an outcome recorded halfway before the store went away is recorded again whole)."""
        while self._unsettled:
            flight, outcome = self._unsettled[0]
            self._settle(flight, outcome)
            self._unsettled.pop(0)

    def _settle(self, flight: Flight, outcome: oc.Outcome) -> None:
        run_id = flight.request.run_id
        if flight.stopping == "lease lost":  # another driver owns the run now
            self._requeue(run_id, wait=self.options.lease_seconds)
            return
        if outcome.kind is oc.Kind.SUPERSEDED:  # a newer attempt owns the run: write nothing
            self._event(run_id, f"attempt {flight.attempt} superseded; the newer one goes on")
            self._requeue(run_id, wait=self.options.lease_seconds)
            with contextlib.suppress(StoreError):
                self.store.release(run_id, self.owner)
            return
        try:
            reason = _cancelled(self._get(run_id))
            if reason and outcome.kind is not oc.Kind.SUCCEEDED:
                # The run may have written its own state on the way out: cancelled wins.
                self.store.set_state(run_id, RunState.FAILED, expected=RETRYABLE, error=reason)
                self.final[run_id] = RunState.FAILED
                self._event(run_id, "cancelled")
            else:
                self._apply(flight, outcome)
        finally:
            self.store.release(run_id, self.owner)

    def _apply(self, flight: Flight, outcome: oc.Outcome) -> None:
        run_id = flight.request.run_id
        if outcome.kind is oc.Kind.SUCCEEDED:
            if outcome.summary:
                self.store.set_summary(run_id, outcome.summary)
            self.store.set_state(
                run_id,
                RunState.SUCCEEDED,
                expected=(*NOT_FINISHED, RunState.SUCCEEDED),
                host=outcome.host,
            )
            self.final[run_id] = RunState.SUCCEEDED
            self._event(run_id, f"SUCCEEDED in {time.monotonic() - flight.started:.1f} s")
        elif outcome.kind in (oc.Kind.PREEMPTED, oc.Kind.CANCELLED):
            self._retry(flight, outcome, "preemptions", self.options.max_preemptions)
        elif outcome.kind is oc.Kind.ERROR and self._trunk_not_ready(run_id, outcome):
            self._wait_for_trunk(flight, outcome)
        elif outcome.kind is oc.Kind.ERROR:
            self._retry(flight, outcome, "failures", self.options.max_retries)
        else:  # FATAL: the user's input must change first; running it again cannot help
            self.store.set_summary(run_id, {"failures": flight.failures + 1})
            self._fail(run_id, f"{outcome.error_text() or outcome.kind.value}\n{NOT_RETRIED}")

    def _retry(self, flight: Flight, outcome: oc.Outcome, counter: str, limit: int) -> None:
        run_id = flight.request.run_id
        count = getattr(flight, counter) + 1
        self.store.set_summary(run_id, {counter: count})
        if count > limit:
            self._fail(run_id, f"{outcome.error_text()}\n(gave up after {count} {counter})")
            return
        state = RunState.PREEMPTED if counter == "preemptions" else RunState.PENDING
        self.store.set_state(run_id, state, expected=RETRYABLE, error=outcome.error_text())
        self._event(run_id, f"{state} ({outcome.error}); retry {count} of {limit}")
        now = time.monotonic()
        if outcome.unplaced:  # it never ran: the wait for its workers goes on
            self._resumable_since.setdefault(run_id, now)
            self._unplaced[run_id] = (flight.resources.workers, now)
        else:
            self._resumable_since[run_id] = now
            self._unplaced.pop(run_id, None)
        self._requeue(run_id)

    def _trunk_not_ready(self, run_id: str, outcome: oc.Outcome) -> bool:
        """Whether a branch's attempt ended on finding its trunk's checkpoint not there."""
        return self._gate.parent(run_id) is not None and TRUNK_NOT_READY in (outcome.error or "")

    def _wait_for_trunk(self, flight: Flight, outcome: oc.Outcome) -> None:
        """A branch that found its trunk's checkpoint missing or incomplete (removed after the
        driver saw it): back to the queue, PENDING, until the checkpoint is there; no retry is
        spent."""
        run_id = flight.request.run_id
        self.store.set_state(run_id, RunState.PENDING, expected=RETRYABLE, error=outcome.error)
        self._gate.forget(run_id)
        self._event(run_id, f"PENDING ({outcome.error}); waits for its trunk")
        self._requeue(run_id, wait=self.options.lease_seconds / 4)  # a file system catching up

    def _fail(self, run_id: str, error: str) -> None:
        self.store.set_state(run_id, RunState.FAILED, expected=RETRYABLE, error=error)
        self.final[run_id] = RunState.FAILED
        self._event(run_id, f"FAILED: {error.splitlines()[0]}")

    def _requeue(self, run_id: str, wait: float = 0.0) -> None:
        if run_id in self.queue:  # an outcome recorded again after a store outage
            self.queue.remove(run_id)
        keys = [self._rank[r] for r in self.queue]
        self.queue.insert(bisect.bisect(keys, self._rank[run_id]), run_id)
        self._not_before[run_id] = time.monotonic() + wait

    # ------------------------------------------------------------------ upkeep

    def _heartbeat(self) -> None:
        now = time.monotonic()
        for handle, flight in self.inflight.items():
            run_id = flight.request.run_id
            if flight.stopping is not None:
                if now - flight.stop_requested > self.options.stop_grace_seconds:
                    self.backend.cancel(handle, force=True)
                continue
            if not self.store.heartbeat(run_id, self.owner, self.options.lease_seconds):
                self._stop(handle, flight, "lease lost")
            elif _cancelled(self._get(run_id)):
                self._stop(handle, flight, "cancelled")
        self._last_beat = self._renewed_at = now
        self._refresh()
        self._refresh_nodes()
        self._give_up_unreachable()

    def _give_up_unreachable(self) -> None:
        """Retry the attempts whose node was declared dead while Ray still waits for them (a
        partitioned node): the retry marks the run folder, so the old attempt, should it come
        back, writes nothing more."""
        for handle in self.backend.unreachable(list(self.inflight)):
            self.backend.forget(handle)
            error = "its node was declared dead while it ran (unreachable); retried elsewhere"
            self._record(handle, oc.Outcome(kind=oc.Kind.PREEMPTED, error=error))

    def _store_down(self, exc: StoreError) -> None:
        """One pass of the loop while the store does not answer: collect ended attempts,
        stop the runs in flight before their leases could lapse, give up after the limit."""
        now = time.monotonic()
        if self._down_since is None:
            self._down_since = now
            self._event("", f"results store unreachable, retrying: {exc}")
        down = now - self._down_since
        if down > self.options.store_outage_seconds:
            raise StoreError(
                f"the results store did not answer for {down:.0f} s (--store-outage-seconds "
                f"{self.options.store_outage_seconds:g}): {exc}; the runs in flight were "
                "stopped and resume where they were: launch the same grid again once the "
                "store is back"
            ) from None
        if now - self._renewed_at > self.options.lease_seconds / 2:
            for handle, flight in self.inflight.items():
                if flight.stopping is None:
                    self._stop(handle, flight, "store unreachable")
                elif now - flight.stop_requested > self.options.stop_grace_seconds:
                    self.backend.cancel(handle, force=True)
        if not self.inflight:
            time.sleep(self.options.poll_seconds)
            return
        for handle, outcome in self.backend.wait(list(self.inflight), self.options.poll_seconds):
            flight = self.inflight.pop(handle)
            self._pool.release(flight.placement, flight.resources)
            self._unsettled.append((flight, outcome))

    def _refresh_nodes(self) -> None:
        """Follow nodes joining or leaving: re-place the attempts in flight on the new pool."""
        nodes = self.backend.nodes()
        if [tuple(n) for n in nodes] == self._pool.capacity:
            return
        self._pool = NodePool(nodes)
        for flight in self.inflight.values():
            placement = self._pool.place(flight.resources)
            flight.placement = placement or ()
            if placement:
                self._pool.allocate(placement, flight.resources)

    def _stop(self, handle: Any, flight: Flight, why: str) -> None:
        """Ask an attempt to stop (SIGINT: the trainer checkpoints first); forced after the
        grace period."""
        flight.stopping, flight.stop_requested = why, time.monotonic()
        self._event(flight.request.run_id, f"stopping: {why}")
        self.backend.cancel(handle, force=False)

    def _refresh(self) -> None:
        """Drop queued runs that other drivers finished; learn the final states."""
        if not self.queue and len(self.final) == len(self.requests):
            return
        for record in self.store.list_runs(FINISHED):
            if record.run_id in self.requests and record.run_id not in self._in_flight_ids():
                self._finished_elsewhere(record.run_id, record.state)
                self.final.setdefault(record.run_id, record.state)

    def _in_flight_ids(self) -> set[str]:
        flights = [*self.inflight.values(), *(flight for flight, _ in self._unsettled)]
        return {f.request.run_id for f in flights}

    def _abandon(self, reason: str) -> None:
        """Stop every attempt in flight, leaving its run resumable (PREEMPTED)."""
        try:
            for handle in self.inflight:
                self.backend.cancel(handle, force=False)
            deadline = time.monotonic() + self.options.stop_grace_seconds
            while self.inflight and time.monotonic() < deadline:
                for handle, outcome in self.backend.wait(list(self.inflight), 1.0):
                    with contextlib.suppress(StoreError):  # resumable: its lease lapses
                        self._record(handle, outcome)
        finally:
            for handle, flight in list(self.inflight.items()):
                self._drop(handle, flight, reason)
            self._drop_orphans(reason)

    def _drop_orphans(self, reason: str) -> None:
        """Leave PREEMPTED the runs this driver marked RUNNING that it no longer tracks: an
        interrupt between the store's RUNNING and the attempt's registration (or between an
        attempt's end and its outcome's record) would otherwise leave a run RUNNING and leased.
        """
        try:
            for record in self.store.list_runs([RunState.RUNNING]):
                if record.run_id in self.requests and record.lease_owner == self.owner:
                    self.store.set_state(
                        record.run_id,
                        RunState.PREEMPTED,
                        expected=(RunState.RUNNING,),
                        error=reason,
                    )
                    self.store.release(record.run_id, self.owner)
        except Exception:  # best effort, as _drop: the leases expire anyway
            pass

    def _drop(self, handle: Any, flight: Flight, reason: str) -> None:
        run_id = flight.request.run_id
        try:
            self.backend.cancel(handle, force=True)
            self.store.set_state(
                run_id, RunState.PREEMPTED, expected=(RunState.RUNNING,), error=reason
            )
            self.store.release(run_id, self.owner)
        except Exception:  # best effort: the lease expires anyway
            pass
        self.inflight.pop(handle, None)

    def _event(self, run_id: str, message: str) -> None:
        if self.reporter is not None:
            self.reporter.event(run_id, message)


def _cancelled(record: RunRecord) -> str | None:
    """The reason ``slscale sweep cancel`` gave for stopping the run, if it did."""
    if record.summary.get(CANCELLED_KEY):
        return str(record.summary[CANCELLED_KEY])
    if record.state == RunState.FAILED and (record.error or "").startswith(CANCELLED_PREFIX):
        return record.error
    return None


def _until_expiry(record: RunRecord, lease_seconds: float) -> float:
    """Seconds until another driver's lease on ``record`` runs out (within [1, lease])."""
    expires = record.lease_expires_at
    if expires is None:
        return 1.0
    if expires.tzinfo is None:
        expires = expires.replace(tzinfo=dt.UTC)
    left = (expires - dt.datetime.now(dt.UTC)).total_seconds()
    return min(max(left, 1.0), lease_seconds)


def _describe(res: Resources) -> str:
    return f"{res.workers} x ({res.cpus_per_worker:g} CPUs, {res.gpus_per_worker:g} GPUs)"
