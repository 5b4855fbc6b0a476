"""Learning-rate schedule: linear warm-up, then cosine, linear, constant or warmup–stable–decay.

SIMS (arXiv 2504.02398, training config): peak 5e-4, cosine to 5e-5, 1% warm-up; Cuervo &
Marxer (EMNLP 2024): warm-up max(100, 1% of steps). The schedule's length is the run's number
of optimizer steps, so it ends exactly where the token budget does
(:class:`~slscale.models.train.budget.TokenBudget`).

Warmup–stable–decay (wsd; Hägele et al. 2024, arXiv 2405.18392, §3) holds the peak rate until
the last ``decay_fraction`` of the steps and then decays, linearly or as 1 − sqrt, to the
floor. Only the decay depends on the run's length, so one run at the peak rate (a ladder's
trunk, ``stable_to_end``) can be branched at several points into runs of several lengths,
each with exactly the rate a wsd run of its own length has at every step.
"""

from __future__ import annotations

import dataclasses
import math

from slscale.spec import WSD, Recipe


def warmup_steps(recipe: Recipe, total_steps: int) -> int:
    """``max(min_warmup_steps, floor(warmup_fraction × total_steps))``, at most ``total_steps``."""
    return recipe.warmup_steps(total_steps)


@dataclasses.dataclass(frozen=True, kw_only=True)
class LRSchedule:
    """Learning-rate multiplier of step ``s`` (0-based), relative to the peak ``recipe.lr``.

    Steps ``s < W`` warm up linearly, ``(s + 1) / W``; from ``W`` to the last step the rate
    decays from the peak to ``lr_min`` (cosine: ``min + (peak - min)(1 + cos(π p)) / 2`` with
    ``p = (s - W) / (S - 1 - W)``), reaching ``lr_min`` exactly at the last step ``S - 1``
    (a run whose only post-warm-up step is its last stays at the peak).
    wsd: the peak until step ``K = decay_start``, then ``min + (peak - min)(1 - p)`` (linear)
    or ``min + (peak - min)(1 - sqrt(p))`` (1-sqrt) with ``p = (s - K + 1) / (S - K)``, so that
    every one of the ``S - K`` decay steps runs below the peak and the last at ``lr_min``.
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
    """cosine | linear | constant | wsd (decay shape after warm-up)."""
    decay_start: int = 0
    """wsd: K, the first step of the decay (``total_steps``: no decay, a ladder's trunk)."""
    decay_shape: str = "1-sqrt"
    """wsd: linear | 1-sqrt."""

    @classmethod
    def from_recipe(
        cls, recipe: Recipe, total_steps: int, *, stable_to_end: bool = False
    ) -> LRSchedule:
        """The schedule of a run of ``total_steps``; ``stable_to_end``: a wsd trunk, whose rate
        stays at the peak to its last step."""
        decay_start = 0
        if recipe.schedule == WSD:
            decay_start = total_steps if stable_to_end else recipe.decay_start(total_steps)
        return cls(
            total_steps=total_steps,
            warmup_steps=warmup_steps(recipe, total_steps),
            peak_lr=recipe.lr,
            min_lr=recipe.lr_min,
            kind=recipe.schedule,
            decay_start=decay_start,
            decay_shape=recipe.decay_shape,
        )

    def lr(self, step: int) -> float:
        """Learning rate used by optimizer step ``step``."""
        if step < self.warmup_steps:
            return self.peak_lr * (step + 1) / self.warmup_steps
        if self.kind == "constant":
            return self.peak_lr
        if self.kind == WSD:
            return self._wsd(step)
        decay_steps = self.total_steps - 1 - self.warmup_steps
        progress = min(1.0, (step - self.warmup_steps) / decay_steps) if decay_steps > 0 else 0.0
        if self.kind == "linear":
            shape = 1.0 - progress
        else:
            shape = 0.5 * (1.0 + math.cos(math.pi * progress))
        return self.min_lr + (self.peak_lr - self.min_lr) * shape

    def _wsd(self, step: int) -> float:
        if step < self.decay_start or self.decay_start >= self.total_steps:  # stable (a trunk)
            return self.peak_lr
        progress = min(1.0, (step - self.decay_start + 1) / (self.total_steps - self.decay_start))
        shape = 1.0 - (progress if self.decay_shape == "linear" else math.sqrt(progress))
        return self.min_lr + (self.peak_lr - self.min_lr) * shape

    def __call__(self, step: int) -> float:
        """Multiplier of the peak rate (the ``LambdaLR`` protocol)."""
        return self.lr(step) / self.peak_lr
