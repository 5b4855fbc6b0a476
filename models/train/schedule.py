"""Learning-rate schedule: linear warm-up, then cosine (or linear, or constant) to a floor.

SIMS (arXiv 2504.02398, training config): peak 5e-4, cosine to 5e-5, 1% warm-up; Cuervo &
Marxer (EMNLP 2024): warm-up max(100, 1% of steps). The schedule's length is the run's number
of optimizer steps, so it ends exactly where the token budget does
(:class:`~slscale.models.train.budget.TokenBudget`).
"""

from __future__ import annotations

import dataclasses
import math

from slscale.spec import Recipe


def warmup_steps(recipe: Recipe, total_steps: int) -> int:
    """``max(min_warmup_steps, floor(warmup_fraction × total_steps))``, at most ``total_steps``."""
    return min(total_steps, max(recipe.min_warmup_steps, int(recipe.warmup_fraction * total_steps)))


@dataclasses.dataclass(frozen=True, kw_only=True)
class LRSchedule:
    """Learning-rate multiplier of step ``s`` (0-based), relative to the peak ``recipe.lr``.

    Steps ``s < W`` warm up linearly, ``(s + 1) / W``; from ``W`` to the last step the rate
    decays from the peak to ``lr_min`` (cosine: ``min + (peak - min)(1 + cos(π p)) / 2`` with
    ``p = (s - W) / (S - 1 - W)``), reaching ``lr_min`` exactly at the last step ``S - 1``
    (a run whose only post-warm-up step is its last stays at the peak).
    A picklable callable, so DeepSpeed checkpoints it with a ``LambdaLR``.
    """

    total_steps: int
    """S: optimizer steps of the run."""
    warmup_steps: int
    """W: linear warm-up steps."""
    peak_lr: float
    """Learning rate at the end of warm-up."""
    min_lr: float
    """Learning rate at the last step."""
    kind: str = "cosine"
    """cosine | linear | constant (decay shape after warm-up)."""

    @classmethod
    def from_recipe(cls, recipe: Recipe, total_steps: int) -> LRSchedule:
        return cls(
            total_steps=total_steps,
            warmup_steps=warmup_steps(recipe, total_steps),
            peak_lr=recipe.lr,
            min_lr=recipe.lr_min,
            kind=recipe.schedule,
        )

    def lr(self, step: int) -> float:
        """Learning rate used by optimizer step ``step``."""
        if step < self.warmup_steps:
            return self.peak_lr * (step + 1) / self.warmup_steps
        if self.kind == "constant":
            return self.peak_lr
        decay_steps = self.total_steps - 1 - self.warmup_steps
        progress = min(1.0, (step - self.warmup_steps) / decay_steps) if decay_steps > 0 else 0.0
        if self.kind == "linear":
            shape = 1.0 - progress
        else:
            shape = 0.5 * (1.0 + math.cos(math.pi * progress))
        return self.min_lr + (self.peak_lr - self.min_lr) * shape

    def __call__(self, step: int) -> float:
        """Multiplier of the peak rate (the ``LambdaLR`` protocol)."""
        return self.lr(step) / self.peak_lr
