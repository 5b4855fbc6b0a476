"""How wide a run is: a fixed GPU count, or the fewest GPUs that finish within a wall clock.

A :class:`ResourceTarget` says how a study uses its cluster: ``gpus_per_run`` (exactly that
many, rounded down to a valid data-parallel size) or ``max_hours_per_run`` (the fewest GPUs
that train the run within that many hours at the assumed MFU), and the node shape
(``gpus_per_node``, ``max_nodes_per_run``). It comes from the command line
(``--gpus-per-run`` ...) or a grid's ``resources:`` block (for the whole grid, or inside a
bundle axis value for the runs of that value); flags override the grid. It is runtime, like
the GPU type: it never enters a run's identity. Whatever the width, the ZeRO stage and the
micro-batch are chosen again for it (:func:`slscale.sweep.resources.plan_resources`), so a
wider run may drop to a lower stage.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
from collections.abc import Mapping
from typing import Any

from slscale.errors import ConfigError
from slscale.spec import Architecture, Recipe
from slscale.sweep import resources

DEFAULT_GPUS_PER_NODE = 8
"""GPUs of one node when unset: NVIDIA DGX A100 / DGX H100 nodes carry 8 GPUs."""
DEFAULT_MAX_NODES_PER_RUN = 8
"""Most nodes of one run when unset (64 GPUs on 8-GPU nodes)."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class ResourceTarget:
    """How wide runs are (unset fields: the default, or whatever a lower layer sets)."""

    gpus_per_run: int | None = None
    """GPUs of every run (rounded down to a valid data-parallel size); None: fewest that fit."""
    max_hours_per_run: float | None = None
    """Widen each run to the fewest GPUs that train it within this wall clock (hours)."""
    gpus_per_node: int | None = None
    """GPUs of one node (default 8); wider runs fill whole nodes."""
    max_nodes_per_run: int | None = None
    """Most nodes one run may span (default 8)."""

    def __post_init__(self) -> None:
        for name in ("gpus_per_run", "gpus_per_node", "max_nodes_per_run"):
            value = getattr(self, name)
            if value is not None and (type(value) is not int or value < 1):
                raise ConfigError(f"{_label(name)} = {value!r}: must be a whole number >= 1")
        hours = self.max_hours_per_run
        if hours is not None and (isinstance(hours, bool) or not hours > 0):
            raise ConfigError(f"{_label('max_hours_per_run')} = {hours!r}: must be > 0")
        if self.gpus_per_run is not None and hours is not None:
            raise ConfigError(
                f"{_label('gpus_per_run')} and {_label('max_hours_per_run')} are both set: "
                "give one (a fixed width, or the fewest GPUs within a wall clock)"
            )

    @property
    def per_node(self) -> int:
        return self.gpus_per_node or DEFAULT_GPUS_PER_NODE

    @property
    def max_nodes(self) -> int:
        return self.max_nodes_per_run or DEFAULT_MAX_NODES_PER_RUN

    @property
    def max_gpus(self) -> int:
        return self.per_node * self.max_nodes

    def over(self, lower: ResourceTarget) -> ResourceTarget:
        """This target's set fields over ``lower``'s; setting one of gpus_per_run and
        max_hours_per_run clears the other."""
        base = lower.to_dict()
        if self.gpus_per_run is not None or self.max_hours_per_run is not None:
            base = {k: v for k, v in base.items() if k not in _WIDTH_KEYS}
        return ResourceTarget(**(base | self.to_dict()))

    def to_dict(self) -> dict[str, Any]:
        """The set fields (the YAML ``resources:`` block)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, data: Any, where: str) -> ResourceTarget:
        """A target from a ``resources:`` block; errors name ``where`` it was read."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"{where}: 'resources' must be a mapping of {', '.join(KEYS)}")
        unknown = sorted(set(data) - set(KEYS))
        if unknown:
            raise ConfigError(
                f"{where}: unknown key 'resources.{unknown[0]}' (expected {', '.join(KEYS)})"
            )
        fields = dict(data)
        if _number(fields.get("max_hours_per_run")):  # YAML reads 168 as an int
            fields["max_hours_per_run"] = float(fields["max_hours_per_run"])
        try:
            return cls(**fields)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None


KEYS = tuple(f.name for f in dataclasses.fields(ResourceTarget))
_WIDTH_KEYS = ("gpus_per_run", "max_hours_per_run")


