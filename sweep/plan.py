"""The plan of a grid: per run N, D, FLOPs, resources and GPU-hours, and its state in the store.

A WSD ladder's branch (:mod:`slscale.sweep.ladder`) is planned for what it trains itself, its
decay (``tokens_trained``: GPU-hours, width), while its D and 6·N·D are those of the whole run
it stands for, the point fits use.

Nothing here instantiates weights: parameter and FLOP counts come from the model config
(:mod:`slscale.sweep.accounting`), resources from a memory model
(:mod:`slscale.sweep.resources`) at the width a :class:`~slscale.sweep.targets.ResourceTarget`
asks for.
"""

from __future__ import annotations

import dataclasses
import functools
import types
from collections.abc import Mapping, Sequence
from typing import Any

from slscale import compute
from slscale.errors import ConfigError
from slscale.identity import run_id
from slscale.models import families
from slscale.spec import Architecture, RunSpec, RunState, from_dict
from slscale.sweep import accounting
from slscale.sweep.scheduler.policy import Order, Resources, SimJob, SimResult, simulate
from slscale.sweep.targets import ResourceTarget, plan_to_target

NARROW = ResourceTarget()
"""No target: each run on the fewest GPUs its memory needs."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class PlanRow:
    """One run of a plan (the keys of ``grid plan --json``)."""

    run_id: str
    parent: str | None
    """A WSD branch's trunk (its run id); None for every other run."""
    family: str
    size: str
    modality: str
    init: str
    n_params: int
    n_params_non_embedding: int
    tokens: int
    """D: the run's token budget (a WSD branch's counts from the start of its trunk)."""
    tokens_trained: int
    """What the run trains itself: a branch its decay only, every other run D."""
    tokens_per_param: float
    flops_6nd: float
    """6·N·D of the run's D: the number fits use."""
    flops_exact: float
    gpus: int
    nodes: int
    zero_stage: int
    micro_batch_size: int
    grad_accum_steps: int
    gpu_hours: float
    wall_hours: float
    state: str

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def architecture(spec_or_partial: RunSpec | Mapping[str, Any]) -> Architecture:
    """The run's architecture: explicit ``arch``, or the family's sizing of ``size``."""
    if isinstance(spec_or_partial, RunSpec):
        if spec_or_partial.arch is not None:
            return spec_or_partial.arch
        return _resolve(spec_or_partial.family, str(spec_or_partial.size))
    arch = spec_or_partial.get("arch")
    if arch is not None:
        return from_dict(Architecture, arch, "arch")
    return _resolve(str(spec_or_partial.get("family", "")), str(spec_or_partial.get("size")))


@functools.lru_cache(maxsize=4096)
def _resolve(family: str, size: str) -> Architecture:
    return families.resolve_architecture(family, size)


def vocab_size(arch: Architecture, units_only: bool) -> int:
    """Vocabulary after the speech extension (+500 units, <speech>, <text>); a units-only
    textless vocabulary keeps just the units and special tokens (changes N)."""
    return accounting.extended_vocab_size(0 if units_only else arch.vocab_size)


@functools.lru_cache(maxsize=4096)
def _counts(family: str, arch: Architecture, vocab: int, context_length: int) -> tuple:
    # The config's fields, not a transformers object: accounting reads attributes only, and
    # importing transformers would cost `grid plan` seconds of start-up.
    config = types.SimpleNamespace(**families.config_fields(family, arch, vocab_size=vocab))
    params = accounting.count_params(config)
    return params, accounting.flops_per_token(config, context_length)


def param_counts(partial: Mapping[str, Any]) -> dict[str, float]:
    """n_params and n_params_non_embedding of a partial run dict (family + size/arch)."""
    arch = architecture(partial)
    vocab = vocab_size(arch, bool(partial.get("units_only_vocab", False)))
    params, _ = _counts(str(partial["family"]), arch, vocab, 1)
    return {"n_params": params.n_params, "n_params_non_embedding": params.n_params_non_embedding}


def plan_run(
    spec: RunSpec,
    gpu: str,
    mfu: float,
    state: RunState | None,
    target: ResourceTarget = NARROW,
) -> PlanRow:
    """The plan of one run on ``gpu`` at an assumed ``mfu``, as wide as ``target`` asks."""
    arch = architecture(spec)
    vocab = vocab_size(arch, spec.units_only_vocab)
    params, flops_per_token = _counts(spec.family, arch, vocab, spec.recipe.context_length)
    rid = run_id(spec)
    try:
        res = plan_to_target(
            target,
            n_params=params.n_params,
            arch=arch,
            tokens=spec.tokens_trained,
            flops_per_token=flops_per_token,
            recipe=spec.recipe,
            gpu=gpu,
            mfu=mfu,
            vocab_size=vocab,
        )
    except ConfigError as exc:
        raise ConfigError(f"run {rid}: {exc}") from None
    return PlanRow(
        run_id=rid,
        parent=spec.branch.parent if spec.branch else None,
        family=spec.family,
        size=spec.size or f"L{arch.num_layers}d{arch.hidden_size}",
        modality=str(spec.modality),
        init=spec.init,
        n_params=params.n_params,
        n_params_non_embedding=params.n_params_non_embedding,
        tokens=spec.tokens,
        tokens_trained=spec.tokens_trained,
        tokens_per_param=spec.tokens / params.n_params,
        flops_6nd=compute.flops_6nd(params.n_params, spec.tokens),
        flops_exact=flops_per_token * spec.tokens,
        gpus=res.gpus,
        nodes=res.nodes,
        zero_stage=res.zero_stage,
        micro_batch_size=res.micro_batch_size,
        grad_accum_steps=res.grad_accum_steps,
        gpu_hours=res.gpu_hours,
        wall_hours=res.est_seconds / 3600,
        state=_state_label(state),
    )


