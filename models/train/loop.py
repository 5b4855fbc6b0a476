"""One worker's training loop: micro-batches, token-weighted loss, validation, checkpoints.

The loss of a step is the mean next-token NLL over every labelled token of the *global* step:
each worker counts its labelled tokens, the counts are summed across workers, and each
micro-batch contributes ``sum NLL × world_size / total`` to the backward pass (DeepSpeed then
averages gradients over workers). The update is therefore the same however the step is cut
into micro-batches and workers, and a short last step weighs its tokens like any other.

Validation shares one held-out set out among the workers. Every worker asks the job's
validation factory for its sources with ``(rank, world_size)`` and must receive the same stream
(:class:`~slscale.models.train.spec_job.SpecRun` ignores the arguments); the set is the first
``eval_batches`` micro-batches of each source. Worker ``r`` of ``W`` draws all of them but runs
the forward pass on batches ``r, r + W, r + 2W, …`` only, and the NLL sums and token counts are
summed over workers: ``val_loss`` is the same on 1 or W workers (up to the order of float
sums), at 1/W of the forward passes each. Under ZeRO-3, whose forward passes gather the
parameters collectively, a worker left without a batch in the last round runs a forward pass on
a padding batch that carries no loss. A factory that returns a different stream per rank still
gets ``eval_batches`` distinct batches, but then the set depends on the number of workers.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from slscale import fence
from slscale.models.data.batching import Batch, BatchSource
from slscale.models.train.branch import checked_trunk_checkpoint, place_schedule, universal_folder
from slscale.models.train.budget import TokenBudget
from slscale.models.train.checkpoint import CheckpointManager
from slscale.models.train.config import TrainJob
from slscale.models.train.dealing import draw_step, drawn_batches, worker_batches
from slscale.models.train.distributed import DistInfo, all_reduce_sum
from slscale.models.train.engine import build_engine, resolve_precision
from slscale.models.train.flops import count_flops_per_token, param_counts
from slscale.models.train.state import Progress, rng_state, seed_everything, set_rng_state
from slscale.spec import spec_to_dict
from slscale.store.base import Metric

IGNORE = -100


def next_token_nll(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Summed NLL of ``labels[:, 1:]`` under ``logits[:, :-1]`` (labels -100 skipped)."""
    return F.cross_entropy(
        logits[:, :-1].flatten(0, 1).float(),
        labels[:, 1:].flatten(),
        ignore_index=IGNORE,
        reduction="sum",
    )


def labelled_tokens(batch: Batch) -> int:
    return int((batch.labels[:, 1:] != IGNORE).sum())


def padding_batch() -> Batch:
    """A 1×2 batch whose labels are all ignored: a forward pass that keeps the workers'
    collectives aligned and adds no loss."""
    ids = torch.zeros((1, 2), dtype=torch.long)
    return Batch(input_ids=ids, labels=torch.full_like(ids, IGNORE))


