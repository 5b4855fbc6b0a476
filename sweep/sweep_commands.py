"""``slscale sweep launch|status|cancel`` and ``slscale tune``.

Only argparse code runs at start-up; each command imports Ray, the store and the trainer when
it runs, so ``slscale --help`` stays fast.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import getpass
import json
import signal
import socket
import sys
from collections.abc import Iterator
from typing import Any

from slscale.errors import SlscaleError
from slscale.trackers import add_tracker_arguments, settings_from_args

ORDERS = ("largest-first", "smallest-first", "grid")
RETRIES_EPILOG = """\
which failures are retried:
  preemption, node loss, a crashed or killed worker (SIGTERM, SIGKILL, Ray's
    WorkerCrashedError, NodeDiedError, ...): always (up to 1000 times, against crash
    loops); the run resumes from its last checkpoint
  transient errors: an unreachable results store, out of memory on a busy node, any
    exception slscale does not know as an input error (a lost connection, a full
    disk, a bug): up to --max-retries times
  input and configuration errors: never; the run is FAILED at its first attempt
    with the error (a bad data row names its file and line). These are a bad data
    row or file, an unknown or invalid field, a missing TextLM, tokenizer or data
    folder, a model that fits no GPU (or not at the --zero-stage it was told on its
    number of GPUs), an unusable checkpoint (or one written with another ZeRO stage
    or precision), and a diverged loss. Fix the cause, then launch again with
    --retry-failed.

resuming on fewer workers:
  A run of several workers (GPUs, or --workers-per-run) that is resumed -- after a
  preemption, a lost node or a retried error -- waits for its planned workers. With
  --min-workers-per-run N, once they are not free --elastic-wait seconds after it
  stopped, it starts on the most workers that are free, down to N: a number that
  splits the run's global batch and, on GPUs, on which the model fits in memory at
  the run's ZeRO stage (the resource plan's memory model). The global batch, the data
  order and the loss curve stay the same; the micro-batches and gradient accumulation
  are cut again, and the checkpoint is re-partitioned (DeepSpeed's universal
  checkpoint). Each attempt's number of workers is shown by 'slscale sweep status'.
"""


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``sweep`` (launch, status, cancel) and ``tune``."""
    sweep = sub.add_parser("sweep", help="launch a grid's runs on Ray; status; cancel")
    ssub = sweep.add_subparsers(dest="sweep_command", required=True, metavar="SWEEP_COMMAND")
    _launch_parser(ssub)
    from slscale.sweep import slurm

    slurm.add_parser(ssub)

    status = ssub.add_parser(
        "status", help="each run's state, attempts and their workers, last loss, tokens, error"
    )
    _store_arguments(status)
    status.add_argument("--json", action="store_true", help="print a JSON list of runs")
    status.set_defaults(func=cmd_status)

    cancel = ssub.add_parser("cancel", help="stop runs (all unfinished ones if none is named)")
    _store_arguments(cancel)
    cancel.add_argument("run_ids", nargs="*", metavar="RUN_ID", help="runs to cancel")
    cancel.set_defaults(func=cmd_cancel)
    _tune_parser(sub)


def _store_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workdir", help="the study's folder (its store: <workdir>/results.db)")
    parser.add_argument("--store", help="store path or URL (default: $SLSCALE_STORE or workdir's)")


