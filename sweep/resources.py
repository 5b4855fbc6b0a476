"""How many GPUs a run needs, with which ZeRO stage and micro-batch, and for how long.

A memory model per GPU (model states sharded by ZeRO stage, activations per micro-batch,
ZeRO-3 gather buffers, a fixed reserve and a safety margin) decides what fits; the plan is the
smallest power-of-two GPU count, then the lowest ZeRO stage, then the largest power-of-two
micro-batch that fit. Time is exact training FLOPs / (GPUs × peak × MFU).
"""

from __future__ import annotations

import dataclasses
import math

from slscale import compute
from slscale.errors import ConfigError
from slscale.spec import Architecture, Recipe

GIB = 2**30


@dataclasses.dataclass(frozen=True, kw_only=True)
class GPUType:
    """An accelerator (or a CPU node standing in for one)."""

    name: str
    """Key in :data:`GPU_TYPES`."""
    memory_bytes: int
    """Device memory."""
    peak_flops: float
    """Dense peak FLOP/s in the training precision (bf16 on GPUs, fp32 on CPU)."""
    compute_bytes: int
    """Bytes per parameter/activation value in the training precision (bf16: 2, fp32: 4)."""
    reserved_bytes: int
    """Memory never available to the run (CUDA context, NCCL buffers, the runtime)."""
    source: str
    """Where the numbers come from."""


_CPU = "2-core development machine: fp32 matmul peak 183 GFLOP/s measured, 24 GiB"
_DATASHEET = {p.device: (p.bf16_flops, p.source) for p in compute.GPU_PEAKS}

# name, memory GiB, (dense peak FLOP/s, source), bytes per value, reserved GiB
_GPU_ROWS = (
    ("a100-40gb", 40, _DATASHEET["A100"], 2, 1),
    ("a100-80gb", 80, _DATASHEET["A100"], 2, 1),
    ("h100-80gb", 80, _DATASHEET["H100"], 2, 1),
    ("cpu", 24, (183e9, _CPU), 4, 2),
)
GPU_TYPES: dict[str, GPUType] = {
    name: GPUType(
        name=name,
        memory_bytes=gib * GIB,
        peak_flops=peak,
        compute_bytes=nbytes,
        reserved_bytes=reserved * GIB,
        source=source,
    )
    for name, gib, (peak, source), nbytes, reserved in _GPU_ROWS
}
"""Known accelerator types, keyed by lower-case name."""

RECOMPUTE_MODES = ("none", "selective", "full")
"""Activation memory regimes: everything stored (eager attention); attention scores not stored
(FlashAttention / selective recompute); only each layer's input stored (full recompute)."""


def get_gpu_type(name: str | GPUType) -> GPUType:
    """The :class:`GPUType` called ``name`` (case-insensitive); ConfigError if unknown."""
    if isinstance(name, GPUType):
        return name
    gpu = GPU_TYPES.get(name.strip().lower())
    if gpu is None:
        raise ConfigError(f"unknown GPU type {name!r}; choose one of {', '.join(GPU_TYPES)}")
    return gpu


@dataclasses.dataclass(frozen=True, kw_only=True)
class MemoryBreakdown:
    """Estimated peak memory of one GPU, in bytes."""

    params_bytes: int
    """Training-precision weights (sharded under ZeRO-3)."""
    grads_bytes: int
    """Training-precision gradients (sharded under ZeRO-2/3)."""
    optimizer_bytes: int
    """fp32 master weights (mixed precision only) + Adam m and v (sharded under ZeRO-1/2/3)."""
    activations_bytes: int
    """Activations kept for backward, logits and loss buffers of one micro-batch."""
    working_bytes: int
    """ZeRO-3 gathered parameters (the live and the prefetched module) plus the reserve."""

    @property
    def total_bytes(self) -> int:
        return (
            self.params_bytes
            + self.grads_bytes
            + self.optimizer_bytes
            + self.activations_bytes
            + self.working_bytes
        )


