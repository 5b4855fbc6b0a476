"""What a run reports: metric rows each ``log_every_steps``, validation losses, the store
state, and a structured ``result.json`` (the run's record; nothing downstream parses logs).

Metric names: loss (the step's), loss_smoothed (mean over the log interval), lr, grad_norm,
tokens, tokens.<stream>, tokens.<stream>/<source>, tokens.units, flops_6nd,
flops_6nd_non_embedding, flops_exact, tokens_per_second, mfu, val_loss, val_loss.<held-out
set>. Every row also carries the tokens seen and ``flops`` = 6·N_total·D (SIMS). A WSD
branch counts its tokens and FLOPs from the start of its trunk (its D is a whole run's);
``tokens_trained`` in ``result.json`` and the summary is what it trained itself.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import time
from pathlib import Path
from typing import Any

from slscale import fence, trackers
from slscale.compute import flops_6nd
from slscale.models.train.config import TrainJob
from slscale.models.train.export import export_model
from slscale.models.train.flops import mfu, peak_flops
from slscale.models.train.loop import WorkerLoop, metric_rows
from slscale.models.train.state import UNITS, split_counts
from slscale.models.train.telemetry import StoreLink, read_metrics_jsonl
from slscale.spec import RunState, spec_to_dict
from slscale.store.base import Metric

RESULT_FILE = "result.json"


def _opener(target: str) -> Any:
    def open_it() -> Any:
        from slscale.store import open_store

        return open_store(target)

    return open_it


class RunReporter:
    """Metrics, store state and result record of one run (writes happen on worker 0)."""

    def __init__(self, job: TrainJob, loop: WorkerLoop) -> None:
        self.cfg, self.loop, self.job = job.config, loop, job
        self.main = loop.info.is_main
        self.cfg.run_dir.mkdir(parents=True, exist_ok=True)
        opener = _opener(self.cfg.store) if self.cfg.store else None
        self.link = StoreLink(opener, self.cfg.run_id, self.cfg.run_dir / "metrics.jsonl")
        if self.cfg.peak_flops_per_device:
            self.peak, self.peak_source = self.cfg.peak_flops_per_device, "given"
        else:
            self.peak, self.peak_source = peak_flops(loop.info.device, loop.precision)
        self.wall_start = time.time()
        self.token_counts: dict[str, int] = {}
        self._interval_losses: list[float] = []
        self._interval_start = (0, 0.0)
        self.val_losses: dict[str, float] = {}
        self.model_dir: Path | None = None
        self.mirror = trackers.Mirror()

    # -- during the run ------------------------------------------------------------------

    def start(self, host: str, extra: dict[str, Any] | None) -> None:
        self._interval_start = (self.loop.tokens_done, self.loop.progress.train_seconds)
        if not self.main:
            return
        if extra and extra.get("pending_metrics"):  # mirrored when they were first logged
            self.link.log_metrics(Metric(**row) for row in extra["pending_metrics"])
        spec = self.cfg.spec if self.cfg.spec is not None else self._bare_spec()
        self.link.register(spec)
        self.link.set_state(RunState.RUNNING, host=host)
        self.link.flush()
        self.mirror = trackers.Mirror.open(self.cfg.trackers, self._tracker_info(spec))
        resumed_at, logged = self.loop.progress.step, self.cfg.run_dir / "metrics.jsonl"
        if resumed_at and self.mirror.names and logged.exists():
            self.mirror.backfill(
                r for r in read_metrics_jsonl(logged).values() if r.step <= resumed_at
            )

    def _tracker_info(self, spec: Any) -> trackers.RunInfo:
        """The run's tracker config: its spec (flattened as the export does), N, D, FLOPs and
        the resources it runs on."""
        cfg, loop = self.cfg, self.loop
        resources = {
            "N_non_embedding": loop.n_params_non_embedding,
            "resources.num_workers": loop.info.world_size,
            "resources.device": str(loop.info.device),
            "resources.precision": loop.precision,
            "resources.zero_stage": cfg.zero_stage,
            "resources.micro_batch_size": loop.budget.resolved_micro_batch_size,
        }
        config = trackers.run_config(spec, loop.n_params, cfg.tokens, resources)
        group = Path(cfg.workdir).name or None
        return trackers.RunInfo(cfg.run_id, config, group, resume_step=loop.progress.step)

    def _log(self, rows: list[Metric]) -> None:
        """Metric rows to the store (queued) and to the trackers."""
        self.link.log_metrics(rows)
        self.mirror.metrics(rows)

    def _bare_spec(self) -> dict[str, Any]:
        """What a run without a RunSpec registers: the fields the trainer knows."""
        return {
            "tokens": self.cfg.tokens,
            "seed": self.cfg.seed,
            "recipe": spec_to_dict(self.cfg.recipe),
        }

    def step_done(self, loss: float, log: bool) -> None:
        self._interval_losses.append(loss)
        if not log:
            return
        self.token_counts = self.loop.token_counts_global()  # collective
        if self.main:
            self._log(self._training_rows(loss))
            self.link.flush()
        self._interval_losses = []
        self._interval_start = (self.loop.tokens_done, self.loop.progress.train_seconds)

    def _training_rows(self, loss: float) -> list[Metric]:
        loop, step = self.loop, self.loop.progress.step
        tokens0, seconds0 = self._interval_start
        seconds = loop.progress.train_seconds - seconds0
        rate = (loop.tokens_done - tokens0) / seconds if seconds > 0 else None
        values: dict[str, float | None] = {
            "loss": loss,
            "loss_smoothed": sum(self._interval_losses) / len(self._interval_losses),
            "lr": loop.lr(step - 1),
            "grad_norm": loop.grad_norm(),
            "tokens_per_second": rate,
            "mfu": None if rate is None else self._mfu(rate),
            **self._counters(),
        }
        return self._rows(values)

    def _counters(self) -> dict[str, float | None]:
        loop, tokens = self.loop, self.loop.tokens_done
        values: dict[str, float | None] = {
            "tokens": tokens,
            "flops_6nd": flops_6nd(loop.n_params, tokens),
            "flops_6nd_non_embedding": flops_6nd(loop.n_params_non_embedding, tokens),
            "flops_exact": loop.flops_per_token * tokens,
        }
        values.update({f"tokens.{k}": v for k, v in self.token_counts.items()})
        return values

    def _mfu(self, tokens_per_second: float) -> float:
        return mfu(
            tokens_per_second, self.loop.flops_per_token, self.peak, self.loop.info.world_size
        )

    def _rows(self, values: dict[str, float | None]) -> list[Metric]:
        tokens = self.loop.tokens_done
        return metric_rows(
            self.cfg.run_id,
            self.loop.progress.step,
            tokens,
            flops_6nd(self.loop.n_params, tokens),
            values,
        )

    def validation(self, losses: dict[str, float]) -> None:
        self.val_losses = losses
        if self.main and losses:
            self._log(self._rows(dict(losses)))
            self.link.flush()

    def checkpoint_extra(self) -> dict[str, Any]:
        if not self.main:
            return {}
        return {"pending_metrics": [dataclasses.asdict(m) for m in self.link.pending_metrics()]}

    def export_model(self) -> None:
        record = {
            "run_id": self.cfg.run_id,
            "step": self.loop.progress.step,
            "tokens": self.loop.tokens_done,
        }
        self.model_dir = export_model(
            self.loop.model,
            self.cfg.run_dir / "model",
            self.loop.info,
            record,
            self.cfg.zero_stage,
            self.job.on_export,
        )

    # -- at the end ----------------------------------------------------------------------

    def finish(self, state: RunState, error: str | None, val_loss: float | None) -> None:
        if not self.main:
            return
        fence.check(self.cfg.run_dir, self.cfg.attempt)  # the record is the owner's to write
        result = _finite(self.result(state, error, val_loss))
        _write_json(self.cfg.run_dir / RESULT_FILE, result)
        self.link.set_summary(summary_of(result))
        self.link.set_state(state, error=error)
        self.link.close(retry_seconds=self.cfg.store_retry_seconds)
        self.mirror.summary({**summary_of(result), "state": str(state)})
        self.mirror.close()

    def abandon(self) -> None:
        """Write nothing more: this attempt was superseded (:mod:`slscale.fence`)."""
        if self.main:
            self.link.discard()
            self.mirror.close()

    def result(self, state: RunState, error: str | None, val_loss: float | None) -> dict[str, Any]:
        loop, progress = self.loop, self.loop.progress
        counts = split_counts(self.token_counts)
        seconds = progress.train_seconds
        rate = loop.tokens_trained / seconds if seconds > 0 else None
        return {
            "run_id": self.cfg.run_id,
            "state": str(state),
            "error": error,
            "spec": self.cfg.spec,
            "n_params": loop.n_params,
            "n_params_non_embedding": loop.n_params_non_embedding,
            "tokens": loop.tokens_done,
            "tokens_budget": self.cfg.tokens,
            "tokens_trained": loop.tokens_trained,
            "branch": self._branch(),
            "tokens_by_stream": counts["by_stream"],
            "tokens_by_source": counts["by_source"],
            "unit_tokens": counts["units"].get(UNITS, 0),
            "steps": progress.step,
            "total_steps": loop.budget.total_steps,
            "flops_6nd": flops_6nd(loop.n_params, loop.tokens_done),
            "flops_6nd_non_embedding": flops_6nd(loop.n_params_non_embedding, loop.tokens_done),
            "flops_exact": loop.flops_per_token * loop.tokens_done,
            "flops_per_token_exact": loop.flops_per_token,
            "flops_exact_method": loop.flops_method,
            "loss": progress.last_loss,
            "val_loss": val_loss,
            "val_losses": self.val_losses,
            "seconds": seconds,
            "wall_seconds_this_attempt": time.time() - self.wall_start,
            "tokens_per_second": rate,
            "mfu": None if rate is None else self._mfu(rate),
            "peak_flops_per_device": self.peak,
            "peak_flops_source": self.peak_source,
            "resumed_from_steps": progress.resumed_from,
            "model_dir": str(self.model_dir) if self.model_dir else None,
            "runtime": self._runtime(),
            "finished_at": dt.datetime.now(dt.UTC).isoformat(),
        }

    def _branch(self) -> dict[str, Any] | None:
        """A WSD branch's start: its trunk, and the step and tokens it started from."""
        branch = self.cfg.branch
        if branch is None:
            return None
        return {
            "parent": branch.parent,
            "from_step": self.cfg.branch_step,
            "from_tokens": branch.from_tokens,
        }

    def _runtime(self) -> dict[str, Any]:
        import deepspeed
        import torch
        import transformers

        return {
            "world_size": self.loop.info.world_size,
            "zero_stage": self.cfg.zero_stage,
            "device": str(self.loop.info.device),
            "precision": self.loop.precision,
            "micro_batch_size": self.loop.budget.resolved_micro_batch_size,
            "versions": {
                "torch": torch.__version__,
                "deepspeed": deepspeed.__version__,
                "transformers": transformers.__version__,
            },
        }


SUMMARY_KEYS = (
    "n_params",
    "n_params_non_embedding",
    "tokens",
    "tokens_trained",
    "steps",
    "flops_6nd",
    "flops_6nd_non_embedding",
    "flops_exact",
    "loss",
    "val_loss",
    "seconds",
    "tokens_per_second",
    "mfu",
)


def summary_of(result: dict[str, Any]) -> dict[str, Any]:
    """The store summary of a result record (flat scalars)."""
    return {key: result[key] for key in SUMMARY_KEYS if result.get(key) is not None}


def _finite(value: Any) -> Any:
    """NaN/inf become null (JSON has no such numbers; the error says what happened)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    return value


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".tmp-{path.name}")
    tmp.write_text(json.dumps(_finite(data), indent=1, sort_keys=True, default=str))
    tmp.rename(path)


def read_result(run_dir: Path) -> dict[str, Any]:
    """The ``result.json`` of a run directory."""
    data: dict[str, Any] = json.loads((Path(run_dir) / RESULT_FILE).read_text())
    return data
