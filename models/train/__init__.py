"""Training one run: a DeepSpeed ZeRO trainer that stops at its token budget exactly,
checkpoints atomically, resumes exactly, and reports to the results store.

Entry points: :func:`train_worker` (one worker; Ray Train's ``train_loop_per_worker``),
:func:`run_local` (a run's workers as local processes), :class:`TrainConfig`, :class:`TrainJob`.
"""

from slscale.models.train.budget import TokenBudget
from slscale.models.train.config import TrainConfig, TrainJob
from slscale.models.train.launch import run_local
from slscale.models.train.schedule import LRSchedule
from slscale.models.train.worker import TrainResult, train_worker

__all__ = [
    "LRSchedule",
    "TokenBudget",
    "TrainConfig",
    "TrainJob",
    "TrainResult",
    "run_local",
    "train_worker",
]
