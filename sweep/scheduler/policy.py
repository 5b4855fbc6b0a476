"""Scheduling policy: run order, packing runs onto nodes, and a simulator of both.

The driver and the simulator share this code, so the simulator's makespans are those of the
policy the driver actually uses: runs are taken in a fixed priority order and, whenever
resources free up, every queued run that fits is started (list scheduling with backfill).
Largest-first is Graham's LPT rule ("Bounds on multiprocessing timing anomalies", 1969):
longest expected wall-clock time first, whose makespan on identical machines is within 4/3 of
the optimum. With runs of different GPU counts it is a heuristic, which :func:`simulate`
measures against the lower bound max(total GPU-hours / GPUs, longest run); ordering by
duration rather than by GPU-hours keeps a wide, short run from delaying a long one (on the
SIMS-scale grid: ≤ 1.09 of the bound against up to 1.31 by GPU-hours, benchmarks/bench_sweep).

A run asks for ``workers`` processes of ``cpus_per_worker`` CPUs and ``gpus_per_worker``
GPUs. A run that fits on one node is placed on one node (Ray's STRICT_PACK); a larger one
spreads over several nodes, filling the emptiest first (PACK).
"""

from __future__ import annotations

import dataclasses
import enum
import heapq
from collections.abc import Callable, Iterable, Mapping, Sequence

from slscale.errors import ConfigError


class Order(enum.StrEnum):
    """The order in which queued runs are started."""

    LARGEST_FIRST = "largest-first"
    SMALLEST_FIRST = "smallest-first"
    GRID = "grid"


@dataclasses.dataclass(frozen=True, kw_only=True)
class Resources:
    """What one run asks of the cluster."""

    workers: int = 1
    """Processes of the run (one per GPU on GPU runs; a Ray Train worker group when > 1)."""
    cpus_per_worker: float = 1.0
    """CPUs reserved for each process."""
    gpus_per_worker: float = 0.0
    """GPUs reserved for each process."""

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ConfigError(f"field 'workers' = {self.workers!r}: must be >= 1")
        if self.cpus_per_worker < 0 or self.gpus_per_worker < 0:
            raise ConfigError(
                f"resources per worker ({self.cpus_per_worker} CPUs, {self.gpus_per_worker} "
                "GPUs) must be >= 0"
            )

    @property
    def cpus(self) -> float:
        return self.workers * self.cpus_per_worker

    @property
    def gpus(self) -> float:
        return self.workers * self.gpus_per_worker


def order_runs(
    run_ids: Sequence[str], size_of: Callable[[str], float], order: Order | str
) -> list[str]:
    """``run_ids`` in start order; ``size_of`` gives a run's work (GPU-hours or FLOPs).

    Ties keep the grid's order (the sort is stable), so the order is deterministic.
    """
    order = parse_order(order)
    if order is Order.GRID:
        return list(run_ids)
    return sorted(run_ids, key=size_of, reverse=order is Order.LARGEST_FIRST)


def parse_order(order: Order | str) -> Order:
    try:
        return Order(order)
    except ValueError:
        choices = ", ".join(o.value for o in Order)
        raise ConfigError(f"--order {order!r}: must be one of {choices}") from None


Placement = tuple[tuple[int, int], ...]
"""(node index, workers on it) for every node a run uses."""


class NodePool:
    """Free CPUs and GPUs per node, and where runs go."""

    def __init__(self, nodes: Iterable[tuple[float, float]]) -> None:
        """``nodes``: (CPUs, GPUs) of each node."""
        self.capacity = [(float(c), float(g)) for c, g in nodes]
        self.free = [list(cap) for cap in self.capacity]

    def can_ever_fit(self, res: Resources) -> bool:
        """Whether the run fits on the empty cluster."""
        empty = NodePool(self.capacity)
        return empty.place(res) is not None

    def place(self, res: Resources) -> Placement | None:
        """Where the run would go now, or None if it does not fit."""
        single = [i for i, free in enumerate(self.free) if _fits(free, res, res.workers)]
        if single:  # the tightest node that holds the whole run (best fit)
            best = min(single, key=lambda i: (self.free[i][1], self.free[i][0], i))
            return ((best, res.workers),)
        if any(_fits(list(cap), res, res.workers) for cap in self.capacity):
            return None  # it fits on one node: wait for one rather than span nodes
        placement: list[tuple[int, int]] = []
        left = res.workers
        for i in sorted(range(len(self.free)), key=lambda i: -_room(self.free[i], res)):
            take = min(left, _room(self.free[i], res))
            if take > 0:
                placement.append((i, take))
                left -= take
            if left == 0:
                return tuple(placement)
        return None

    def allocate(self, placement: Placement, res: Resources, sign: int = 1) -> None:
        for node, workers in placement:
            self.free[node][0] -= sign * workers * res.cpus_per_worker
            self.free[node][1] -= sign * workers * res.gpus_per_worker

    def release(self, placement: Placement, res: Resources) -> None:
        self.allocate(placement, res, sign=-1)


def _fits(free: list[float], res: Resources, workers: int) -> bool:
    eps = 1e-9
    return (
        free[0] + eps >= workers * res.cpus_per_worker
        and free[1] + eps >= workers * res.gpus_per_worker
    )