def _launch_parser(ssub: Any) -> None:
    p = ssub.add_parser(
        "launch",
        help="run every unfinished run of a grid on Ray",
        epilog=RETRIES_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("grid", help="grid YAML, shipped grid name, or module:function")
    p.add_argument("--workdir", required=True, help="study folder (runs/<run_id>/, results.db)")
    p.add_argument("--store", help="store path or URL (default: <workdir>/results.db)")
    add_cluster_arguments(p)
    p.add_argument(
        "--retry-failed",
        action="store_true",
        help="run FAILED runs again with a fresh retry budget",
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="show what would run, skip and resume; change nothing",
    )
    p.set_defaults(func=cmd_launch)


def add_cluster_arguments(p: argparse.ArgumentParser) -> None:
    """Options shared by ``sweep launch`` and ``tune``."""
    p.add_argument("--address", help="Ray cluster to join (default: start a local Ray runtime)")
    p.add_argument("--num-cpus", type=int, help="CPUs of the local Ray runtime (default: all)")
    p.add_argument("--max-concurrent", type=int, help="most runs at once (default: as fit)")
    p.add_argument(
        "--max-retries",
        type=int,
        default=2,
        help="retries of a run after a transient error before it is FAILED (default 2; "
        "input errors are never retried, preemptions always: see 'sweep launch --help')",
    )
    p.add_argument(
        "--order",
        choices=ORDERS,
        default="largest-first",
        help="which runs start first (default largest-first)",
    )
    from slscale.sweep.resources import GPU_TYPES

    p.add_argument(
        "--gpu",
        default="a100-80gb",
        choices=sorted(GPU_TYPES),
        help="GPU type of the resource plan (default a100-80gb)",
    )
    from slscale.sweep import targets

    targets.add_arguments(p)
    p.add_argument("--cpus-per-gpu", type=float, default=1.0, help="CPUs per GPU worker")
    p.add_argument(
        "--cpus-per-run",
        type=float,
        default=1.0,
        help="CPUs per worker on a CPU-only cluster (default 1)",
    )
    p.add_argument(
        "--workers-per-run",
        type=int,
        default=1,
        help="workers per run on a CPU-only cluster (default 1)",
    )
    p.add_argument(
        "--min-workers-per-run",
        type=int,
        metavar="N",
        help="let a resumed run whose workers are not free go on with fewer, down to N "
        "(GPUs on a GPU cluster); default: its planned number (it waits for them). See below",
    )
    p.add_argument(
        "--elastic-wait",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="how long a resumed run waits for its planned workers before it takes fewer "
        "(with --min-workers-per-run; default 300)",
    )
    p.add_argument(
        "--lease-seconds",
        type=float,
        default=60.0,
        help="lease on a run; a dead driver's runs are taken over after it",
    )
    p.add_argument(
        "--store-outage-seconds",
        type=float,
        default=900.0,
        help="how long to wait for an unreachable results store before stopping (default 900)",
    )
    p.add_argument(
        "--fresh-process-per-run",
        action="store_true",
        help="start every CPU run in a new process (default: reuse Ray's worker processes, "
        "saving the imports of torch and DeepSpeed per run; GPU runs always get a new one)",
    )
    p.add_argument(
        "--run-fn",
        metavar="MODULE:ATTR",
        help="run function to execute instead of the trainer (e.g. "
        "slscale.sweep.scheduler.runners:SyntheticRun)",
    )
    p.add_argument(
        "--run-fn-kwargs",
        metavar="JSON",
        help="keyword arguments of --run-fn when it names a class or factory",
    )
    p.add_argument("--quiet", action="store_true", help="no progress output")
    t = p.add_argument_group("the trainer (as in slscale train)")
    t.add_argument("--data", help="data folder every run trains on (text/, speech/, ...)")
    t.add_argument("--tokenizer", help="text tokenizer folder (default: <data>/tokenizer)")
    t.add_argument(
        "--zero-stage",
        type=int,
        choices=(0, 1, 2, 3),
        help="ZeRO stage of every run (default: the plan's on GPUs, 0 on CPUs)",
    )
    t.add_argument(
        "--checkpoint-every",
        type=int,
        metavar="STEPS",
        help="checkpoint cadence (default: 20 checkpoints per run)",
    )
    t.add_argument(
        "--log-every",
        type=int,
        default=10,
        metavar="STEPS",
        help="steps between logged metrics (default 10)",
    )
    add_tracker_arguments(p)


def _tune_parser(sub: Any) -> None:
    p = sub.add_parser("tune", help="LR search per size (Optuna TPE) and a fitted lr = c*N^k rule")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--grid", help="tune the sizes of this grid (YAML, shipped name, mod:fn)")
    what.add_argument("--size", nargs="+", help="tune these sizes (presets or targets: 85M)")
    p.add_argument("--family", default="llama", help="family of --size runs (default llama)")
    p.add_argument("--modality", help="modality of --size runs (default textless); filters --grid")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="override a spec field of every trial (dotted: recipe.context_length=128)",
    )
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--tokens", type=float, help="token budget of every trial")
    budget.add_argument(
        "--tokens-per-param",
        type=float,
        help="token budget of a trial as a multiple of its size's N",
    )
    p.add_argument("--trials", type=int, required=True, help="trials per size")
    p.add_argument("--parallel", type=int, default=2, help="trials per size at once (default 2)")
    p.add_argument("--lr-range", type=float, nargs=2, default=(1e-4, 3e-2), metavar=("LO", "HI"))
    p.add_argument(
        "--warmup-range",
        type=float,
        nargs=2,
        metavar=("LO", "HI"),
        help="also search the warm-up fraction in this range",
    )
    p.add_argument("--seed", type=int, default=0, help="sampler seed")
    p.add_argument(
        "--n-kind",
        choices=("n_params_non_embedding", "n_params"),
        default="n_params_non_embedding",
        help="which N the rule uses",
    )
    p.add_argument("--out", required=True, help="where to write the rule (.json or .yaml)")
    p.add_argument("--workdir", required=True, help="study folder (runs/, results.db)")
    p.add_argument("--store", help="store path or URL (default: <workdir>/results.db)")
    add_cluster_arguments(p)
    p.set_defaults(func=cmd_tune)


