"""What one training run needs: a frozen :class:`TrainConfig` and the factories of a job.

The trainer knows nothing of model families or data formats: a :class:`TrainJob` hands it a
model factory and batch-source factories (picklable callables, so a job travels to spawned
processes and Ray Train workers unchanged). Runtime choices (workdir, store, workers, ZeRO
stage, micro-batch) are fields of :class:`TrainConfig`, not of the spec, so they never change
a run's identity.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from slscale.errors import ConfigError
from slscale.models.data.batching import BatchSource
from slscale.spec import Branch, Recipe, RunSpec, spec_to_dict
from slscale.trackers import TrackerSettings

ModelFactory = Callable[[], torch.nn.Module]
"""Builds the (seeded) model; called once per worker after the trainer seeds torch."""
SourceFactory = Callable[[int, int], BatchSource]
"""(shard, num_shards) -> a batch source. The trainer asks for shard 0 of 1, the run's one
stream, and deals each step's sequences out to the workers itself (see dealing.py)."""
ValidationFactory = Callable[[int, int], "BatchSource | Mapping[str, BatchSource]"]
"""(shard, num_shards) -> held-out batch source(s); named sources get their own val_loss.<name>.
Every worker must get the same stream: the trainer shares its batches out among the workers."""
ExportHook = Callable[[Path], "Mapping[str, Any] | None"]
"""Called on worker 0 with the exported model directory (to add tokenizer/vocabulary files);
what it returns is added to the directory's ``slscale_model.json`` record."""


