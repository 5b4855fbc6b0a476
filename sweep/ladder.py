"""WSD ladders: one trunk per model size, one decay branch per token budget.

A warmup–stable–decay run holds the peak rate until its last ``f·D`` tokens and only then
decays; Hägele et al. (2024, arXiv 2405.18392, §3-4) find that such runs match cosine runs of
the same length, and that the runs of several lengths can share everything before their
decays. So a size's budgets D₁ < … < Dₖ become one *trunk*, trained at the peak rate to the
last branch point (1 − f)·Dₖ, and one *branch* per budget, started from the trunk's
checkpoint at (1 − f)·Dᵢ and decayed to Dᵢ. The size's points then cost
(1 − f)·Dₖ + f·ΣDᵢ tokens instead of ΣDᵢ.

Every run of a ladder shares one recipe: ``schedule: wsd``, the ladder's decay fraction and
shape, and a warm-up pinned in steps (``warmup_fraction: 0``, ``min_warmup_steps`` = the
warm-up the recipe gives the longest budget), so that the trunk and every branch run at the
same rate until a branch decays. Branch points are whole optimizer steps
(:meth:`~slscale.spec.Recipe.decay_start`). A branch cell carries its trunk's cell under
:data:`PARENT_CELL`; the grid expansion turns it into the trunk's run id
(:func:`slscale.sweep.grid.expand`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from slscale.errors import ConfigError
from slscale.spec import WSD, Recipe

PARENT_CELL = "parent_cell"
"""Key of a branch cell holding its trunk's cell, resolved to ``branch.parent`` on expansion."""


def ladder_recipe(recipe: Recipe, kw: Mapping[str, Any], where: str) -> Recipe:
    """``recipe`` as a wsd schedule with the generator's decay fraction and shape (default:
    the recipe's own)."""
    fraction = kw.get("decay_fraction", recipe.decay_fraction)
    shape = kw.get("decay_shape", recipe.decay_shape)
    try:
        fraction = float(fraction)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: decay_fraction = {fraction!r}: must be a number") from None
    try:
        return dataclasses.replace(
            recipe, schedule=WSD, decay_fraction=fraction, decay_shape=str(shape)
        )
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def cells(size: str, recipe: Recipe, steps: Sequence[int], where: str) -> list[dict[str, Any]]:
    """The trunk cell and one branch cell per budget of ``steps`` optimizer steps (ascending)
    of one size."""
    warmup = recipe.warmup_steps(max(steps))  # the longest budget's, shared by every run
    pinned = dataclasses.replace(recipe, warmup_fraction=0.0, min_warmup_steps=warmup)
    tokens_per_step = recipe.tokens_per_step
    starts = [_branch_point(pinned, s, where, tokens_per_step) for s in steps]
    fields = {
        "schedule": WSD,
        "decay_fraction": recipe.decay_fraction,
        "decay_shape": recipe.decay_shape,
        "warmup_fraction": 0.0,
        "min_warmup_steps": warmup,
    }
    points = sorted({k * tokens_per_step for k in starts})
    trunk = {"size": size, "tokens": points[-1], "recipe": fields, "branch_tokens": points}
    branches = [
        {
            "size": size,
            "tokens": s * tokens_per_step,
            "recipe": fields,
            "branch": {"parent": None, "from_tokens": k * tokens_per_step},
            PARENT_CELL: trunk,
        }
        for s, k in zip(steps, starts, strict=True)
    ]
    return [trunk, *branches]


def _branch_point(recipe: Recipe, steps: int, where: str, tokens_per_step: int) -> int:
    """The step a budget of ``steps`` branches at: its decay's first step, which must lie after
    the ladder's warm-up and after step 0."""
    start = recipe.decay_start(steps)
    unclamped = dataclasses.replace(recipe, min_warmup_steps=0).decay_start(steps)
    budget = f"budget {steps * tokens_per_step} tokens ({steps} steps)"
    if start != unclamped:
        raise ConfigError(
            f"{where}: {budget} would decay from step {unclamped}, inside the ladder's warm-up "
            f"of {recipe.min_warmup_steps} steps (the longest budget's, shared by every run): "
            "lower recipe.warmup_fraction or min_warmup_steps, or drop the budget"
        )
    if start < 1:
        raise ConfigError(f"{where}: {budget} is too short to branch: a ladder needs 2 steps")
    return start