def plan(
    specs: Sequence[RunSpec],
    gpu: str = "a100-80gb",
    mfu: float = 0.4,
    states: Mapping[str, RunState] | None = None,
    targets: Mapping[str, ResourceTarget] | None = None,
) -> list[PlanRow]:
    """Plan every run; ``states`` maps run id -> state in the store (absent: new),
    ``targets`` run id -> its width (absent: the fewest GPUs that fit)."""
    states, targets = states or {}, targets or {}
    return [
        plan_run(s, gpu, mfu, states.get(rid), targets.get(rid, NARROW))
        for s, rid in ((s, run_id(s)) for s in specs)
    ]


def run_targets(
    runs: Sequence[tuple[RunSpec, ResourceTarget]], flags: ResourceTarget
) -> dict[str, ResourceTarget]:
    """Run id -> its width: the command line's ``flags`` over the grid's ``resources:``
    (:func:`~slscale.sweep.grid.expand_with_targets`)."""
    return {run_id(spec): flags.over(target) for spec, target in runs}


def _state_label(state: RunState | None) -> str:
    if state is None:
        return "new"
    return {RunState.SUCCEEDED: "done", RunState.FAILED: "failed"}.get(state, state.lower())


def totals(rows: Sequence[PlanRow]) -> dict[str, float]:
    """Grid totals: runs, tokens, FLOPs (6ND and exact), GPU-hours, and GPU-hours left; tokens
    and FLOPs count what the runs train (a WSD branch its decay: its trunk trains the rest)."""
    return {
        "runs": len(rows),
        "tokens": sum(r.tokens_trained for r in rows),
        "flops_6nd": sum(compute.flops_6nd(r.n_params, r.tokens_trained) for r in rows),
        "flops_exact": sum(_trained_share(r, r.flops_exact) for r in rows),
        "gpu_hours": sum(r.gpu_hours for r in rows),
        "gpu_hours_left": sum(r.gpu_hours for r in rows if r.state != "done"),
    }


def _trained_share(row: PlanRow, value: float) -> float:
    """``value`` (a whole run's) scaled to the tokens the run trains itself."""
    if row.tokens_trained == row.tokens:
        return value
    return value * row.tokens_trained / row.tokens


def ladder_totals(rows: Sequence[PlanRow]) -> dict[str, float] | None:
    """The WSD ladders of a plan against independent runs of the same cells: trunks,
    branches, the 6·N·D the ladders train (trunks whole, branches their decays) and the 6·N·D
    of the branches' cells each trained from scratch; None without ladders."""
    branches = [r for r in rows if r.parent is not None]
    if not branches:
        return None
    parents = {r.parent for r in branches}
    trunks = [r for r in rows if r.run_id in parents]
    trained = sum(compute.flops_6nd(r.n_params, r.tokens_trained) for r in trunks + branches)
    return {
        "trunks": len(trunks),
        "branches": len(branches),
        "flops_6nd_trained": trained,
        "flops_6nd_independent": sum(r.flops_6nd for r in branches),
    }


def cluster_nodes(cluster_gpus: int, gpus_per_node: int) -> list[tuple[float, float]]:
    """(CPUs, GPUs) of the nodes of a cluster of ``cluster_gpus`` GPUs: whole nodes of
    ``gpus_per_node``, the rest on one smaller node. CPUs are not modelled (0 asked, 0 had)."""
    if cluster_gpus < 1:
        raise ConfigError(f"--cluster-gpus {cluster_gpus}: must be >= 1")
    whole, rest = divmod(cluster_gpus, gpus_per_node)
    return [(0.0, float(gpus_per_node))] * whole + ([(0.0, float(rest))] if rest else [])


def makespan(
    rows: Sequence[PlanRow],
    nodes: Sequence[tuple[float, float]],
    order: Order | str = Order.LARGEST_FIRST,
) -> SimResult | None:
    """The makespan of the runs not done on ``nodes``, placed by the driver's own policy
    (:func:`~slscale.sweep.scheduler.policy.simulate`); None when every run is done."""
    todo = [r for r in rows if r.state != "done"]
    if not todo:
        return None
    gpus = sum(g for _, g in nodes)
    for r in todo:
        if r.gpus > gpus:
            raise ConfigError(
                f"run {r.run_id} needs {r.gpus} GPUs but the cluster has {gpus:g}: raise "
                "--cluster-gpus, or lower --gpus-per-run / raise --max-hours-per-run"
            )
    return simulate(sim_jobs(todo), nodes, order)


def sim_jobs(rows: Sequence[PlanRow]) -> list[SimJob]:
    """The runs as the scheduler's simulator sees them: ``gpus`` workers of one GPU each for
    their wall-clock hours (CPUs not modelled); a WSD branch starts once its trunk has trained
    to its branch point (the trunk's hours in proportion to the tokens)."""
    by_id = {r.run_id: r for r in rows}
    return [
        SimJob(
            run_id=r.run_id,
            hours=r.wall_hours,
            resources=Resources(workers=r.gpus, cpus_per_worker=0.0, gpus_per_worker=1.0),
            after=branch_point(r, by_id),
        )
        for r in rows
    ]


def branch_point(row: PlanRow, by_id: Mapping[str, PlanRow]) -> tuple[str, float] | None:
    """(trunk, hours into the trunk) where a branch may start; None for other runs."""
    trunk = by_id.get(row.parent) if row.parent else None
    if trunk is None:
        return None
    from_tokens = row.tokens - row.tokens_trained
    return trunk.run_id, trunk.wall_hours * from_tokens / trunk.tokens