def _room(free: list[float], res: Resources) -> int:
    """How many of the run's workers fit in ``free``."""
    bounds = [res.workers]
    if res.cpus_per_worker > 0:
        bounds.append(int((free[0] + 1e-9) // res.cpus_per_worker))
    if res.gpus_per_worker > 0:
        bounds.append(int((free[1] + 1e-9) // res.gpus_per_worker))
    return max(0, min(bounds))


def pick_startable(
    queue: Sequence[str],
    resources_of: Callable[[str], Resources],
    pool: NodePool,
    slots: int,
) -> list[tuple[str, Placement]]:
    """Runs of ``queue`` (in order) to start now, at most ``slots``; allocates them in ``pool``.

    A run that does not fit is passed over and later runs that fit start (backfill).
    """
    picked = pick_widest(queue, lambda run_id: (resources_of(run_id),), pool, slots)
    return [(run_id, placement) for run_id, placement, _ in picked]


def pick_widest(
    queue: Sequence[str],
    choices_of: Callable[[str], Sequence[Resources]],
    pool: NodePool,
    slots: int,
) -> list[tuple[str, Placement, Resources]]:
    """As :func:`pick_startable`, where a run may start on any of its ``choices_of`` (its
    planned resources, then fewer workers, widest first): on the first that fits now. Returns
    each run with its placement and the resources it got."""
    picked: list[tuple[str, Placement, Resources]] = []
    for run_id in queue:
        if len(picked) >= slots:
            break
        for res in choices_of(run_id):
            placement = pool.place(res)
            if placement is not None:
                pool.allocate(placement, res)
                picked.append((run_id, placement, res))
                break
    return picked


@dataclasses.dataclass(frozen=True, kw_only=True)
class SimJob:
    """A run as the simulator sees it."""

    run_id: str
    hours: float
    """Wall-clock duration of the run."""
    resources: Resources
    after: tuple[str, float] | None = None
    """(run id, hours): this run cannot start until that many hours after that run started
    (a WSD branch waits for its trunk to reach its branch point); ignored when that run is not
    simulated (done already)."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class SimResult:
    """Outcome of :func:`simulate`."""

    makespan_hours: float
    lower_bound_hours: float
    """max(total GPU-hours (or CPU-hours) / cluster GPUs (CPUs), longest run)."""
    starts: dict[str, float]
    """Start time of every run (hours)."""

    @property
    def ratio(self) -> float:
        return self.makespan_hours / self.lower_bound_hours


def simulate(
    jobs: Sequence[SimJob],
    nodes: Sequence[tuple[float, float]],
    order: Order | str,
    size_of: Callable[[SimJob], float] | None = None,
) -> SimResult:
    """Makespan of ``jobs`` on ``nodes`` under the driver's policy, no failures; a job with
    ``after`` waits in the queue until its run has run that long (a WSD branch and its trunk).

    ``size_of`` ranks the jobs (default: their duration, as the driver does)."""
    by_id = {j.run_id: j for j in jobs}
    pool = NodePool(nodes)
    for job in jobs:
        if not pool.can_ever_fit(job.resources):
            raise ConfigError(f"run {job.run_id} needs {job.resources} and fits on no node")
    rank = size_of or (lambda job: job.hours)
    queue = order_runs(list(by_id), lambda r: rank(by_id[r]), order)
    running: list[tuple[float, str, Placement]] = []
    starts: dict[str, float] = {}
    now = 0.0

    def resources_of(run_id: str) -> Resources:
        return by_id[run_id].resources

    def ready_at(run_id: str) -> float | None:
        """When the run may start: now, or once its ``after`` run has run long enough (None
        while that run has not started)."""
        after = by_id[run_id].after
        if after is None or after[0] not in by_id:
            return 0.0
        start = starts.get(after[0])
        return None if start is None else start + after[1]

    while queue or running:
        ready = [r for r in queue if (t := ready_at(r)) is not None and t <= now]
        for run_id, placement in pick_startable(ready, resources_of, pool, len(ready)):
            starts[run_id] = now
            heapq.heappush(running, (now + by_id[run_id].hours, run_id, placement))
        queue = [r for r in queue if r not in starts]
        wakeups = [t for r in queue if (t := ready_at(r)) is not None and t > now]
        if wakeups and (not running or min(wakeups) < running[0][0]):
            now = min(wakeups)  # a waiting run becomes startable before the next one ends
            continue
        now, run_id, placement = heapq.heappop(running)
        pool.release(placement, by_id[run_id].resources)
    return SimResult(makespan_hours=now, lower_bound_hours=_lower_bound(jobs, nodes), starts=starts)


def _lower_bound(jobs: Sequence[SimJob], nodes: Sequence[tuple[float, float]]) -> float:
    gpus = sum(g for _, g in nodes)
    cpus = sum(c for c, _ in nodes)
    gpu_hours = sum(j.hours * j.resources.gpus for j in jobs)
    cpu_hours = sum(j.hours * j.resources.cpus for j in jobs)
    by_id = {j.run_id: j for j in jobs}
    bound = max(_chain_hours(j, by_id) for j in jobs)
    if gpus > 0:
        bound = max(bound, gpu_hours / gpus)
    if cpus > 0:
        bound = max(bound, cpu_hours / cpus)
    return bound


def _chain_hours(job: SimJob, by_id: Mapping[str, SimJob]) -> float:
    """The earliest a job can end: its hours, after the hours its ``after`` chain waits."""
    hours = job.hours
    while job.after is not None and job.after[0] in by_id:
        hours += job.after[1]
        job = by_id[job.after[0]]
    return hours
