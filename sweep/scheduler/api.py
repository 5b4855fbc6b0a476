"""The scheduler's vocabulary: run requests, options, the backend and reporter protocols, and
the report of a launch."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from slscale.errors import SlscaleError
from slscale.spec import RunState
from slscale.sweep.scheduler import outcome as oc
from slscale.sweep.scheduler.backend import Attempt
from slscale.sweep.scheduler.policy import Order, Resources

if TYPE_CHECKING:
    from slscale.sweep.scheduler.driver import Driver

CANCELLED_PREFIX = "cancelled"
"""Start of the error of a run stopped by ``slscale sweep cancel``."""
CANCELLED_KEY = "cancelled"
"""Summary key ``slscale sweep cancel`` sets (its reason): unlike the state, which a starting
trainer overwrites with RUNNING, it survives until ``--retry-failed`` clears it."""
FINISHED = (RunState.SUCCEEDED, RunState.FAILED)
NOT_FINISHED = (RunState.PENDING, RunState.RUNNING, RunState.PREEMPTED)


@dataclasses.dataclass(frozen=True, kw_only=True)
class RunRequest:
    """A run to execute, with what it needs and how big it is."""

    run_id: str
    spec: dict[str, Any]
    resources: Resources
    work: float
    """Expected duration, used by the run order (hours at the planned width, or anything
    proportional to them, such as FLOPs when every run gets the same workers)."""
    tokens: int
    """Token budget (for progress)."""
    flops: float
    """Training FLOPs of the whole run (for progress and ETA)."""
    narrower: tuple[Resources, ...] = ()
    """Fewer workers the run may resume on, widest first (each splits its global batch and
    fits in memory at its ZeRO stage): taken when a resumed run has not had its planned
    workers back for ``elastic_wait_seconds``. Empty: only ``resources``."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class SchedulerOptions:
    """How the driver schedules."""

    workdir: str
    """Run directories go to ``<workdir>/runs/<run_id>/``."""
    store_url: str
    """Store target handed to each run (its metrics and state go there)."""
    max_concurrent: int | None = None
    """Most runs in flight at once (None: as many as the cluster holds)."""
    max_retries: int = 2
    """Retries of a run after a transient error, before it is FAILED (input errors are never
    retried: see :mod:`~slscale.sweep.scheduler.outcome`)."""
    max_preemptions: int = 1000
    """Resumptions after lost processes before a run is FAILED (against crash loops)."""
    order: Order = Order.LARGEST_FIRST
    """Which queued runs start first."""
    lease_seconds: float = 60.0
    """Lease on a run's row; a dead driver's runs are taken over after this long."""
    poll_seconds: float = 1.0
    """Longest wait between two passes of the loop."""
    stop_grace_seconds: float = 30.0
    """How long a stopped attempt may take to checkpoint before its process is killed."""
    store_outage_seconds: float = 900.0
    """How long the driver rides out an unreachable store before it gives up (its runs in
    flight are stopped, resumable, once half a lease has passed without renewal)."""
    elastic_wait_seconds: float = 300.0
    """How long a resumed run with ``narrower`` choices waits for its planned workers before
    it starts on the widest of them that is free; also how long Ray may take to place one of
    its worker groups."""

    def __post_init__(self) -> None:
        if self.max_concurrent is not None and self.max_concurrent < 1:
            raise SlscaleError(f"--max-concurrent {self.max_concurrent}: must be >= 1")
        if self.max_retries < 0:
            raise SlscaleError(f"--max-retries {self.max_retries}: must be >= 0")
        if self.store_outage_seconds < 0:
            raise SlscaleError(f"--store-outage-seconds {self.store_outage_seconds}: must be >= 0")
        if not self.elastic_wait_seconds >= 0:
            raise SlscaleError(f"--elastic-wait {self.elastic_wait_seconds}: must be >= 0")
        if not self.lease_seconds > 4 * self.poll_seconds:
            raise SlscaleError(
                f"lease of {self.lease_seconds} s: must exceed four polls ({self.poll_seconds} s)"
            )


class Backend(Protocol):
    """What the driver needs of a cluster (see :class:`~.backend.RayBackend`)."""

    def nodes(self) -> list[tuple[float, float]]: ...
    def submit(self, attempt: Attempt) -> Any: ...
    def wait(
        self, handles: Sequence[Any], timeout_seconds: float
    ) -> list[tuple[Any, oc.Outcome]]: ...
    def cancel(self, handle: Any, force: bool) -> None: ...
    def unreachable(self, handles: Sequence[Any]) -> list[Any]: ...
    def forget(self, handle: Any) -> None: ...


class Reporter(Protocol):
    """Receives progress (see :mod:`~.progress`)."""

    def event(self, run_id: str, message: str) -> None: ...
    def refresh(self, driver: Driver) -> None: ...


@dataclasses.dataclass(frozen=True, kw_only=True)
class SweepReport:
    """What a launch did."""

    states: dict[str, RunState]
    """Final state of every requested run (as this driver last saw it)."""
    attempts: dict[str, int]
    """Attempts this driver started, per run."""
    seconds: float

    def count(self, state: RunState) -> int:
        return sum(1 for s in self.states.values() if s == state)

    @property
    def ok(self) -> bool:
        return all(s == RunState.SUCCEEDED for s in self.states.values())
