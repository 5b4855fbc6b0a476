"""Run functions the scheduler executes: the DeepSpeed trainer, and a synthetic stand-in.

A run function has the signature of :data:`~slscale.sweep.scheduler.outcome.RunFunction`. It
may carry a ``worker_fn`` attribute: the per-worker loop used when a run is a Ray Train worker
group (several GPUs or processes).

* :class:`TrainerRun` builds the run's :class:`~slscale.models.train.TrainJob` from its spec
  (``job_builder``) and calls :func:`~slscale.models.train.train_worker`, the trainer behind
  ``slscale train``. The trainer's own outcomes become the scheduler's: PREEMPTED (stopped by a
  signal after checkpointing) raises :class:`~.outcome.Preempted`, a diverged run raises
  :class:`Diverged` (failed at once: resuming replays the same steps).
* :class:`SyntheticRun` trains nothing but behaves like a run: it logs a deterministic loss
  curve step by step, checkpoints its state, resumes from it, and can be told to fail. It
  measures the scheduler without the cost of training (tests, benchmarks, cluster smoke tests).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import random
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from slscale import fence
from slscale.errors import ConfigError
from slscale.spec import RunSpec, RunState, spec_from_dict
from slscale.sweep.scheduler.outcome import Diverged, Preempted

RESULT_FILE = "result.json"


JobBuilder = Callable[..., Any]
"""``job_builder(spec, *, run_id, workdir, store, **runtime) -> TrainJob``."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainerRun:
    """Train a run with the DeepSpeed trainer (one process; see :meth:`worker_fn` for groups)."""

    job_builder: JobBuilder
    """Turns a RunSpec and runtime settings into a TrainJob."""
    runtime: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    """TrainConfig runtime fields for every run (checkpoint_every_steps, zero_stage, ...)."""
    checkpoints_per_run: int = 20
    """Unless ``runtime`` sets ``checkpoint_every_steps``: checkpoint this many times over a
    run, so a lost process costs at most 1/20 of the run."""
    plan_gpu: str | None = None
    """The GPU type whose resource plan sets each run's ZeRO stage and micro-batch when the
    run has a GPU (unless ``runtime`` sets them)."""
    plan_mfu: float = 0.4
    """MFU assumed by that plan."""
    planned: Mapping[str, Mapping[int, Mapping[str, Any]]] = dataclasses.field(default_factory=dict)
    """Run id -> number of workers -> the ZeRO stage and micro-batch of the launch's plan on
    that many GPUs (over the ``plan_gpu`` plan; ``runtime`` overrides both), or an ``error``
    saying why the run cannot train on that many (raised as a ConfigError)."""

    def __call__(
        self, spec: dict[str, Any], run_id: str, workdir: str, store_url: str, attempt: int
    ) -> dict[str, Any]:
        return self._train(spec, run_id, workdir, store_url, {"attempt": attempt})

    def worker_fn(self, config: Mapping[str, Any]) -> None:
        """Ray Train's per-worker loop (config keys: spec, run_id, workdir, store_url)."""
        from ray import train

        runtime = {
            "num_workers": train.get_context().get_world_size(),
            "attempt": config.get("attempt"),
        }
        self._train(
            config["spec"], config["run_id"], config["workdir"], config["store_url"], runtime
        )

    def _train(
        self,
        spec: dict[str, Any],
        run_id: str,
        workdir: str,
        store_url: str,
        runtime: dict[str, Any],
    ) -> dict[str, Any]:
        from slscale.models.train import train_worker
        from slscale.models.train.report import read_result, summary_of

        done = Path(workdir, "runs", run_id, RESULT_FILE)
        if done.exists() and json.loads(done.read_text()).get("state") == RunState.SUCCEEDED:
            return summary_of(read_result(done.parent))  # finished before its driver died
        run = spec_from_dict(spec)
        steps = math.ceil(run.tokens / run.recipe.tokens_per_step)
        every = max(1, steps // max(1, self.checkpoints_per_run))
        settings = {
            "checkpoint_every_steps": every,
            **self.planned_settings(run, run_id, int(runtime.get("num_workers", 1))),
            **self.runtime,
            **runtime,
        }
        job = self.job_builder(run, run_id=run_id, workdir=workdir, store=store_url, **settings)
        result = train_worker(job)
        if result.state == RunState.PREEMPTED:
            raise Preempted(result.error or "stopped by a signal")
        if result.state != RunState.SUCCEEDED:
            raise Diverged(result.error or f"run ended {result.state}")
        return summary_of(read_result(result.run_dir))

    def planned_settings(self, run: RunSpec, run_id: str, workers: int) -> dict[str, Any]:
        """The ZeRO stage and micro-batch of the run on ``workers`` GPUs (none on CPUs); a
        :class:`ConfigError` where the plan says it cannot train on that many."""
        entry = self.planned.get(run_id, {}).get(workers)
        if entry is not None:
            if "error" in entry:
                raise ConfigError(str(entry["error"]))
            return dict(entry)
        import torch

        if self.plan_gpu is None or not torch.cuda.is_available():
            return {}
        from slscale.sweep.plan import plan_run

        row = plan_run(run, self.plan_gpu, self.plan_mfu, None)
        return {"zero_stage": row.zero_stage, "micro_batch_size": row.micro_batch_size}


def markov_trainer(**runtime: Any) -> TrainerRun:
    """The trainer on :class:`MarkovJob` (``--run-fn slscale.sweep.scheduler.runners:
    markov_trainer``): real DeepSpeed training of each run's architecture without a corpus."""
    return TrainerRun(job_builder=MarkovJob(), runtime=runtime)


@dataclasses.dataclass(frozen=True, kw_only=True)
class MarkovJob:
    """A job builder for miniature runs: the spec's architecture (``arch``, or its ``size``
    resolved by the family) trained from scratch on the trainer's synthetic Markov token
    language over the architecture's base vocabulary (no corpus or tokenizer needed)."""

    successors: int = 3
    """Branching of the Markov chain (its entropy sets the loss floor)."""

    def __call__(self, spec: RunSpec, **runtime: Any) -> Any:
        from slscale.models.families import resolve_architecture
        from slscale.models.train import TrainConfig, TrainJob
        from slscale.models.train.token_source import MarkovSourceConfig
        from slscale.models.train.toy import MarkovData, ToyModel

        a = spec.arch or resolve_architecture(spec.family, str(spec.size))
        model = ToyModel(
            family=spec.family,
            num_layers=a.num_layers,
            hidden_size=a.hidden_size,
            num_heads=a.num_heads,
            num_kv_heads=a.num_kv_heads,
            intermediate_size=a.intermediate_size,
            vocab_size=a.vocab_size,
            max_positions=max(64, spec.recipe.context_length),
        )
        data = MarkovSourceConfig(vocab_size=a.vocab_size, successors=self.successors)
        run_id = runtime.pop("run_id")
        config = TrainConfig.from_spec(spec, workdir=runtime.pop("workdir"), **runtime)
        if config.run_id != run_id:
            raise ConfigError(f"run id {run_id!r} does not match its spec ({config.run_id!r})")
        return TrainJob(
            config=config,
            model_factory=model,
            train_data=MarkovData(config=data, seed=spec.seed),
            validation_data=MarkovData(config=data, seed=spec.seed, split="validation"),
        )


@dataclasses.dataclass(frozen=True, kw_only=True)
class SyntheticRun:
    """A stand-in run: a deterministic loss curve, checkpoints, resume, chosen failures.

    Step ``s`` (0-based) carries a state ``x`` updated as ``x ← 0.9·x + ε_s`` with ``ε_s`` drawn
    from a generator seeded by (run id, s); the loss is ``2 + 8/(s + 1)^0.5 + 0.01·x``. The
    state is checkpointed, so a resumed curve equals an uninterrupted one only if it resumed
    from the right step with the right state. Each logged step also records which attempt
    wrote it (metric ``attempt``), and every execution appends its attempt, process id and
    host to ``executions.jsonl`` in the run directory.
    """

    step_seconds: float = 0.0
    """Sleep per step (to make runs take time)."""
    tokens_per_step: int | None = None
    """Tokens per step; None: the spec's global batch × context."""
    checkpoint_every_steps: int = 5
    """Checkpoint cadence."""
    fail_seeds: tuple[int, ...] = ()
    """Runs whose spec seed is listed raise RuntimeError after their first step, every time."""
    config_error_seeds: tuple[int, ...] = ()
    """Runs whose spec seed is listed raise ConfigError at once."""
    store: bool = True
    """Log metrics to the store (off: files only, to time the scheduler alone)."""
    lr_optimum: tuple[float, float] | None = None
    """``(c, k)``: the loss gains ``0.5·(ln lr − ln(c·N^k))²`` (N: non-embedding parameters
    of the spec), a learning-rate response with a known optimum, to test LR searches."""
    writes_state: bool = False
    """Write the run's state to the store as the trainer does (RUNNING when it starts,
    PREEMPTED when stopped, SUCCEEDED at the end), regardless of what is there."""

    def __call__(
        self, spec: dict[str, Any], run_id: str, workdir: str, store_url: str, attempt: int
    ) -> dict[str, Any]:
        run = spec_from_dict(spec)
        if run.seed in self.config_error_seeds:
            raise ConfigError(f"field 'seed' = {run.seed}: rejected by this synthetic run")
        run_dir = Path(workdir, "runs", run_id)
        done = run_dir / RESULT_FILE
        if done.exists():
            return dict(json.loads(done.read_text()))
        run_dir.mkdir(parents=True, exist_ok=True)
        fence.check(run_dir, attempt)
        _note_execution(run_dir, attempt)
        per_step = self.tokens_per_step or run.recipe.tokens_per_step
        total = math.ceil(run.tokens / per_step)
        step, x = _load_checkpoint(run_dir)
        penalty = self._lr_penalty(spec, run)
        loss = _loss(step, x) + penalty
        store = _open(store_url) if self.store else None
        self._state(store, run_id, "RUNNING")
        try:
            while step < total:
                nxt = 0.9 * x + random.Random(f"{run_id}:{step}").gauss(0.0, 1.0)
                loss = _loss(step + 1, nxt) + penalty
                tokens = min((step + 1) * per_step, run.tokens)
                fence.check(run_dir, attempt)  # before each write, as the trainer does
                self._log(store, run_id, step + 1, tokens, loss, attempt)
                # (step, x) is what a stop checkpoints: it moves on only once the step is
                # logged, so a stop arriving mid-step (an exception raised anywhere in the loop)
                # never checkpoints a step the curve lacks; a step logged but not yet counted is
                # redone and logged again (an upsert) after the resume.
                step, x = step + 1, nxt
                if run.seed in self.fail_seeds:
                    raise RuntimeError(f"synthetic failure of run {run_id} at step {step}")
                if step % self.checkpoint_every_steps == 0:
                    fence.check(run_dir, attempt)
                    _save_checkpoint(run_dir, step, x)
                time.sleep(self.step_seconds)
        except (Preempted, KeyboardInterrupt):
            fence.check(run_dir, attempt)
            _save_checkpoint(run_dir, step, x)
            self._state(store, run_id, "PREEMPTED")
            raise Preempted(f"stopped at step {step}; checkpoint saved") from None
        finally:
            if store is not None:
                store.close()
        summary = {"loss": loss, "tokens": run.tokens, "steps": total}
        fence.check(run_dir, attempt)
        _write_json(done, summary)
        return summary

    def _state(self, store: Any, run_id: str, state: str) -> None:
        if self.writes_state and store is not None:
            store.set_state(run_id, RunState(state))

    def _lr_penalty(self, spec: dict[str, Any], run: RunSpec) -> float:
        if self.lr_optimum is None:
            return 0.0
        from slscale.sweep.plan import param_counts

        c, k = self.lr_optimum
        n = param_counts(spec)["n_params_non_embedding"]
        return 0.5 * (math.log(run.recipe.lr) - math.log(c * n**k)) ** 2

    def _log(
        self, store: Any, run_id: str, step: int, tokens: int, loss: float, attempt: int
    ) -> None:
        if store is None:
            return
        from slscale.store.base import Metric

        store.log_metrics(
            [
                Metric(run_id=run_id, step=step, name="loss", value=loss, tokens=tokens),
                Metric(run_id=run_id, step=step, name="attempt", value=attempt, tokens=tokens),
            ]
        )


EXECUTIONS_FILE = "executions.jsonl"


def _note_execution(run_dir: Path, attempt: int) -> None:
    import socket

    record = {
        "attempt": attempt,
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "time": time.time(),
    }
    with (run_dir / EXECUTIONS_FILE).open("a") as fh:
        fh.write(json.dumps(record) + "\n")


def _loss(step: int, x: float) -> float:
    return 2.0 + 8.0 / max(step, 1) ** 0.5 + 0.01 * x


def _open(store_url: str) -> Any:
    from slscale.store import open_store

    return open_store(store_url)


def _load_checkpoint(run_dir: Path) -> tuple[int, float]:
    path = run_dir / "checkpoint.json"
    if not path.exists():
        return 0, 0.0
    data = json.loads(path.read_text())
    return int(data["step"]), float(data["x"])


def _save_checkpoint(run_dir: Path, step: int, x: float) -> None:
    _write_json(run_dir / "checkpoint.json", {"step": step, "x": x})


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    tmp = path.with_name(f".tmp-{path.name}")
    tmp.write_text(json.dumps(dict(data)))
    os.replace(tmp, path)