def launch_options(args: argparse.Namespace) -> Any:
    from slscale.sweep import targets
    from slscale.sweep.launch import LaunchOptions

    return LaunchOptions(
        workdir=args.workdir,
        store=args.store,
        address=args.address,
        num_cpus=args.num_cpus,
        max_concurrent=args.max_concurrent,
        max_retries=args.max_retries,
        order=args.order,
        gpu=args.gpu,
        cpus_per_gpu=args.cpus_per_gpu,
        cpus_per_run=args.cpus_per_run,
        workers_per_run=args.workers_per_run,
        min_workers_per_run=args.min_workers_per_run,
        elastic_wait_seconds=args.elastic_wait,
        lease_seconds=args.lease_seconds,
        store_outage_seconds=args.store_outage_seconds,
        reuse_processes=not args.fresh_process_per_run,
        retry_failed=getattr(args, "retry_failed", False),
        resources=targets.from_arguments(args),
        cluster_gpus=args.cluster_gpus,
    )


def cmd_launch(args: argparse.Namespace) -> int:
    from slscale.sweep import launch as launch_mod
    from slscale.sweep import plan as plan_mod
    from slscale.sweep.grid import expand_with_targets
    from slscale.sweep.io import load_grid
    from slscale.sweep.scheduler.progress import ConsoleReporter

    runs = expand_with_targets(load_grid(args.grid), plan_mod.param_counts)
    specs = [spec for spec, _ in runs]
    grid_targets = plan_mod.run_targets(runs, plan_mod.NARROW)
    options = launch_options(args)
    if args.dry_run:
        print(format_dry_run(launch_mod.dry_run(specs, options, grid_targets)))
        return 0
    run_fn = run_function(args)
    reporter = ConsoleReporter(quiet=args.quiet)
    try:
        with sigterm_interrupts():
            report = launch_mod.launch(
                specs, options, run_fn=run_fn, reporter=reporter, targets=grid_targets
            )
    finally:
        reporter.close()
    print(format_report(report))
    return 0 if report.ok else 1


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """SIGTERM (``kill``, a batch system ending the job) stops the driver like Ctrl-C: its runs
    are asked to checkpoint and left PREEMPTED, ready for the next launch."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_function(args: argparse.Namespace) -> Any:
    """The trainer on --data, or the run function named by --run-fn/--run-fn-kwargs."""
    from slscale.sweep.launch import load_run_function, trainer_run_function

    if args.run_fn and args.data:
        raise SlscaleError("give --data (the trainer) or --run-fn, not both")
    if args.run_fn and settings_from_args(args) is not None:
        raise SlscaleError("--wandb/--tensorboard mirror the trainer's runs; not with --run-fn")
    if not args.run_fn:
        if args.run_fn_kwargs:
            raise SlscaleError("--run-fn-kwargs needs --run-fn")
        if not args.data:
            raise SlscaleError("pass --data DIR (the data folder runs train on) or --run-fn")
        return trainer_run_function(args.data, args.tokenizer, _trainer_runtime(args), args.gpu)
    try:
        kwargs = json.loads(args.run_fn_kwargs) if args.run_fn_kwargs else None
    except json.JSONDecodeError as exc:
        raise SlscaleError(f"--run-fn-kwargs {args.run_fn_kwargs!r}: not JSON ({exc})") from None
    if kwargs is not None and not isinstance(kwargs, dict):
        raise SlscaleError(f"--run-fn-kwargs {args.run_fn_kwargs!r}: must be a JSON object")
    return load_run_function(args.run_fn, kwargs)


def _trainer_runtime(args: argparse.Namespace) -> dict[str, Any]:
    """TrainConfig fields set on the command line (the rest: the trainer's defaults, the plan's
    ZeRO stage and micro-batch on GPUs, 20 checkpoints per run)."""
    runtime: dict[str, Any] = {"log_every_steps": args.log_every}
    trackers = settings_from_args(args)
    if trackers is not None:
        runtime["trackers"] = trackers
    if args.zero_stage is not None:
        runtime["zero_stage"] = args.zero_stage
    if args.checkpoint_every is not None:
        runtime["checkpoint_every_steps"] = args.checkpoint_every
    return runtime


def format_dry_run(plan: Any) -> str:
    """One line per run: what launch would do with it, and totals."""
    from slscale.identity import human_count

    actions = {
        "new": "run",
        "pending": "run",
        "running": "resume",
        "preempted": "resume",
        "failed": "retry",
    }
    lines, counts = [], {"run": 0, "resume": 0, "retry": 0, "skip": 0}
    for row in plan.rows:
        action = actions.get(row.state, "run") if row.run_id in plan.to_run else "skip"
        counts[action] += 1
        lines.append(
            f"{action:6}  {row.state:9}  {row.run_id}  D={human_count(row.tokens)}  "
            f"GPUs={row.gpus}  nodes={row.nodes}  ZeRO={row.zero_stage}  "
            f"mb×acc={row.micro_batch_size}×{row.grad_accum_steps}  "
            f"GPU-h={row.gpu_hours:.3g}  wall-h={row.wall_hours:.3g}"
        )
    summary = ", ".join(f"{n} {a}" for a, n in counts.items())
    if plan.makespan is not None:
        h = plan.makespan.makespan_hours
        lines.append(f"makespan of the runs to run: {h:,.0f} h ({h / 24:.1f} days)")
    return "\n".join([f"dry run: {summary} (store {plan.store_target})", *lines])


def format_report(report: Any) -> str:
    from slscale.spec import RunState

    parts = [f"{report.count(s)} {s}" for s in RunState if report.count(s)]
    started = sum(report.attempts.values())
    return (
        f"sweep finished in {report.seconds:.1f} s: {', '.join(parts) or 'nothing to run'}; "
        f"{started} attempts started by this driver"
    )


def cmd_status(args: argparse.Namespace) -> int:
    """The store's status table (``slscale status``); with WSD ladders in the store, their
    total trained compute against independent runs of the same cells."""
    from slscale.store.commands import cmd_status as store_status

    code = store_status(args)
    if code == 0 and not args.json:
        line = ladder_line(args)
        if line is not None:
            print(line)
    return code


def ladder_line(args: argparse.Namespace) -> str | None:
    """:func:`~slscale.sweep.grid_commands.format_ladders` of the ladders registered in the store
    (None without ladders); a spec that no longer parses is left out."""
    from slscale.errors import ConfigError
    from slscale.spec import spec_from_dict
    from slscale.store import read_store, resolve_store_target
    from slscale.sweep import plan as plan_mod
    from slscale.sweep.grid_commands import format_ladders

    with read_store(resolve_store_target(args.store, args.workdir)) as store:
        records = store.list_runs()
    if not any(r.spec.get("branch") for r in records):
        return None
    specs = []
    for record in records:
        try:
            specs.append(spec_from_dict(record.spec))
        except (ConfigError, TypeError, ValueError):
            continue
    totals = plan_mod.ladder_totals(plan_mod.plan(specs))
    return None if totals is None else format_ladders(totals)


def cmd_cancel(args: argparse.Namespace) -> int:
    """Mark runs FAILED as cancelled; their drivers stop them at the next heartbeat."""
    from slscale.spec import RunState
    from slscale.store import read_store, resolve_store_target
    from slscale.sweep.scheduler.api import CANCELLED_KEY, CANCELLED_PREFIX, NOT_FINISHED

    reason = (
        f"{CANCELLED_PREFIX} by {getpass.getuser()}@{socket.gethostname()} at "
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M:%S} UTC (slscale sweep cancel)"
    )
    with read_store(resolve_store_target(args.store, args.workdir)) as store:
        known = {r.run_id: r.state for r in store.list_runs()}
        unknown = [r for r in args.run_ids if r not in known]
        if unknown:
            raise SlscaleError(f"run {unknown[0]!r} is not in the store: see slscale sweep status")
        targets = args.run_ids or [r for r, s in known.items() if s in NOT_FINISHED]
        done = []
        for run_id in targets:
            if store.set_state(run_id, RunState.FAILED, expected=NOT_FINISHED, error=reason):
                store.set_summary(run_id, {CANCELLED_KEY: reason})
                done.append(run_id)
    for run_id in done:
        print(f"cancelled {run_id}")
    for run_id in sorted(set(targets) - set(done)):
        print(f"not cancelled {run_id}: already {known[run_id]}", file=sys.stderr)
    return 0


def cmd_tune(args: argparse.Namespace) -> int:
    from slscale.sweep import plan as plan_mod
    from slscale.sweep import tune as tune_mod
    from slscale.sweep.scheduler.progress import ConsoleReporter

    settings = tune_mod.TuneSettings(
        trials=args.trials,
        parallel=args.parallel,
        seed=args.seed,
        space=tune_mod.SearchSpace(
            lr_low=args.lr_range[0],
            lr_high=args.lr_range[1],
            warmup_low=args.warmup_range[0] if args.warmup_range else None,
            warmup_high=args.warmup_range[1] if args.warmup_range else None,
        ),
    )
    bases = tune_mod.bases_from_specs(_tune_specs(args), _budget(args))
    search = tune_mod.Search(bases, settings, launch_options(args))
    reporter = ConsoleReporter(quiet=args.quiet)
    try:
        with sigterm_interrupts():
            search.run(run_fn=run_function(args), reporter=reporter)
    finally:
        reporter.close()
    results = search.results(lambda spec: plan_mod.param_counts(tune_mod.spec_fields(spec)))
    for r in results:
        print(
            f"{r.size}: best lr {r.lr:.3g} (warm-up {r.warmup_fraction:.3g}), loss "
            f"{r.value:.4f} after {r.trials} trials [{r.run_id}]"
        )
    rule = tune_mod.fit_lr_rule(results, args.n_kind)
    rule.save(args.out)
    print(f"lr = {rule.c:.4g} * N^{rule.k:.4f} (N = {rule.n_kind}) written to {args.out}")
    return 0


def _tune_specs(args: argparse.Namespace) -> list[Any]:
    from slscale.sweep import plan as plan_mod
    from slscale.sweep import tune as tune_mod
    from slscale.sweep.grid import expand
    from slscale.sweep.io import load_grid

    if args.grid:
        specs = expand(load_grid(args.grid), plan_mod.param_counts)
        if args.modality:
            specs = [s for s in specs if str(s.modality) == args.modality]
        if args.set:
            specs = [tune_mod.with_overrides(s, args.set) for s in specs]
        if not specs:
            raise SlscaleError(f"grid {args.grid!r} has no {args.modality} runs to tune")
        return specs
    if args.tokens is None and args.tokens_per_param is None:
        raise SlscaleError("tune --size needs a budget: --tokens or --tokens-per-param")
    return [
        tune_mod.size_spec(size, args.family, args.modality or "textless", args.set)
        for size in args.size
    ]


def _budget(args: argparse.Namespace) -> Any:
    from slscale.sweep import plan as plan_mod
    from slscale.sweep import tune as tune_mod

    if args.tokens is not None:
        return lambda spec: tune_mod.whole_steps(spec, args.tokens)
    if args.tokens_per_param is not None:

        def budget(spec: Any) -> int:
            n = plan_mod.param_counts(tune_mod.spec_fields(spec))["n_params"]
            return tune_mod.whole_steps(spec, args.tokens_per_param * n)

        return budget
    return None