def model_state_bytes(
    n_params: int, compute_bytes: int, zero_stage: int, gpus: int
) -> tuple[int, int, int]:
    """(params, grads, optimizer) bytes per GPU under ZeRO ``zero_stage`` on ``gpus`` GPUs.

    Mixed-precision Adam keeps 2 B weights + 2 B grads + 12 B optimizer state (fp32 master,
    m, v) per parameter; stage 1 shards the optimizer state, 2 also the grads, 3 also the
    weights (Rajbhandari et al. 2020, ZeRO, Fig. 1). In fp32 there is no master copy (8 B).
    """
    if zero_stage not in (0, 1, 2, 3):
        raise ConfigError(f"zero_stage = {zero_stage!r}: must be 0, 1, 2 or 3")
    optimizer = 8 + (4 if compute_bytes < 4 else 0)
    shard = [1, 1, 1]
    for i, stage in enumerate((3, 2, 1)):  # params from stage 3, grads 2, optimizer 1
        if zero_stage >= stage:
            shard[i] = gpus
    return (
        math.ceil(n_params * compute_bytes / shard[0]),
        math.ceil(n_params * compute_bytes / shard[1]),
        math.ceil(n_params * optimizer / shard[2]),
    )


def activation_bytes(
    arch: Architecture,
    micro_batch_size: int,
    context_length: int,
    compute_bytes: int = 2,
    recompute: str = "selective",
    vocab_size: int | None = None,
) -> int:
    """Activation memory of one micro-batch, following Korthikanti et al. 2022 (§4.1).

    Their GPT block stores 34·s·b·h + 5·a·s²·b bytes in 16 bit. Redone for our pre-norm block
    (gated MLP of width f, no dropout, q/kv widths q_w/kv_w), per token and layer, in values:
    norm inputs 2h, attention and MLP inputs 2h, Q + attention output 2·q_w, K and V 2·kv_w,
    gate, up, SiLU(gate) and their product 4f; plus the a·s softmax scores when attention is
    not recomputed ("none"); "full" keeps only each layer's input (h) and recomputes one layer
    at a time. Logits add 10 B per vocabulary entry (bf16 logits, the loss's fp32 upcast and
    its log-softmax). ≈37·s·b·h bytes at Llama-7B shapes against Korthikanti's 34·s·b·h.
    """
    if recompute not in RECOMPUTE_MODES:
        raise ConfigError(f"recompute = {recompute!r}: choose one of {', '.join(RECOMPUTE_MODES)}")
    h, hd = arch.hidden_size, arch.resolved_head_dim
    q_w, kv_w = arch.num_heads * hd, arch.num_kv_heads * hd
    layer = 4 * h + 2 * q_w + 2 * kv_w + 4 * arch.intermediate_size
    if recompute == "none":
        layer += arch.num_heads * context_length
    stored = arch.num_layers * layer if recompute != "full" else arch.num_layers * h + layer
    vocab = arch.vocab_size if vocab_size is None else vocab_size
    per_token = stored * compute_bytes + vocab * (compute_bytes + 8)
    return per_token * micro_batch_size * context_length


def memory_per_gpu(
    *,
    n_params: int,
    arch: Architecture,
    context_length: int,
    gpus: int,
    zero_stage: int,
    micro_batch_size: int,
    gpu: str | GPUType = "a100-80gb",
    recompute: str = "selective",
    vocab_size: int | None = None,
) -> MemoryBreakdown:
    """The :class:`MemoryBreakdown` of one GPU for this configuration."""
    g = get_gpu_type(gpu)
    params, grads, optimizer = model_state_bytes(n_params, g.compute_bytes, zero_stage, gpus)
    working = g.reserved_bytes
    if zero_stage == 3:  # the module being computed and the one prefetched, unsharded
        vocab = arch.vocab_size if vocab_size is None else vocab_size
        largest = max(_layer_params(arch), vocab * arch.hidden_size)
        working += 2 * largest * g.compute_bytes
    acts = activation_bytes(
        arch, micro_batch_size, context_length, g.compute_bytes, recompute, vocab_size
    )
    return MemoryBreakdown(
        params_bytes=params,
        grads_bytes=grads,
        optimizer_bytes=optimizer,
        activations_bytes=acts,
        working_bytes=working,
    )