def _fail(field: str, value: object, hint: str) -> None:
    raise ConfigError(f"field '{field}' = {value!r}: {hint}")


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Everything the trainer needs besides the model and the data."""

    run_id: str
    """Identity of the run (``slscale.identity.run_id(spec)``)."""
    workdir: str
    """Root directory; the run writes under ``<workdir>/runs/<run_id>/``."""
    tokens: int
    """Token budget D; the run consumes exactly this many tokens."""
    recipe: Recipe = dataclasses.field(default_factory=Recipe)
    """Optimisation recipe (LR schedule, batch, context, clipping)."""
    seed: int = 0
    """Seed of initialisation and of the trainer's RNG."""
    zero_stage: int = 0
    """DeepSpeed ZeRO stage 0-3."""
    num_workers: int = 1
    """Data-parallel workers the run expects (checked against the process group)."""
    micro_batch_size: int | None = None
    """Sequences per forward pass per worker; None: a worker's whole share of a step."""
    device: str = "auto"
    """cpu | cuda | auto (a GPU when CUDA is available)."""
    precision: str = "auto"
    """fp32 | bf16 | auto (bf16 on GPU, fp32 on CPU)."""
    checkpoint_every_steps: int = 0
    """Save a checkpoint every this many steps (0: only on preemption)."""
    keep_checkpoints: int = 2
    """Complete checkpoints kept on disk (the newest ones)."""
    log_every_steps: int = 10
    """Send training metrics to the store every this many steps (and at the last step)."""
    eval_every_steps: int = 0
    """Validation loss every this many steps (0: only at the end)."""
    eval_batches: int = 2
    """Held-out micro-batches per source per evaluation, shared out among the workers
    (worker r runs batches r, r+W, ...)."""
    max_loss: float | None = None
    """A training loss above this fails the run as diverged (None: 2·ln(vocabulary size))."""
    store: str | None = None
    """Results-store target (workdir, SQLite file or URL); None: no store."""
    spec: Mapping[str, Any] | None = None
    """The RunSpec as a dict: registered in the store and recorded in result.json."""
    flops_per_token: float | None = None
    """Exact training FLOPs per token; None: counted on the model (see flops.py)."""
    peak_flops_per_device: float | None = None
    """Peak FLOP/s of one device for MFU; None: measured (CPU) or data sheet (GPU)."""
    export_model: bool = True
    """Save the trained model (transformers format) to ``<run dir>/model``."""
    store_retry_seconds: float = 60.0
    """How long the end of a run keeps retrying an unreachable store."""
    trackers: TrackerSettings | None = None
    """Experiment trackers that mirror the run (W&B, TensorBoard; see :mod:`slscale.trackers`);
    None: none."""
    attempt: int | None = None
    """The sweep's attempt number of this run (its fencing token, see :mod:`slscale.fence`):
    once the run folder names a newer attempt, this one stops without writing more. None (a
    run outside a sweep): not fenced."""
    branch: Branch | None = None
    """A WSD ladder's branch: its first attempt starts from the checkpoint of run
    ``branch.parent`` (in the same workdir) at ``branch.from_tokens`` (see
    :mod:`~slscale.models.train.branch`)."""
    branch_tokens: tuple[int, ...] = ()
    """A WSD ladder's trunk: its rate stays at the peak to its end, and it saves and keeps a
    checkpoint at each of these token counts (its branch points) whatever
    ``keep_checkpoints`` says."""

    def __post_init__(self) -> None:
        if not self.run_id or "/" in self.run_id:
            _fail("run_id", self.run_id, "must be a non-empty name without '/'")
        if not isinstance(self.tokens, int) or self.tokens <= 0:
            _fail("tokens", self.tokens, "must be a positive integer")
        if self.zero_stage not in (0, 1, 2, 3):
            _fail("zero_stage", self.zero_stage, "must be 0, 1, 2 or 3")
        if self.device not in ("auto", "cpu", "cuda"):
            _fail("device", self.device, "must be auto, cpu or cuda")
        if self.precision not in ("auto", "fp32", "bf16"):
            _fail("precision", self.precision, "must be auto, fp32 or bf16")
        for name in ("num_workers", "keep_checkpoints", "log_every_steps", "eval_batches"):
            if getattr(self, name) < 1:
                _fail(name, getattr(self, name), "must be at least 1")
        for name in ("checkpoint_every_steps", "eval_every_steps"):
            if getattr(self, name) < 0:
                _fail(name, getattr(self, name), "must be >= 0 (0 turns it off)")
        if self.max_loss is not None and not self.max_loss > 0:
            _fail("max_loss", self.max_loss, "must be positive")
        object.__setattr__(self, "branch_tokens", tuple(self.branch_tokens))
        step = self.recipe.tokens_per_step
        points = [*self.branch_tokens, *([self.branch.from_tokens] if self.branch else [])]
        if any(t % step for t in points):
            _fail(
                "branch_tokens" if self.branch_tokens else "branch.from_tokens",
                points,
                f"branch points must be whole optimizer steps ({step} tokens each)",
            )
        if self.branch is not None and self.branch.from_tokens >= self.tokens:
            _fail(
                "branch.from_tokens",
                self.branch.from_tokens,
                f"must be below the run's tokens ({self.tokens})",
            )

    @property
    def keep_steps(self) -> frozenset[int]:
        """Steps whose checkpoints are always saved and kept (a trunk's branch points)."""
        return frozenset(t // self.recipe.tokens_per_step for t in self.branch_tokens)

    @property
    def branch_step(self) -> int:
        """The step a branch starts from (0: not a branch)."""
        return self.branch.from_tokens // self.recipe.tokens_per_step if self.branch else 0

    @property
    def run_dir(self) -> Path:
        return Path(self.workdir) / "runs" / self.run_id

    @classmethod
    def from_spec(cls, spec: RunSpec, *, workdir: str, **runtime: Any) -> TrainConfig:
        """The config of ``spec``'s run; ``runtime`` sets the non-identity fields."""
        from slscale.identity import run_id

        known = {f.name for f in dataclasses.fields(cls)} - _FROM_SPEC
        unknown = sorted(set(runtime) - known)
        if unknown:
            raise ConfigError(
                f"unknown trainer setting(s) {', '.join(map(repr, unknown))}; "
                f"known: {', '.join(sorted(known))}"
            )
        return cls(
            run_id=run_id(spec),
            workdir=str(workdir),
            tokens=spec.tokens,
            recipe=spec.recipe,
            seed=spec.seed,
            spec=spec_to_dict(spec),
            branch=spec.branch,
            branch_tokens=spec.branch_tokens,
            **runtime,
        )


_FROM_SPEC = {"run_id", "tokens", "recipe", "seed", "spec", "branch", "branch_tokens"}
"""TrainConfig fields :meth:`TrainConfig.from_spec` takes from the spec, not the runtime."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainJob:
    """A config plus the factories of its model and data (the argument of ``train_worker``)."""

    config: TrainConfig
    """The run's settings."""
    model_factory: ModelFactory
    """Builds the model to train."""
    train_data: SourceFactory
    """Builds a worker's training batch source."""
    validation_data: ValidationFactory | None = None
    """Builds a worker's held-out batch source, or named sources (fresh for every
    evaluation)."""
    on_export: ExportHook | None = None
    """Adds files (tokenizer, vocabulary) to the exported model directory."""
