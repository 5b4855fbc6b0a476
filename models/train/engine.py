"""The DeepSpeed engine of a run: ZeRO stage, precision, AdamW, its learning-rate schedule.

Weight decay applies to matrices only (``ndim >= 2``); norms and biases are not decayed
(Loshchilov & Hutter 2019 as used by GPT-2/nanoGPT). The trainer owns gradient accumulation:
it marks the accumulation boundary itself and scales each micro-batch's summed loss by the
step's token count (``scale_wrt_gas=False``), so DeepSpeed's ``gradient_accumulation_steps``
only informs its own bookkeeping.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import torch

from slscale.models.train.budget import TokenBudget
from slscale.models.train.config import TrainConfig
from slscale.models.train.distributed import DistInfo
from slscale.models.train.safe_load import load_safely
from slscale.models.train.schedule import LRSchedule


def resolve_precision(precision: str, device: torch.device) -> str:
    """'auto' → bf16 on GPU, fp32 on CPU."""
    if precision == "auto":
        return "bf16" if device.type == "cuda" else "fp32"
    return precision


def deepspeed_config(config: TrainConfig, budget: TokenBudget, precision: str) -> dict[str, Any]:
    micro = budget.resolved_micro_batch_size
    return {
        "train_micro_batch_size_per_gpu": micro,
        "gradient_accumulation_steps": math.ceil(budget.local_batch_size / micro),
        "gradient_clipping": config.recipe.grad_clip,
        "zero_optimization": {"stage": config.zero_stage},
        "bf16": {"enabled": precision == "bf16"},
        "zero_allow_untested_optimizer": True,
        "steps_per_print": 2**31 - 1,
        "wall_clock_breakdown": False,
    }


def adamw(model: torch.nn.Module, config: TrainConfig) -> torch.optim.AdamW:
    recipe = config.recipe
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim < 2]
    groups = [
        {"params": decay, "weight_decay": recipe.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(
        [g for g in groups if g["params"]],
        lr=recipe.lr,
        betas=(recipe.adam_beta1, recipe.adam_beta2),
        eps=recipe.adam_eps,
    )


def build_engine(
    model: torch.nn.Module, config: TrainConfig, budget: TokenBudget, info: DistInfo
) -> tuple[Any, LRSchedule]:
    """(DeepSpeed engine, its learning-rate schedule)."""
    import deepspeed

    logging.getLogger("DeepSpeed").setLevel(logging.WARNING)
    precision = resolve_precision(config.precision, info.device)
    schedule = LRSchedule.from_recipe(
        config.recipe, budget.total_steps, stable_to_end=bool(config.branch_tokens)
    )
    model = model.to(info.device)
    engine, _, _, _ = deepspeed.initialize(
        model=model,
        optimizer=adamw(model, config),
        lr_scheduler=lambda opt: torch.optim.lr_scheduler.LambdaLR(opt, schedule),
        config=deepspeed_config(config, budget, precision),
    )
    load_safely(engine)
    return engine, schedule