def _layer_params(arch: Architecture) -> int:
    h, hd = arch.hidden_size, arch.resolved_head_dim
    attention = 2 * h * arch.num_heads * hd + 2 * h * arch.num_kv_heads * hd
    return attention + 3 * h * arch.intermediate_size


@dataclasses.dataclass(frozen=True, kw_only=True)
class ResourcePlan:
    """Where and how one run trains, and what it costs."""

    gpu_type: str
    """Name of the GPU type."""
    gpus: int
    """Data-parallel workers (a power of two)."""
    nodes: int
    """Nodes of at most ``max_gpus_per_node`` GPUs."""
    zero_stage: int
    """DeepSpeed ZeRO stage 0–3."""
    micro_batch_size: int
    """Sequences per GPU per forward/backward."""
    grad_accum_steps: int
    """Micro-batches per optimizer step: global_batch_size / (micro_batch_size × gpus)."""
    recompute: str
    """Activation recompute regime the memory estimate assumes (see RECOMPUTE_MODES)."""
    memory: MemoryBreakdown
    """Estimated peak memory per GPU."""
    usable_bytes_per_gpu: int
    """Memory the plan may use per GPU (capacity less the safety margin)."""
    flops: float
    """Exact training FLOPs of the run."""
    mfu: float
    """Assumed model-FLOPs utilisation."""
    est_seconds: float
    """flops / (gpus × peak FLOP/s × mfu)."""
    gpu_hours: float
    """gpus × est_seconds / 3600."""

    @property
    def memory_per_gpu_bytes(self) -> int:
        return self.memory.total_bytes


def plan_resources(
    *,
    n_params: int,
    arch: Architecture,
    tokens: int,
    flops_per_token: float,
    recipe: Recipe,
    gpu: str | GPUType = "a100-80gb",
    mfu: float = 0.4,
    max_gpus_per_node: int = 8,
    max_nodes: int = 8,
    min_gpus: int = 1,
    recompute: str = "selective",
    vocab_size: int | None = None,
    safety_margin: float = 0.1,
) -> ResourcePlan:
    """The cheapest configuration that fits: fewest GPUs, then lowest ZeRO stage, then the
    largest power-of-two micro-batch dividing the per-GPU batch.

    ``n_params`` is N with embeddings (all weights are trained and stored); ``flops_per_token``
    comes from :func:`slscale.sweep.accounting.flops_per_token`; ``vocab_size`` is the
    vocabulary after extension when it differs from ``arch.vocab_size``. A fraction
    ``safety_margin`` of each GPU's memory is left for fragmentation and communication buckets.
    """
    _check_plan_args(tokens, mfu, max_gpus_per_node, max_nodes, min_gpus, safety_margin)
    run = _Run(
        n_params=n_params,
        arch=arch,
        recipe=recipe,
        gpu=get_gpu_type(gpu),
        recompute=recompute,
        vocab_size=vocab_size,
    )
    g = run.gpu
    usable = int((g.memory_bytes - g.reserved_bytes) * (1 - safety_margin)) + g.reserved_bytes
    max_gpus = max_gpus_per_node * max_nodes
    sizes = data_parallel_sizes(max_gpus, max_gpus_per_node, recipe.global_batch_size)
    for gpus in (n for n in sizes if n >= min_gpus):
        for stage in (0, 1, 2, 3) if gpus > 1 else (0,):
            micro = run.largest_micro_batch(gpus, stage, usable)
            if micro is None:
                continue
            seconds = train_seconds(flops_per_token * tokens, gpus, g, mfu)
            return ResourcePlan(
                gpu_type=g.name,
                gpus=gpus,
                nodes=math.ceil(gpus / max_gpus_per_node),
                zero_stage=stage,
                micro_batch_size=micro,
                grad_accum_steps=recipe.global_batch_size // (micro * gpus),
                recompute=recompute,
                memory=run.memory(gpus, stage, micro),
                usable_bytes_per_gpu=usable,
                flops=flops_per_token * tokens,
                mfu=mfu,
                est_seconds=seconds,
                gpu_hours=gpus * seconds / 3600,
            )
    raise run.does_not_fit(max_gpus, usable)