def _label(name: str) -> str:
    return f"resources.{name} (--{name.replace('_', '-')})"


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """``--gpus-per-run`` / ``--max-hours-per-run``, ``--gpus-per-node``,
    ``--max-nodes-per-run`` (over the grid's ``resources:``), and ``--cluster-gpus``."""
    g = p.add_argument_group("run width (over the grid's resources: block; not in run ids)")
    width = g.add_mutually_exclusive_group()
    width.add_argument("--gpus-per-run", type=int, metavar="N", help="exactly N GPUs per run")
    width.add_argument(
        "--max-hours-per-run",
        type=float,
        metavar="H",
        help="each run on the fewest GPUs that finish it within H hours at the assumed MFU",
    )
    g.add_argument("--gpus-per-node", type=int, metavar="N", help="GPUs per node (default 8)")
    g.add_argument(
        "--max-nodes-per-run", type=int, metavar="N", help="most nodes per run (default 8)"
    )
    g.add_argument(
        "--cluster-gpus",
        type=int,
        metavar="N",
        help="estimate the study's makespan on a cluster of N GPUs",
    )


def from_arguments(args: argparse.Namespace) -> ResourceTarget:
    """The target the command line sets (unset flags leave the grid's values)."""
    return ResourceTarget(
        gpus_per_run=getattr(args, "gpus_per_run", None),
        max_hours_per_run=getattr(args, "max_hours_per_run", None),
        gpus_per_node=getattr(args, "gpus_per_node", None),
        max_nodes_per_run=getattr(args, "max_nodes_per_run", None),
    )


def plan_to_target(
    target: ResourceTarget,
    *,
    n_params: int,
    arch: Architecture,
    tokens: int,
    flops_per_token: float,
    recipe: Recipe,
    gpu: str,
    mfu: float,
    vocab_size: int | None = None,
) -> resources.ResourcePlan:
    """The resource plan of one run at the width ``target`` asks for (ConfigError if none)."""
    plan = functools.partial(
        resources.plan_resources,
        n_params=n_params,
        arch=arch,
        tokens=tokens,
        flops_per_token=flops_per_token,
        recipe=recipe,
        gpu=gpu,
        mfu=mfu,
        max_gpus_per_node=target.per_node,
        max_nodes=target.max_nodes,
        vocab_size=vocab_size,
    )
    if target.gpus_per_run is not None:
        width = _exact_width(target, recipe.global_batch_size)
        return _checked(plan(min_gpus=width), width, gpu)
    if target.max_hours_per_run is not None:
        flops = flops_per_token * tokens
        return plan(min_gpus=_fast_width(target, recipe.global_batch_size, flops, gpu, mfu))
    return plan(min_gpus=1)


def _exact_width(target: ResourceTarget, global_batch: int) -> int:
    n = target.gpus_per_run
    assert n is not None
    if n > target.max_gpus:
        raise ConfigError(
            f"--gpus-per-run {n} is more than {target.max_nodes} nodes x {target.per_node} "
            "GPUs: raise --max-nodes-per-run or --gpus-per-node"
        )
    if n > global_batch:
        raise ConfigError(
            f"global_batch_size {global_batch} cannot be split over --gpus-per-run {n} GPUs "
            f"(at least one sequence each): lower --gpus-per-run to {global_batch} or raise "
            "recipe.global_batch_size"
        )
    sizes = resources.data_parallel_sizes(target.max_gpus, target.per_node, global_batch)
    return max(w for w in sizes if w <= n)


def _checked(plan: resources.ResourcePlan, width: int, gpu: str) -> resources.ResourcePlan:
    if plan.gpus != width:
        raise ConfigError(
            f"does not fit in memory on {width} x {gpu} (needs at least {plan.gpus}): raise "
            f"--gpus-per-run to {plan.gpus}"
        )
    return plan


def _fast_width(
    target: ResourceTarget, global_batch: int, flops: float, gpu: str, mfu: float
) -> int:
    """The fewest valid GPUs that train ``flops`` within the target's hours."""
    hours = target.max_hours_per_run
    assert hours is not None
    sizes = resources.data_parallel_sizes(target.max_gpus, target.per_node, global_batch)
    for width in sizes:
        if resources.train_seconds(flops, width, gpu, mfu) / 3600 <= hours:
            return width
    widest = sizes[-1]
    took = resources.train_seconds(flops, widest, gpu, mfu) / 3600
    raise ConfigError(
        f"takes {took:,.0f} h even on {widest} x {gpu} (the most its global_batch_size "
        f"{global_batch} and {target.max_nodes} nodes x {target.per_node} GPUs allow), more "
        f"than --max-hours-per-run {hours:g}: raise --max-hours-per-run or "
        "--max-nodes-per-run"
    )
