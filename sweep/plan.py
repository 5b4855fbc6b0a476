"""The plan of a grid: per run N, D, FLOPs, resources and GPU-hours, and its state in the store.

Nothing here instantiates weights: parameter and FLOP counts come from the model config
(:mod:`slscale.sweep.accounting`), resources from a memory model
(:mod:`slscale.sweep.resources`).
"""

from __future__ import annotations

import dataclasses
import functools
import types
from collections.abc import Mapping, Sequence
from typing import Any

from slscale.identity import run_id
from slscale.models import families
from slscale.spec import Architecture, RunSpec, RunState, from_dict
from slscale.sweep import accounting, resources


@dataclasses.dataclass(frozen=True, kw_only=True)
class PlanRow:
    """One run of a plan (the keys of ``grid plan --json``)."""

    run_id: str
    family: str
    size: str
    modality: str
    init: str
    n_params: int
    n_params_non_embedding: int
    tokens: int
    tokens_per_param: float
    flops_6nd: float
    flops_exact: float
    gpus: int
    zero_stage: int
    micro_batch_size: int
    grad_accum_steps: int
    gpu_hours: float
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


def plan_run(spec: RunSpec, gpu: str, mfu: float, state: RunState | None) -> PlanRow:
    """The plan of one run on ``gpu`` at an assumed ``mfu``."""
    arch = architecture(spec)
    vocab = vocab_size(arch, spec.units_only_vocab)
    params, flops_per_token = _counts(spec.family, arch, vocab, spec.recipe.context_length)
    res = resources.plan_resources(
        n_params=params.n_params,
        arch=arch,
        tokens=spec.tokens,
        flops_per_token=flops_per_token,
        recipe=spec.recipe,
        gpu=gpu,
        mfu=mfu,
        vocab_size=vocab,
    )
    return PlanRow(
        run_id=run_id(spec),
        family=spec.family,
        size=spec.size or f"L{arch.num_layers}d{arch.hidden_size}",
        modality=str(spec.modality),
        init=spec.init,
        n_params=params.n_params,
        n_params_non_embedding=params.n_params_non_embedding,
        tokens=spec.tokens,
        tokens_per_param=spec.tokens / params.n_params,
        flops_6nd=accounting.flops_6nd(params.n_params, spec.tokens),
        flops_exact=flops_per_token * spec.tokens,
        gpus=res.gpus,
        zero_stage=res.zero_stage,
        micro_batch_size=res.micro_batch_size,
        grad_accum_steps=res.grad_accum_steps,
        gpu_hours=res.gpu_hours,
        state=_state_label(state),
    )


def plan(
    specs: Sequence[RunSpec],
    gpu: str = "a100-80gb",
    mfu: float = 0.4,
    states: Mapping[str, RunState] | None = None,
) -> list[PlanRow]:
    """Plan every run; ``states`` maps run id -> state in the store (absent: new)."""
    states = states or {}
    return [plan_run(s, gpu, mfu, states.get(run_id(s))) for s in specs]


def _state_label(state: RunState | None) -> str:
    if state is None:
        return "new"
    return {RunState.SUCCEEDED: "done", RunState.FAILED: "failed"}.get(state, state.lower())


def totals(rows: Sequence[PlanRow]) -> dict[str, float]:
    """Grid totals: runs, tokens, FLOPs (6ND and exact), GPU-hours, and GPU-hours left."""
    return {
        "runs": len(rows),
        "tokens": sum(r.tokens for r in rows),
        "flops_6nd": sum(r.flops_6nd for r in rows),
        "flops_exact": sum(r.flops_exact for r in rows),
        "gpu_hours": sum(r.gpu_hours for r in rows),
        "gpu_hours_left": sum(r.gpu_hours for r in rows if r.state != "done"),
    }