@dataclasses.dataclass(frozen=True, kw_only=True)
class _Run:
    """The fixed inputs of a plan search (internal)."""

    n_params: int
    arch: Architecture
    recipe: Recipe
    gpu: GPUType
    recompute: str
    vocab_size: int | None

    def memory(self, gpus: int, stage: int, micro_batch_size: int) -> MemoryBreakdown:
        return memory_per_gpu(
            n_params=self.n_params,
            arch=self.arch,
            context_length=self.recipe.context_length,
            gpus=gpus,
            zero_stage=stage,
            micro_batch_size=micro_batch_size,
            gpu=self.gpu,
            recompute=self.recompute,
            vocab_size=self.vocab_size,
        )

    def largest_micro_batch(self, gpus: int, stage: int, usable: int) -> int | None:
        """The largest power of two dividing the per-GPU batch that fits, or None."""
        per_gpu = self.recipe.global_batch_size // gpus
        micro = per_gpu & -per_gpu  # the largest power of two dividing it
        while micro >= 1 and self.memory(gpus, stage, micro).total_bytes > usable:
            micro //= 2
        return micro or None

    def does_not_fit(self, max_gpus: int, usable: int) -> ConfigError:
        need = self.memory(max_gpus, 3, 1).total_bytes
        r = self.recipe
        return ConfigError(
            f"a run of {self.n_params / 1e9:.3g}B parameters (context_length "
            f"{r.context_length}, global_batch_size {r.global_batch_size}) does not fit on up "
            f"to {max_gpus} x {self.gpu.name}: ZeRO-3 with micro-batch 1 needs "
            f"{need / GIB:.1f} GiB per GPU of {usable / GIB:.1f} usable; raise max_nodes, use a "
            f"GPU with more memory, use recompute='full', or shorten context_length"
        )


def _check_plan_args(
    tokens: int,
    mfu: float,
    max_gpus_per_node: int,
    max_nodes: int,
    min_gpus: int,
    safety_margin: float,
) -> None:
    checks = (
        ("tokens", tokens, tokens > 0, "must be positive"),
        ("mfu", mfu, 0 < mfu <= 1, "must be in (0, 1]"),
        ("max_gpus_per_node", max_gpus_per_node, max_gpus_per_node >= 1, "must be >= 1"),
        ("max_nodes", max_nodes, max_nodes >= 1, "must be >= 1"),
        ("min_gpus", min_gpus, min_gpus >= 1, "must be >= 1"),
        ("safety_margin", safety_margin, 0 <= safety_margin < 1, "must be in [0, 1)"),
    )
    for name, value, ok, hint in checks:
        if not ok:
            raise ConfigError(f"{name} = {value!r}: {hint}")


def train_seconds(flops: float, gpus: int, gpu: str | GPUType, mfu: float) -> float:
    """Wall-clock seconds of ``flops`` on ``gpus`` GPUs: flops / (gpus x peak x mfu)."""
    return flops / (gpus * get_gpu_type(gpu).peak_flops * mfu)


def data_parallel_sizes(max_gpus: int, per_node: int, global_batch: int) -> list[int]:
    """Valid widths of a run, ascending: powers of two up to ``max_gpus`` that split the
    global batch evenly and fill whole nodes once they span several."""
    counts = [2**k for k in range(max_gpus.bit_length())]
    fits_nodes = [n for n in counts if n <= per_node or n % per_node == 0]
    return [n for n in fits_nodes if n <= max_gpus and global_batch % n == 0]
