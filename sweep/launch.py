"""``sweep launch``: from a grid to runs executed on Ray, idempotently.

A launch expands the grid, registers every run in the store (registering is idempotent),
and hands the runs that are not finished to the scheduler: PENDING runs start, RUNNING and
PREEMPTED ones resume from their checkpoints (a RUNNING run whose driver is gone is taken over
when its lease expires, or at once if that driver ran on this machine), SUCCEEDED runs are
never touched, FAILED ones are left alone unless
``retry_failed`` gives them a fresh retry budget. So launching again — after the driver was
killed, after a reboot, after cells were added to the grid — runs exactly what is missing.

Resources come from the plan (:mod:`slscale.sweep.plan`), as wide as the grid's
``resources:`` and the options' ``resources`` ask: on a cluster with GPUs a run is ``gpus``
workers of one GPU each (a Ray Train worker group when several, spanning nodes when wider than
one), trained with the plan's ZeRO stage and micro-batch; on a CPU-only cluster a run is
``workers_per_run`` workers of ``cpus_per_run`` CPUs each (the plan's GPU counts then only order
the runs). With ``min_workers_per_run`` below a run's width, a resumed run that has not had its
workers back for ``elastic_wait_seconds`` starts on fewer (:mod:`slscale.sweep.widths` says
which widths a run may take; the driver picks among them).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from slscale.errors import SlscaleError
from slscale.identity import run_id
from slscale.spec import RunSpec, RunState, spec_to_dict
from slscale.store import Store, open_store, resolve_store_target
from slscale.store.targets import DB_FILENAME
from slscale.sweep import plan as plan_mod
from slscale.sweep import widths
from slscale.sweep.scheduler import outcome as oc
from slscale.sweep.scheduler.api import (
    CANCELLED_KEY,
    FINISHED,
    RunRequest,
    SchedulerOptions,
    SweepReport,
)
from slscale.sweep.scheduler.backend import RayBackend
from slscale.sweep.scheduler.driver import Driver, Reporter
from slscale.sweep.scheduler.policy import (
    NodePool,
    Order,
    Resources,
    SimJob,
    SimResult,
    parse_order,
    simulate,
)
from slscale.sweep.scheduler.runners import TrainerRun
from slscale.sweep.targets import ResourceTarget


@dataclasses.dataclass(frozen=True, kw_only=True)
class LaunchOptions:
    """Runtime settings of a launch (none of them changes a run's identity)."""

    workdir: str
    """Study folder: the store (by default) and ``runs/<run_id>/`` live here."""
    store: str | None = None
    """Store path or URL (default: ``$SLSCALE_STORE`` or ``<workdir>/results.db``)."""
    address: str | None = None
    """Ray cluster to join; None starts a local Ray runtime."""
    num_cpus: int | None = None
    """CPUs of the local Ray runtime (None: all); ignored with ``address``."""
    max_concurrent: int | None = None
    """Most runs at once (None: as many as fit)."""
    max_retries: int = 2
    """Retries of a run after a transient error (input errors are never retried)."""
    order: Order = Order.LARGEST_FIRST
    """Run order (largest-first lowers the makespan)."""
    gpu: str = "a100-80gb"
    """GPU type of the resource plan."""
    mfu: float = 0.4
    """Assumed MFU of the resource plan (only orders runs and estimates time)."""
    cpus_per_gpu: float = 1.0
    """CPUs reserved with each GPU worker."""
    cpus_per_run: float = 1.0
    """CPUs of each worker on a CPU-only cluster."""
    workers_per_run: int = 1
    """Workers of each run on a CPU-only cluster (> 1: a Ray Train worker group)."""
    min_workers_per_run: int | None = None
    """Fewest workers (GPUs on a GPU cluster) a resumed run may go on when its own are not
    free; None: its planned count (it waits for them)."""
    elastic_wait_seconds: float = 300.0
    """How long a resumed run waits for its planned workers before it takes fewer (with
    ``min_workers_per_run``)."""
    retry_failed: bool = False
    """Give FAILED runs a fresh retry budget and run them again."""
    lease_seconds: float = 60.0
    """Lease on each run's row (a dead driver's runs are taken over after this)."""
    poll_seconds: float = 1.0
    """Longest wait of the driver's loop."""
    stop_grace_seconds: float = 30.0
    """Time a stopped run has to checkpoint before its process is killed."""
    store_outage_seconds: float = 900.0
    """How long the driver waits for an unreachable store before it stops."""
    reuse_processes: bool = True
    """Run one-process CPU runs in reused Ray worker processes (GPU runs always get a fresh
    one); off: a fresh process per attempt."""
    resources: ResourceTarget = plan_mod.NARROW
    """Width of every run (``--gpus-per-run`` ...), over the grid's ``resources:``."""
    cluster_gpus: int | None = None
    """GPUs of the cluster a dry run estimates the makespan on (a launch uses Ray's)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "order", parse_order(self.order))
        if self.cpus_per_run <= 0 or self.cpus_per_gpu < 0 or self.workers_per_run < 1:
            raise SlscaleError(
                f"--cpus-per-run {self.cpus_per_run}, --cpus-per-gpu {self.cpus_per_gpu}, "
                f"--workers-per-run {self.workers_per_run}: must be positive"
            )
        if self.min_workers_per_run is not None and self.min_workers_per_run < 1:
            raise SlscaleError(f"--min-workers-per-run {self.min_workers_per_run}: must be >= 1")
        if not self.elastic_wait_seconds >= 0:
            raise SlscaleError(f"--elastic-wait {self.elastic_wait_seconds}: must be >= 0")


@dataclasses.dataclass(frozen=True, kw_only=True)
class LaunchPlan:
    """What a launch will do, before it does it (``--dry-run`` prints this)."""

    rows: list[plan_mod.PlanRow]
    """The plan of every run of the grid, with its state in the store."""
    to_run: list[str]
    """Run ids to execute (new, pending, resumed), in grid order."""
    skipped: dict[str, RunState]
    """Run ids left alone and why (SUCCEEDED, or FAILED without ``retry_failed``)."""
    specs: dict[str, RunSpec]
    """Every run of the grid by id."""
    store_target: str
    """Where the store is (path or URL)."""
    makespan: SimResult | None = None
    """Estimated makespan of the runs to execute on ``cluster_gpus`` (dry run only)."""


Targets = Mapping[str, ResourceTarget]
"""Run id -> the grid's ``resources:`` for it (:func:`~slscale.sweep.grid.expand_with_targets`)."""


def prepare(
    specs: Sequence[RunSpec], options: LaunchOptions, store: Store, targets: Targets | None = None
) -> LaunchPlan:
    """Register ``specs`` and decide which runs to execute."""
    by_id = {run_id(s): s for s in specs}
    store.register({rid: spec_to_dict(s) for rid, s in by_id.items()})
    states = _states(store, by_id)
    if options.retry_failed:
        _reset_failed(store, [rid for rid, s in states.items() if s == RunState.FAILED])
        states = _states(store, by_id)
    return _plan(by_id, states, options, targets or {})


def dry_run(
    specs: Sequence[RunSpec], options: LaunchOptions, targets: Targets | None = None
) -> LaunchPlan:
    """What :func:`launch` would do, without registering anything or starting Ray; with
    ``options.cluster_gpus``, the makespan of what it would run on that many GPUs."""
    by_id = {run_id(s): s for s in specs}
    target = resolve_store_target(options.store, options.workdir)
    states: dict[str, RunState] = {}
    if _store_exists(target):  # otherwise nothing launched yet: every run is new
        with open_store(target) as store:
            states = _states(store, by_id)
    plan = _plan(by_id, states, options, targets or {})
    if options.cluster_gpus is None:
        return plan
    nodes = plan_mod.cluster_nodes(options.cluster_gpus, options.resources.per_node)
    to_run = set(plan.to_run)
    rows = [r for r in plan.rows if r.run_id in to_run]
    return dataclasses.replace(plan, makespan=plan_mod.makespan(rows, nodes))


def _store_exists(target: str) -> bool:
    if "://" in target:
        return True
    path = Path(target)
    return (path / DB_FILENAME).exists() if path.is_dir() else path.exists()


def _states(store: Store, by_id: Mapping[str, RunSpec]) -> dict[str, RunState]:
    return {r.run_id: r.state for r in store.list_runs() if r.run_id in by_id}


def _plan(
    by_id: Mapping[str, RunSpec],
    states: Mapping[str, RunState],
    options: LaunchOptions,
    targets: Targets,
) -> LaunchPlan:
    widths = {rid: options.resources.over(targets.get(rid, plan_mod.NARROW)) for rid in by_id}
    specs = list(by_id.values())
    rows = plan_mod.plan(specs, gpu=options.gpu, mfu=options.mfu, states=states, targets=widths)
    skipped = {rid: s for rid, s in states.items() if s in FINISHED}
    if options.retry_failed:
        skipped = {rid: s for rid, s in skipped.items() if s == RunState.SUCCEEDED}
    to_run = [rid for rid in by_id if rid not in skipped]
    target = resolve_store_target(options.store, options.workdir)
    return LaunchPlan(
        rows=rows, to_run=to_run, skipped=skipped, specs=dict(by_id), store_target=target
    )


def _reset_failed(store: Store, run_ids: Sequence[str]) -> None:
    for rid in run_ids:
        if store.set_state(rid, RunState.PENDING, expected=(RunState.FAILED,), error=None):
            store.set_summary(rid, {"failures": 0, "preemptions": 0, CANCELLED_KEY: None})


def run_requests(
    plan: LaunchPlan,
    options: LaunchOptions,
    gpus_in_cluster: bool,
    zero_stage: int | None = None,
) -> list[RunRequest]:
    """A run request per run to execute, with its resources on this cluster, the fewer
    workers it may resume on (``options.min_workers_per_run``; on GPUs those on which it fits
    at its ZeRO stage: the plan's, or ``zero_stage``) and its expected duration (the order's
    key): planned hours on GPUs; FLOPs when every run gets the same CPU workers."""
    rows = {r.run_id: r for r in plan.rows}
    floor = options.min_workers_per_run
    out = []
    for rid in plan.to_run:
        row, spec = rows[rid], plan.specs[rid]
        if gpus_in_cluster:
            res = Resources(
                workers=row.gpus, cpus_per_worker=options.cpus_per_gpu, gpus_per_worker=1.0
            )
            stage = row.zero_stage if zero_stage is None else zero_stage
            fewer = [
                f.workers for f in widths.narrower_gpu(spec, options.gpu, row.gpus, floor, stage)
            ]
            duration = row.gpu_hours / row.gpus
        else:
            res = Resources(workers=options.workers_per_run, cpus_per_worker=options.cpus_per_run)
            batch = spec.recipe.global_batch_size
            fewer = widths.narrower_cpu(batch, options.workers_per_run, floor)
            duration = row.flops_exact
        out.append(
            RunRequest(
                run_id=rid,
                spec=spec_to_dict(spec),
                resources=res,
                work=duration,
                tokens=row.tokens,
                flops=row.flops_exact,
                narrower=tuple(dataclasses.replace(res, workers=w) for w in fewer),
            )
        )
    return out


def launch(
    specs: Sequence[RunSpec],
    options: LaunchOptions,
    run_fn: oc.RunFunction | None = None,
    reporter: Reporter | None = None,
    targets: Targets | None = None,
) -> SweepReport:
    """Execute every run of ``specs`` that is not finished; return when all are.

    ``run_fn`` trains one run (:func:`trainer_run_function` for the DeepSpeed trainer);
    ``targets`` are the grid's ``resources:`` per run."""
    if run_fn is None:
        raise SlscaleError("no run function: pass --data DIR (the trainer's data) or --run-fn")
    workdir = os.path.abspath(options.workdir)
    options = dataclasses.replace(options, workdir=workdir)
    with open_store(resolve_store_target(options.store, workdir)) as store:
        plan = prepare(specs, options, store, targets)
        RayBackend.connect(options.address, options.num_cpus)
        use_gpu = _cluster_gpus() > 0
        requests = run_requests(plan, options, use_gpu, _zero_stage(run_fn))
        if use_gpu:
            run_fn = with_planned_settings(run_fn, plan, requests, options.gpu)
        backend = RayBackend(
            run_fn,
            getattr(run_fn, "worker_fn", None),
            use_gpu=use_gpu,
            reuse_processes=options.reuse_processes,
        )
        if backend.worker_fn is None and any(r.resources.workers > 1 for r in requests):
            raise SlscaleError(
                "runs of several processes need a run function with a Ray Train worker "
                "function (worker_fn), as the trainer has; use --workers-per-run 1"
            )
        estimate = (
            _estimate(requests, plan.rows, backend.nodes(), options.order)
            if backend.use_gpu
            else None
        )
        if reporter is not None and estimate is not None:
            reporter.event("sweep", estimate)
        driver = Driver(store, backend, _scheduler_options(options, plan), reporter)
        report = driver.run(requests)
    # The report covers the whole grid: runs left alone count with their stored state.
    return dataclasses.replace(report, states={**plan.skipped, **report.states})


def with_planned_settings(
    run_fn: oc.RunFunction, plan: LaunchPlan, requests: Sequence[RunRequest], gpu: str
) -> oc.RunFunction:
    """The trainer set to each run's ZeRO stage and micro-batch on each width it may train
    on (used on GPUs): on its planned width, the plan's (the micro-batch chosen again for a
    ``zero_stage`` the trainer was told); on fewer workers, the largest micro-batch that fits
    at that stage. A width on which the told stage does not fit keeps the error that says so,
    which the run's attempt raises (:class:`~slscale.errors.ConfigError`). Other run functions
    are returned as they are."""
    if not isinstance(run_fn, TrainerRun):
        return run_fn
    rows = {r.run_id: r for r in plan.rows}
    told = _zero_stage(run_fn)
    planned: dict[str, dict[int, dict[str, Any]]] = {}
    for request in requests:
        row, spec = rows[request.run_id], plan.specs[request.run_id]
        stage = row.zero_stage if told is None else told
        by_width: dict[int, dict[str, Any]] = {}
        if told is None or told == row.zero_stage:
            by_width[row.gpus] = {"zero_stage": stage, "micro_batch_size": row.micro_batch_size}
        for res in (request.resources, *request.narrower):
            if res.workers not in by_width:
                try:
                    by_width[res.workers] = widths.fit_at(spec, gpu, res.workers, stage).settings()
                except SlscaleError as exc:
                    by_width[res.workers] = {"error": str(exc)}
        planned[request.run_id] = by_width
    return dataclasses.replace(run_fn, planned=planned)


def _zero_stage(run_fn: oc.RunFunction | None) -> int | None:
    """The ZeRO stage the trainer was told (``--zero-stage``), if any."""
    if isinstance(run_fn, TrainerRun) and "zero_stage" in run_fn.runtime:
        return int(run_fn.runtime["zero_stage"])
    return None


def _estimate(
    requests: Sequence[RunRequest],
    rows: Sequence[plan_mod.PlanRow],
    nodes: Sequence[tuple[float, float]],
    order: Order,
) -> str | None:
    """The expected makespan of ``requests`` on ``nodes`` (no failures), by the policy the
    driver runs; ``work`` is each run's planned wall-clock hours on GPUs, and a WSD branch
    waits for its trunk's branch point (``rows``: the plan). None when there is nothing to run
    or a run fits nowhere (the driver then says which)."""
    by_id = {r.run_id: r for r in rows}
    jobs = [
        SimJob(
            run_id=r.run_id,
            hours=r.work,
            resources=r.resources,
            after=plan_mod.branch_point(by_id[r.run_id], by_id) if r.run_id in by_id else None,
        )
        for r in requests
    ]
    if not jobs or not all(NodePool(nodes).can_ever_fit(j.resources) for j in jobs):
        return None
    result = simulate(jobs, nodes, order)
    hours = result.makespan_hours
    return (
        f"{len(jobs)} runs on {sum(g for _, g in nodes):g} GPUs: expected makespan "
        f"{hours:,.0f} h ({hours / 24:.1f} days) at the planned MFU, without failures"
    )


def _scheduler_options(options: LaunchOptions, plan: LaunchPlan) -> SchedulerOptions:
    target = plan.store_target
    if "://" not in target:
        target = os.path.abspath(target)  # runs open it from their own working directory
    return SchedulerOptions(
        workdir=options.workdir,
        store_url=target,
        max_concurrent=options.max_concurrent,
        max_retries=options.max_retries,
        order=options.order,
        lease_seconds=options.lease_seconds,
        poll_seconds=options.poll_seconds,
        stop_grace_seconds=options.stop_grace_seconds,
        store_outage_seconds=options.store_outage_seconds,
        elastic_wait_seconds=options.elastic_wait_seconds,
    )


def _cluster_gpus() -> float:
    import ray

    return float(ray.cluster_resources().get("GPU", 0.0))


def trainer_run_function(
    data_dir: str,
    tokenizer: str | None = None,
    runtime: Mapping[str, Any] | None = None,
    plan_gpu: str | None = None,
) -> oc.RunFunction:
    """The trainer behind ``slscale train`` on the data in ``data_dir``: a
    :class:`~slscale.models.train.spec_job.SpecJobBuilder` job per run; on GPU clusters the
    plan of ``plan_gpu`` sets each run's ZeRO stage and micro-batch."""
    from slscale.models.train.spec_job import SpecJobBuilder
    from slscale.sweep.scheduler.runners import TrainerRun

    builder = SpecJobBuilder(data_dir=os.path.abspath(data_dir), tokenizer=tokenizer)
    return TrainerRun(job_builder=builder, runtime=dict(runtime or {}), plan_gpu=plan_gpu)


def load_run_function(ref: str, kwargs: Mapping[str, Any] | None = None) -> oc.RunFunction:
    """``module:attr`` naming a run function, or a class/factory called with ``kwargs``."""
    import importlib

    module_name, _, attr = ref.partition(":")
    try:
        target = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError, ValueError) as exc:
        raise SlscaleError(f"--run-fn {ref!r} cannot be imported: {exc}") from None
    if isinstance(target, type) or kwargs:
        target = target(**dict(kwargs or {}))
    if not callable(target):
        raise SlscaleError(f"--run-fn {ref!r} is not callable")
    return target
