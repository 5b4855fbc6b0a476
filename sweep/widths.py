"""On how many workers a run may train: the fewer workers a resumed run may narrow to, and
its ZeRO stage and micro-batch on each.

A run planned on W workers may resume on w < W workers (``sweep launch --min-workers-per-run``)
when w is at least the floor the user set, divides the run's global batch (every worker takes
an equal share of each step: the global batch, and with it the loss curve, stays the same;
the micro-batches and gradient accumulation are cut again), and — on GPUs — the model fits in
the memory of each GPU at the run's ZeRO stage, by the memory model of the resource plan
(:func:`slscale.sweep.resources.memory_per_gpu`), with the largest power-of-two micro-batch
that fits. The ZeRO stage is the one the run was planned (or told, ``--zero-stage``) with,
on every width: a checkpoint resumes only with the stage that wrote it. CPU workers have no
memory model here: on a CPU cluster only the floor and the global batch limit the width.
"""

from __future__ import annotations

import dataclasses

from slscale.errors import ConfigError
from slscale.identity import run_id
from slscale.spec import RunSpec, spec_to_dict
from slscale.sweep import plan as plan_mod
from slscale.sweep import resources

SAFETY_MARGIN = 0.1
"""Share of a GPU's memory left free, as the resource plan leaves it (``plan_resources``)."""
MAX_WIDTH = 4096
"""Widest run searched for when saying how many GPUs a stage needs."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class Fit:
    """A run's settings on one width."""

    workers: int
    zero_stage: int
    micro_batch_size: int

    def settings(self) -> dict[str, int]:
        """The trainer's runtime fields for this width."""
        return {"zero_stage": self.zero_stage, "micro_batch_size": self.micro_batch_size}


def splits(global_batch: int, workers: int) -> bool:
    """Whether ``workers`` workers take equal shares of a global batch."""
    return workers >= 1 and global_batch % workers == 0


def narrower_cpu(global_batch: int, planned: int, floor: int | None) -> list[int]:
    """Fewer workers than ``planned`` a CPU run may resume on, widest first."""
    low = planned if floor is None else max(1, floor)
    return [w for w in range(planned - 1, low - 1, -1) if splits(global_batch, w)]


def narrower_gpu(
    spec: RunSpec, gpu: str, planned: int, floor: int | None, zero_stage: int
) -> list[Fit]:
    """Fewer GPUs than ``planned`` the run may resume on at ``zero_stage``, widest first (a
    width on which the model does not fit is left out)."""
    low = planned if floor is None else max(1, floor)
    model = _Model.of(spec, gpu)
    fits = (_fit(model, workers, zero_stage) for workers in range(planned - 1, low - 1, -1))
    return [fit for fit in fits if fit is not None]


def fit_at(spec: RunSpec, gpu: str, workers: int, zero_stage: int) -> Fit:
    """The run's micro-batch on ``workers`` GPUs at ``zero_stage``; a :class:`ConfigError`
    saying why and what to do if the model does not fit there."""
    model = _Model.of(spec, gpu)
    fit = _fit(model, workers, zero_stage)
    if fit is not None:
        return fit
    need = model.bytes(workers, zero_stage, 1) / resources.GIB
    wider = next(
        (
            w
            for w in range(workers + 1, MAX_WIDTH + 1)
            if splits(spec.recipe.global_batch_size, w) and _fit(model, w, zero_stage)
        ),
        None,
    )
    keep = "a checkpoint resumes only with the stage that wrote it"
    what = (
        f"run it on at least {wider} GPUs (--gpus-per-run {wider}) or with another "
        f"--zero-stage ({keep})"
        if wider is not None
        else f"no number of GPUs holds it at this stage: run it with another --zero-stage ({keep})"
    )
    raise ConfigError(
        f"run {run_id(spec)}: ZeRO-{zero_stage} on {workers} x {gpu} does not fit in memory "
        f"(it needs {need:.1f} GiB per GPU at micro-batch 1, {model.usable / resources.GIB:.1f} "
        f"usable): {what}"
    )


def _fit(model: _Model, workers: int, zero_stage: int) -> Fit | None:
    """The largest power-of-two micro-batch dividing a worker's share that fits, or None."""
    if not splits(model.global_batch, workers):
        return None
    share = model.global_batch // workers
    micro = share & -share  # the largest power of two dividing a worker's share
    while micro >= 1 and model.bytes(workers, zero_stage, micro) > model.usable:
        micro //= 2
    if micro < 1:
        return None
    return Fit(workers=workers, zero_stage=zero_stage, micro_batch_size=micro)


@dataclasses.dataclass(frozen=True, kw_only=True)
class _Model:
    """What the memory model needs of a run."""

    spec: RunSpec
    gpu: resources.GPUType
    n_params: int
    usable: int

    @property
    def global_batch(self) -> int:
        return self.spec.recipe.global_batch_size

    @classmethod
    def of(cls, spec: RunSpec, gpu: str) -> _Model:
        g = resources.get_gpu_type(gpu)
        usable = int((g.memory_bytes - g.reserved_bytes) * (1 - SAFETY_MARGIN)) + g.reserved_bytes
        n_params = int(plan_mod.param_counts(spec_to_dict(spec))["n_params"])
        return cls(spec=spec, gpu=g, n_params=n_params, usable=usable)

    def bytes(self, workers: int, zero_stage: int, micro_batch_size: int) -> int:
        arch = plan_mod.architecture(self.spec)
        return resources.memory_per_gpu(
            n_params=self.n_params,
            arch=arch,
            context_length=self.spec.recipe.context_length,
            gpus=workers,
            zero_stage=zero_stage,
            micro_batch_size=micro_batch_size,
            gpu=self.gpu,
            vocab_size=plan_mod.vocab_size(arch, self.spec.units_only_vocab),
        ).total_bytes
