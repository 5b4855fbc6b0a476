"""Run widths: a fixed GPU count, the fewest GPUs within a wall clock, and their errors."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from slscale.errors import ConfigError
from slscale.models.families import hf_config, resolve_architecture
from slscale.spec import SIMS_RECIPE, Recipe
from slscale.sweep.accounting import count_params, flops_per_token
from slscale.sweep.resources import GPU_TYPES, memory_per_gpu, plan_resources
from slscale.sweep.targets import ResourceTarget, plan_to_target

SIZES = ("qwen2.5-0.5b", "qwen2.5-1.5b", "qwen2.5-3b", "qwen2.5-7b")
QWEN = {size: resolve_architecture("qwen2", size) for size in SIZES}
CONFIGS = {size: hf_config("qwen2", arch) for size, arch in QWEN.items()}


def _run(size: str, tokens: int, recipe: Recipe = SIMS_RECIPE) -> dict:
    config = CONFIGS[size]
    return {
        "n_params": count_params(config).n_params,
        "arch": QWEN[size],
        "tokens": tokens,
        "flops_per_token": flops_per_token(config, recipe.context_length),
        "recipe": recipe,
        "gpu": "a100-80gb",
        "mfu": 0.4,
    }


def _usable(gpu: str) -> int:
    g = GPU_TYPES[gpu]
    return int((g.memory_bytes - g.reserved_bytes) * 0.9) + g.reserved_bytes


def _meets(run: dict, width: int, hours: float) -> bool:
    """Whether ``width`` GPUs hold the run (ZeRO-3, micro-batch 1: the leanest
    configuration) and train it within ``hours``, computed here from the memory model and
    FLOPs / (GPUs x peak x MFU)."""
    lean = memory_per_gpu(
        n_params=run["n_params"],
        arch=run["arch"],
        context_length=run["recipe"].context_length,
        gpus=width,
        zero_stage=3 if width > 1 else 0,
        micro_batch_size=1,
        gpu=run["gpu"],
    )
    flops = run["flops_per_token"] * run["tokens"]
    seconds = flops / (width * GPU_TYPES[run["gpu"]].peak_flops * run["mfu"])
    return lean.total_bytes <= _usable(run["gpu"]) and seconds / 3600 <= hours


def _valid_widths(per_node: int, max_nodes: int, global_batch: int) -> list[int]:
    """Powers of two that split the batch, within a node or on whole nodes."""
    out = []
    for k in range(12):
        w = 2**k
        whole = w <= per_node or w % per_node == 0
        if whole and w <= per_node * max_nodes and global_batch % w == 0:
            out.append(w)
    return out


@settings(max_examples=60, deadline=None)
@given(
    size=st.sampled_from(SIZES),
    tokens=st.floats(min_value=8.0, max_value=11.7).map(lambda e: int(10**e)),
    hours=st.floats(min_value=0.0, max_value=3.7).map(lambda e: 10**e),
    per_node=st.sampled_from([1, 2, 4, 8]),
    max_nodes=st.integers(min_value=1, max_value=16),
    global_batch=st.sampled_from([64, 96, 256, 384]),
)
def test_width_is_the_smallest_that_meets_the_target(
    size, tokens, hours, per_node, max_nodes, global_batch
):
    recipe = Recipe(global_batch_size=global_batch, context_length=2048)
    run = _run(size, tokens, recipe)
    target = ResourceTarget(
        max_hours_per_run=hours, gpus_per_node=per_node, max_nodes_per_run=max_nodes
    )
    meeting = [w for w in _valid_widths(per_node, max_nodes, global_batch) if _meets(run, w, hours)]
    if not meeting:
        with pytest.raises(ConfigError):
            plan_to_target(target, **run)
        return
    plan = plan_to_target(target, **run)
    assert plan.gpus == meeting[0]
    assert plan.est_seconds / 3600 <= hours
    assert plan.nodes == math.ceil(plan.gpus / per_node)
    assert plan.micro_batch_size * plan.grad_accum_steps * plan.gpus == global_batch
    assert plan.memory_per_gpu_bytes <= plan.usable_bytes_per_gpu


def test_exact_width_rechooses_zero_stage_and_micro_batch() -> None:
    """The 7B needs ZeRO-1 on 4 A100-80GB (the narrow plan) and keeps it on 8; the 0.5B
    drops the per-GPU batch from 256 to 32 sequences on 8 GPUs."""
    seven = _run("qwen2.5-7b", 10**10)
    narrow = plan_resources(**seven)
    assert (narrow.gpus, narrow.zero_stage) == (4, 1)
    eight = plan_to_target(ResourceTarget(gpus_per_run=8), **seven)
    assert (eight.gpus, eight.nodes, eight.zero_stage) == (8, 1, 1)
    assert eight.micro_batch_size * eight.grad_accum_steps == 256 // 8
    half = plan_to_target(ResourceTarget(gpus_per_run=8), **_run("qwen2.5-0.5b", 10**10))
    assert (half.gpus, half.zero_stage, half.micro_batch_size, half.grad_accum_steps) == (
        8,
        0,
        8,
        4,
    )
    assert half.gpu_hours == pytest.approx(plan_resources(**_run("qwen2.5-0.5b", 10**10)).gpu_hours)


def test_a_wider_run_may_drop_its_zero_stage() -> None:
    """The 7B on 4 GPUs needs ZeRO-1 (7 B/param); on 64 GPUs across 8 nodes ZeRO-0 still
    needs 16 B/param = 113 GiB, so it stays at 1: the stage is the lowest that fits."""
    seven = _run("qwen2.5-7b", 10**10)
    wide = plan_to_target(ResourceTarget(gpus_per_run=64), **seven)
    assert (wide.gpus, wide.nodes, wide.zero_stage) == (64, 8, 1)
    three = _run("qwen2.5-3b", 10**10)
    assert plan_to_target(ResourceTarget(gpus_per_run=1), **three).zero_stage == 0
    assert plan_to_target(ResourceTarget(gpus_per_run=2), **three).zero_stage == 0


def test_gpus_per_run_rounds_down_to_a_valid_data_parallel_size() -> None:
    run = _run("qwen2.5-0.5b", 10**9)
    assert plan_to_target(ResourceTarget(gpus_per_run=12), **run).gpus == 8
    assert plan_to_target(ResourceTarget(gpus_per_run=3), **run).gpus == 2
    odd = _run("qwen2.5-0.5b", 10**9, Recipe(global_batch_size=24, context_length=2048))
    assert plan_to_target(ResourceTarget(gpus_per_run=16), **odd).gpus == 8


@pytest.mark.parametrize(
    ("target", "message"),
    [
        (ResourceTarget(gpus_per_run=2), "does not fit in memory on 2 x a100-80gb .*to 4"),
        (ResourceTarget(gpus_per_run=128), "more than 8 nodes x 8 GPUs: raise"),
        (ResourceTarget(gpus_per_run=64, gpus_per_node=16), "cannot be split over"),
        (ResourceTarget(max_hours_per_run=1), "more than --max-hours-per-run 1: raise"),
    ],
)
def test_unmeetable_targets_say_what_to_change(target, message) -> None:
    recipe = Recipe(global_batch_size=32, context_length=2048)
    with pytest.raises(ConfigError, match=message):
        plan_to_target(target, **_run("qwen2.5-7b", 10**10, recipe))


def test_target_fields_are_checked_and_layered() -> None:
    with pytest.raises(ConfigError, match=r"gpus_per_run .* = 0: must be a whole number"):
        ResourceTarget(gpus_per_run=0)
    with pytest.raises(ConfigError, match=r"max_hours_per_run .* = -1"):
        ResourceTarget(max_hours_per_run=-1)
    with pytest.raises(ConfigError, match="both set"):
        ResourceTarget(gpus_per_run=8, max_hours_per_run=10)
    with pytest.raises(ConfigError, match=r"g.yaml: unknown key 'resources.gpus'"):
        ResourceTarget.from_dict({"gpus": 8}, "g.yaml")
    grid = ResourceTarget.from_dict({"max_hours_per_run": 168, "gpus_per_node": 4}, "g")
    assert grid.max_hours_per_run == 168.0 and grid.max_gpus == 32
    flags = ResourceTarget(gpus_per_run=8)
    assert flags.over(grid) == ResourceTarget(gpus_per_run=8, gpus_per_node=4)
    assert ResourceTarget(max_nodes_per_run=2).over(grid) == ResourceTarget(
        max_hours_per_run=168.0, gpus_per_node=4, max_nodes_per_run=2
    )
    assert ResourceTarget().over(grid) == grid
