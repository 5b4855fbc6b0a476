"""Resource plans: the memory model by hand, and which configuration the planner picks."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from slscale.compute import gpu_peak
from slscale.errors import ConfigError
from slscale.models.families import hf_config, resolve_architecture
from slscale.spec import SIMS_RECIPE, Architecture, Recipe
from slscale.sweep.accounting import count_params, flops_per_token
from slscale.sweep.resources import (
    GIB,
    GPU_TYPES,
    activation_bytes,
    get_gpu_type,
    memory_per_gpu,
    model_state_bytes,
    plan_resources,
)

QWEN_7B = resolve_architecture("qwen2", "qwen2.5-7b")
N_7B = 7_615_616_512
MINI = resolve_architecture("llama", "mini-100k")  # 2 layers, width 64, 4 heads, 1 KV, f 208


def _usable(gpu: str, margin: float = 0.1) -> int:
    g = GPU_TYPES[gpu]
    return int((g.memory_bytes - g.reserved_bytes) * (1 - margin)) + g.reserved_bytes


def test_gpu_types_have_spec_sheet_numbers() -> None:
    assert GPU_TYPES["a100-80gb"].peak_flops == 312e12
    assert GPU_TYPES["a100-40gb"].memory_bytes == 40 * GIB
    assert GPU_TYPES["h100-80gb"].peak_flops == 989.4e12
    assert get_gpu_type("H100-80GB") is GPU_TYPES["h100-80gb"]
    with pytest.raises(ConfigError, match="unknown GPU type 'v100'; choose one of a100-40gb"):
        get_gpu_type("v100")


@pytest.mark.parametrize(
    ("gpu", "device_name"),
    [("a100-40gb", "NVIDIA A100-SXM4-40GB"), ("a100-80gb", "NVIDIA A100-SXM4-80GB"),
     ("h100-80gb", "NVIDIA H100 80GB HBM3")],
)  # fmt: skip
def test_gpu_types_plan_with_the_peak_the_trainer_measures_mfu_against(
    gpu: str, device_name: str
) -> None:
    peak = gpu_peak(device_name)  # what the trainer looks up for torch's device name
    assert peak is not None
    assert (GPU_TYPES[gpu].peak_flops, GPU_TYPES[gpu].source) == (peak.bf16_flops, peak.source)


def test_model_states_per_zero_stage() -> None:
    n = 1_000_000_000
    assert model_state_bytes(n, 2, 0, 8) == (2 * n, 2 * n, 12 * n)
    assert model_state_bytes(n, 2, 1, 8) == (2 * n, 2 * n, 12 * n // 8)
    assert model_state_bytes(n, 2, 2, 8) == (2 * n, 2 * n // 8, 12 * n // 8)
    assert model_state_bytes(n, 2, 3, 8) == (2 * n // 8, 2 * n // 8, 12 * n // 8)
    assert model_state_bytes(n, 4, 0, 1) == (4 * n, 4 * n, 8 * n)  # fp32: no master copy
    with pytest.raises(ConfigError, match="zero_stage = 4"):
        model_state_bytes(n, 2, 4, 8)


def test_activation_bytes_by_hand() -> None:
    # Per token and layer: 4h + 2·q_w + 2·kv_w + 4f = 256 + 128 + 32 + 832 = 1248 values.
    # Logits: 10 B per vocabulary entry (bf16 + fp32 copy + fp32 log-softmax).
    tokens = 2 * 128
    logits = 512 * 10
    assert activation_bytes(MINI, 2, 128) == tokens * (2 * 1248 * 2 + logits)
    scores = 4 * 128  # a·s softmax values per token and layer when attention is stored
    assert activation_bytes(MINI, 2, 128, recompute="none") == tokens * (
        2 * (1248 + scores) * 2 + logits
    )
    full = 2 * 64 + 1248  # each layer's input, plus one layer recomputed
    assert activation_bytes(MINI, 2, 128, recompute="full") == tokens * (full * 2 + logits)
    assert activation_bytes(MINI, 2, 128, compute_bytes=4, vocab_size=1000) == tokens * (
        2 * 1248 * 4 + 1000 * 12
    )
    with pytest.raises(ConfigError, match="recompute = 'some'"):
        activation_bytes(MINI, 1, 8, recompute="some")


def test_7b_does_not_fit_one_80gb_gpu_without_zero_but_fits_eight_with_zero3() -> None:
    one = memory_per_gpu(
        n_params=N_7B,
        arch=QWEN_7B,
        context_length=2048,
        gpus=1,
        zero_stage=0,
        micro_batch_size=1,
        gpu="h100-80gb",
    )
    assert one.params_bytes + one.grads_bytes + one.optimizer_bytes == 16 * N_7B  # 113 GiB
    assert one.total_bytes > GPU_TYPES["h100-80gb"].memory_bytes
    eight = memory_per_gpu(
        n_params=N_7B,
        arch=QWEN_7B,
        context_length=2048,
        gpus=8,
        zero_stage=3,
        micro_batch_size=1,
        gpu="h100-80gb",
    )
    assert eight.params_bytes + eight.grads_bytes + eight.optimizer_bytes == 2 * N_7B
    # Gather buffers: the live and the prefetched module, the embedding being the largest.
    assert eight.working_bytes == GIB + 2 * 152064 * 3584 * 2
    assert eight.total_bytes < _usable("h100-80gb")


def test_7b_plan_on_one_h100_node() -> None:
    """2 GPUs fail (ZeRO-3: 8 B/param = 56.7 GiB + 12.6 GiB activations + 3 GiB buffers >
    72.1 GiB usable); 4 GPUs fit with ZeRO-1 (2 + 2 + 12/4 = 7 B/param = 49.7 GiB)."""
    recipe = SIMS_RECIPE  # context 2048, global batch 256
    plan = plan_resources(
        n_params=N_7B,
        arch=QWEN_7B,
        tokens=10**9,
        flops_per_token=1.0,
        recipe=recipe,
        gpu="h100-80gb",
        max_nodes=1,
    )
    assert (plan.gpus, plan.nodes, plan.zero_stage, plan.micro_batch_size) == (4, 1, 1, 1)
    assert plan.grad_accum_steps == 256 // 4
    acts = activation_bytes(QWEN_7B, 1, 2048)
    assert plan.memory_per_gpu_bytes == 4 * N_7B + 3 * N_7B + acts + GIB
    assert plan.memory_per_gpu_bytes <= plan.usable_bytes_per_gpu == _usable("h100-80gb")


def test_tiny_model_gets_one_gpu_without_zero_and_the_whole_batch() -> None:
    config = hf_config("llama", MINI)
    recipe = Recipe(global_batch_size=32, context_length=256)
    per_token = flops_per_token(config, 256)
    plan = plan_resources(
        n_params=count_params(config).n_params,
        arch=MINI,
        tokens=10**7,
        flops_per_token=per_token,
        recipe=recipe,
        gpu="a100-80gb",
        mfu=0.5,
    )
    assert (plan.gpus, plan.nodes, plan.zero_stage) == (1, 1, 0)
    assert (plan.micro_batch_size, plan.grad_accum_steps) == (32, 1)
    assert plan.flops == per_token * 10**7
    assert plan.est_seconds == pytest.approx(per_token * 10**7 / (312e12 * 0.5), rel=1e-12)
    assert plan.gpu_hours == pytest.approx(plan.est_seconds / 3600, rel=1e-12)


def test_micro_batch_is_a_power_of_two_dividing_the_per_gpu_batch() -> None:
    recipe = Recipe(global_batch_size=24, context_length=64)
    plan = plan_resources(
        n_params=10**5, arch=MINI, tokens=1000, flops_per_token=1.0, recipe=recipe, gpu="cpu"
    )
    assert (plan.micro_batch_size, plan.grad_accum_steps) == (8, 3)
    forced = plan_resources(
        n_params=10**5,
        arch=MINI,
        tokens=1000,
        flops_per_token=1.0,
        recipe=recipe,
        gpu="cpu",
        min_gpus=2,
    )
    assert (forced.gpus, forced.zero_stage, forced.micro_batch_size) == (2, 0, 4)
    assert forced.est_seconds == pytest.approx(plan.est_seconds / 2)


def test_multi_node_plans_fill_whole_nodes() -> None:
    """31B parameters on 40 GB GPUs with full recompute: 8 GPUs cannot hold the 16 B/param
    states even with ZeRO-3 (57.7 GiB each); 16 GPUs (two nodes) can (28.9 GiB + buffers)."""
    arch = resolve_architecture("llama", "30B")
    plan = plan_resources(
        n_params=31 * 10**9,
        arch=arch,
        tokens=10**9,
        flops_per_token=1.0,
        recipe=SIMS_RECIPE,
        gpu="a100-40gb",
        max_nodes=4,
        recompute="full",
    )
    assert (plan.gpus, plan.nodes, plan.zero_stage, plan.recompute) == (16, 2, 3, "full")
    with pytest.raises(ConfigError, match="does not fit on up to 32 x a100-40gb"):
        plan_resources(
            n_params=31 * 10**9,
            arch=arch,
            tokens=10**9,
            flops_per_token=1.0,
            recipe=SIMS_RECIPE,
            gpu="a100-40gb",
            max_nodes=4,
        )


def test_too_big_a_model_names_the_run_and_the_fix() -> None:
    arch = resolve_architecture("llama", "70B")
    with pytest.raises(
        ConfigError,
        match=r"a run of 70B parameters \(context_length 2048, "
        r"global_batch_size 256\) does not fit on up to 8 x a100-40gb.*max_nodes",
    ):
        plan_resources(
            n_params=70 * 10**9,
            arch=arch,
            tokens=10**9,
            flops_per_token=1.0,
            recipe=SIMS_RECIPE,
            gpu="a100-40gb",
            max_nodes=1,
        )


def test_batch_that_cannot_be_split_is_reported() -> None:
    recipe = dataclasses.replace(SIMS_RECIPE, global_batch_size=3)
    with pytest.raises(ConfigError, match="does not fit on up to 8 x a100-40gb"):
        plan_resources(
            n_params=N_7B,
            arch=QWEN_7B,
            tokens=10**9,
            flops_per_token=1.0,
            recipe=recipe,
            gpu="a100-40gb",
            max_nodes=1,
        )


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("mfu", 0.0),
        ("mfu", 1.5),
        ("max_nodes", 0),
        ("min_gpus", 0),
        ("safety_margin", 1.0),
        ("max_gpus_per_node", 0),
    ],
)
def test_bad_plan_arguments_raise(field: str, value: float) -> None:
    kwargs: dict[str, Any] = {field: value}
    with pytest.raises(ConfigError, match=f"{field} = {value!r}"):
        plan_resources(
            n_params=10**5,
            arch=MINI,
            tokens=1000,
            flops_per_token=1.0,
            recipe=SIMS_RECIPE,
            gpu="cpu",
            **kwargs,
        )
    with pytest.raises(ConfigError, match="tokens = 0"):
        plan_resources(
            n_params=10**5, arch=MINI, tokens=0, flops_per_token=1.0, recipe=SIMS_RECIPE, gpu="cpu"
        )


def test_architecture_fixture_is_what_the_hand_counts_assume() -> None:
    assert (
        Architecture(
            num_layers=2,
            hidden_size=64,
            num_heads=4,
            num_kv_heads=1,
            intermediate_size=208,
            vocab_size=512,
            tie_embeddings=True,
        )
        == MINI
    )