class WorkerLoop:
    """The model, optimizer and data of one worker, and the steps that train them."""

    def __init__(self, job: TrainJob, info: DistInfo) -> None:
        cfg = job.config
        self.job, self.cfg, self.info = job, cfg, info
        self.budget = TokenBudget(
            tokens=cfg.tokens,
            global_batch_size=cfg.recipe.global_batch_size,
            context_length=cfg.recipe.context_length,
            num_workers=info.world_size,
            micro_batch_size=cfg.micro_batch_size,
        )
        seed_everything(cfg.seed)
        self.model = job.model_factory()
        self._measure_model()
        self.precision = resolve_precision(cfg.precision, info.device)
        self.engine, self.schedule = build_engine(self.model, cfg, self.budget, info)
        # one stream for the whole run, dealt out step by step (see models/train/dealing.py)
        self.source: BatchSource = job.train_data(0, 1)
        self.progress = Progress()
        self._grad_norm: float | None = None
        self.superseded_by = 0
        """The newer attempt found at the last check (0: this attempt owns the run folder)."""
        setup = {"zero_stage": cfg.zero_stage, "precision": self.precision}
        self.checkpoints = CheckpointManager(
            cfg.run_dir / "checkpoints", cfg.keep_checkpoints, info, setup, cfg.keep_steps
        )

    def _measure_model(self) -> None:
        """Parameter counts and FLOPs per token, taken before ZeRO-3 partitions the model."""
        self.n_params, self.n_params_non_embedding = param_counts(self.model)
        embeddings = self.model.get_output_embeddings()  # type: ignore[operator]
        self.vocab_size = int(embeddings.weight.shape[0])
        if self.cfg.flops_per_token is not None:
            self.flops_per_token, self.flops_method = self.cfg.flops_per_token, "given"
        else:
            self.flops_per_token = count_flops_per_token(self.model, self.cfg.recipe.context_length)
            self.flops_method = "FlopCounterMode, fwd+bwd, full-T attention"

    # -- resume / checkpoint -------------------------------------------------------------

    def resume(self) -> dict[str, Any] | None:
        """Load the newest valid checkpoint, if any (a branch without one: its trunk's at the
        branch point); return its extra (worker-0) payload."""
        self.checkpoints.check_writable()
        path = self.checkpoints.latest_valid()
        if path is None:
            return self._branch_off() if self.cfg.branch is not None else None
        state = self.checkpoints.load(self.engine, path)
        self._restore(state)
        self.progress.resumed_from.append(self.progress.step)
        extra: dict[str, Any] = state.get("extra", {})
        return extra

    def _branch_off(self) -> dict[str, Any]:
        """Start a branch from its trunk's checkpoint, on its own schedule (see branch.py)."""
        path = checked_trunk_checkpoint(self.cfg, self.schedule, self.info)
        into = universal_folder(self.cfg)
        state = self.checkpoints.load(self.engine, path, lr_scheduler=False, universal=into)
        self._restore(state)
        step = self.progress.step
        place_schedule(self.engine, self.schedule, step)
        self.progress.start_step, self.progress.resumed_from = step, []
        self.progress.train_seconds = 0.0
        return {}  # the trunk's pending metrics are the trunk's

    def _restore(self, state: dict[str, Any]) -> None:
        self.progress = Progress.from_dict(state["progress"])
        if not self.info.is_main:  # worker 0 alone counts tokens (see dealing.py)
            self.progress.token_counts = {}
        self.source.load_state_dict(state["source"])
        set_rng_state(state["rng"])

    def save_checkpoint(self, extra: dict[str, Any]) -> Path:
        state = {
            "progress": self.progress.to_dict(),
            "source": self.source.state_dict(),
            "rng": rng_state(),
            "extra": extra,
        }
        meta = {
            "run_id": self.cfg.run_id,
            "tokens": self.tokens_done,
            "recipe": spec_to_dict(self.cfg.recipe),  # what a branch checks it continues
            "lr_schedule": dataclasses.asdict(self.schedule),
        }
        return self.checkpoints.save(
            self.engine, self.progress.step, state, meta, before_publish=self.check_fence
        )

    @property
    def tokens_done(self) -> int:
        return self.budget.tokens_before(self.progress.step)

    @property
    def tokens_trained(self) -> int:
        """Tokens this run trained itself (a branch: since its branch point)."""
        return self.tokens_done - self.budget.tokens_before(self.progress.start_step)

    # -- training ------------------------------------------------------------------------

    def train_step(self, stop_requested: bool, grad_norm: bool = True) -> tuple[float, bool]:
        """Run optimizer step ``progress.step``; return (global loss, any worker asked to
        stop). ``grad_norm``: keep the step's gradient norm (for a logged step)."""
        start = time.perf_counter()
        step = self.progress.step
        self._grad_norm = None
        batches = self._step_batches(step)
        local = sum(labelled_tokens(b) for b in batches)
        (total,) = all_reduce_sum([float(local)], self.info)
        scale = self.info.world_size / max(total, 1.0)
        nll_sum = torch.zeros((), dtype=torch.float64, device=self.info.device)
        for i, batch in enumerate(batches):
            last = i == len(batches) - 1
            self.engine.set_gradient_accumulation_boundary(last)
            nll = self._nll(batch)
            self.engine.backward(nll * scale, scale_wrt_gas=False)
            if last and grad_norm:
                self._note_grad_norm()
            self.engine.step()
            nll_sum += nll.detach()
        loss_part, stop, newer = all_reduce_sum(
            [float(nll_sum) / max(total, 1.0), float(stop_requested), float(self._newer_here())],
            self.info,
        )
        self.superseded_by = int(newer)
        self.progress.step += 1
        self.progress.last_loss = loss_part
        self.progress.train_seconds += time.perf_counter() - start
        return loss_part, stop > 0

    def newer_attempt(self) -> int:
        """The attempt that superseded this one (0: none), as worker 0 finds it in the run
        folder, the same on every worker (a collective call)."""
        (newer,) = all_reduce_sum([float(self._newer_here())], self.info)
        self.superseded_by = int(newer)
        return self.superseded_by

    def check_fence(self) -> None:
        """Raise :class:`~slscale.fence.Superseded` on every worker once a newer attempt owns
        the run folder (a collective call; nothing to check for a run outside a sweep)."""
        if self.cfg.attempt is None:
            return
        newer = self.newer_attempt()
        if newer:
            raise fence.Superseded(self.cfg.run_dir, self.cfg.attempt, newer)

    def _newer_here(self) -> int:
        if self.cfg.attempt is None or not self.info.is_main:
            return 0
        return fence.newer_attempt(self.cfg.run_dir, self.cfg.attempt) or 0

    def _step_batches(self, step: int) -> list[Batch]:
        """This worker's micro-batches of ``step``, dealt from the global step drawn from the
        run's one stream (:mod:`~slscale.models.train.dealing`); worker 0 counts its tokens."""
        lengths = self.budget.step_sequence_lengths(step)
        rows = draw_step(self.source, lengths, f"run {self.cfg.run_id}")
        if self.info.is_main:
            for drawn in drawn_batches(rows):
                self.progress.count(drawn)
        # an empty micro-batch keeps the collectives aligned; its labels are ignored: no loss
        dealt = worker_batches(rows, self.budget, step, self.info.rank)
        return [padding_batch() if batch is None else batch for batch in dealt]

    def _nll(self, batch: Batch) -> torch.Tensor:
        device = self.info.device
        positions = batch.position_ids.to(device) if batch.position_ids is not None else None
        logits = self.engine(input_ids=batch.input_ids.to(device), position_ids=positions).logits
        return next_token_nll(logits, batch.labels.to(device))

    def lr(self, step: int) -> float:
        return self.schedule.lr(step)

    def _note_grad_norm(self) -> None:
        """ZeRO-0 without mixed precision does not keep the norm it clips with: measure it
        from the (already averaged) gradients before the step."""
        if self.cfg.zero_stage == 0 and self.precision == "fp32":
            grads = [p.grad for p in self.model.parameters() if p.grad is not None]
            self._grad_norm = float(torch.nn.utils.get_total_norm(grads)) if grads else None

    def grad_norm(self) -> float | None:
        """Gradient norm of the last step, before clipping."""
        norm = self.engine.get_global_grad_norm()
        return self._grad_norm if norm is None else float(norm)

    # -- validation ----------------------------------------------------------------------

    def validation_losses(self) -> dict[str, float]:
        """``val_loss`` (token mean over every held-out batch of every worker's share) and, when
        the validation factory returns named sources, ``val_loss.<name>`` for each; {} without
        validation data. A collective call: every worker evaluates its share (module
        docstring)."""
        if self.job.validation_data is None:
            return {}
        made = self.job.validation_data(self.info.rank, self.info.world_size)
        sources = dict(made) if isinstance(made, Mapping) else {"": made}
        sums: list[float] = []
        for name in sorted(sources):
            sums += self._held_out_nll(sources[name])
        totals = all_reduce_sum(sums, self.info)  # collective: [nll, count] per source
        losses = {}
        for k, name in enumerate(sorted(sources)):
            if totals[2 * k + 1] > 0 and name:
                losses[f"val_loss.{name}"] = totals[2 * k] / totals[2 * k + 1]
        count = sum(totals[1::2])
        if count > 0:
            losses["val_loss"] = sum(totals[0::2]) / count
        return losses

    def _held_out_nll(self, source: BatchSource) -> list[float]:
        """[summed NLL, labelled tokens] over this worker's share of ``source``'s held-out
        batches."""
        nll, count = 0.0, 0
        self.engine.eval()
        with torch.no_grad():
            for batch in self._held_out_share(source):
                if batch is None:  # ZeRO-3: gather the parameters with the other workers
                    self._nll(padding_batch())
                    continue
                nll += float(self._nll(batch))
                count += labelled_tokens(batch)
        self.engine.train()
        return [nll, float(count)]

    def _held_out_share(self, source: BatchSource) -> Iterator[Batch | None]:
        """Batches ``rank, rank + W, …`` of the first ``eval_batches`` of ``source``, drawn in
        rounds of W (the other workers' batches are drawn and dropped, so that every share
        comes from the same set); under ZeRO-3, None for a round without a batch of ours."""
        micro = self.budget.resolved_micro_batch_size
        world, total = self.info.world_size, self.cfg.eval_batches
        for first in range(0, total, world):
            mine = None
            for index in range(first, min(first + world, total)):
                batch = source.next_batch(micro, self.cfg.recipe.context_length)
                if index == first + self.info.rank:
                    mine = batch
            if mine is not None or self.cfg.zero_stage == 3:
                yield mine

    def token_counts_global(self) -> dict[str, int]:
        """Token counts (per stream, per source, units) summed over workers."""
        if self.info.world_size == 1:
            return dict(sorted(self.progress.token_counts.items()))
        import torch.distributed

        gathered: list[dict[str, int] | None] = [None] * self.info.world_size
        torch.distributed.all_gather_object(gathered, self.progress.token_counts)
        total: dict[str, int] = {}
        for counts in gathered:
            for name, count in (counts or {}).items():
                total[name] = total.get(name, 0) + count
        return dict(sorted(total.items()))


def metric_rows(
    run_id: str, step: int, tokens: int, flops: float, values: dict[str, float | None]
) -> list[Metric]:
    return [
        Metric(run_id=run_id, step=step, name=name, value=float(value), tokens=tokens, flops=flops)
        for name, value in values.items()
        if value is not None
    ]
