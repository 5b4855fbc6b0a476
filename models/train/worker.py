"""``train_worker(config)``: the entry point every worker of a run calls.

It is a plain function of one argument so that it serves as Ray Train's ``train_loop_per_worker``
(``TorchTrainer(train_worker, train_loop_config={"job": job})``), as the target of the local
multi-process launcher, and as a direct call in a single process. Every worker returns the same
:class:`TrainResult`; worker 0 alone talks to the store and writes ``result.json``.

A run whose ``result.json`` already says SUCCEEDED is not trained again. A WSD ladder's trunk
saves a checkpoint at each of its branch points (its last step included) and a branch starts
from one (:mod:`~slscale.models.train.branch`). Outcomes: SUCCEEDED
(budget consumed, model exported), PREEMPTED (SIGTERM/SIGINT: a checkpoint
is written at the end of the current step and the run can be resumed), FAILED (diverged:
NaN/inf loss or a loss above ``max_loss``; or an exception, which is re-raised). A branch
started before its trunk checkpointed its branch point raises :class:`TrunkNotReady` and
writes nothing: it has not failed, it waits. An attempt of
a sweep (``config.attempt``) that finds a newer attempt owning its run folder raises
:class:`~slscale.fence.Superseded` before its next write and writes nothing more.
"""

from __future__ import annotations

import dataclasses
import math
import signal
import socket
import threading
from collections.abc import Mapping
from pathlib import Path
from types import FrameType
from typing import Any

from slscale import fence
from slscale.errors import ConfigError
from slscale.models.train.branch import TrunkNotReady
from slscale.models.train.config import TrainJob
from slscale.models.train.distributed import init_distributed
from slscale.models.train.loop import WorkerLoop
from slscale.models.train.report import RunReporter, read_result
from slscale.spec import RunState


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainResult:
    """How a run ended (the same on every worker)."""

    run_id: str
    state: RunState
    steps: int
    tokens: int
    loss: float
    val_loss: float | None
    error: str | None
    run_dir: Path


class StopSignal:
    """Turns SIGTERM (and a first SIGINT) into a request to stop after the current step."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # e.g. Ray Train's worker thread: signals reach the main thread only
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._previous[sig] = signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True
        if signum == signal.SIGINT:  # a second Ctrl-C interrupts at once
            signal.signal(signal.SIGINT, signal.default_int_handler)

    def uninstall(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()


def train_worker(config: TrainJob | Mapping[str, Any]) -> TrainResult:
    """Train one worker's share of a run (``config``: a TrainJob or ``{"job": TrainJob}``)."""
    job = config if isinstance(config, TrainJob) else config["job"]
    info = init_distributed(job.config.device)
    if info.world_size != job.config.num_workers:
        raise ConfigError(
            f"field 'num_workers' = {job.config.num_workers}: the process group has "
            f"{info.world_size} workers; launch as many as the run asks for"
        )
    done = finished_result(job.config.run_dir)
    if done is not None:
        return done
    return _Driver(job, WorkerLoop(job, info)).run()


def finished_result(run_dir: Path) -> TrainResult | None:
    """The result of a run that already SUCCEEDED in ``run_dir`` (its result.json), else None:
    running a finished run again returns its record instead of training it twice."""
    try:
        record = read_result(run_dir)
    except (OSError, ValueError):
        return None
    if record.get("state") != RunState.SUCCEEDED:
        return None
    return TrainResult(
        run_id=record["run_id"],
        state=RunState.SUCCEEDED,
        steps=record["steps"],
        tokens=record["tokens"],
        loss=record["loss"],
        val_loss=record.get("val_loss"),
        error=None,
        run_dir=Path(run_dir),
    )


class _Driver:
    def __init__(self, job: TrainJob, loop: WorkerLoop) -> None:
        self.cfg, self.loop = job.config, loop
        self.job = job
        self.reporter = RunReporter(job, loop)
        self.max_loss = self.cfg.max_loss or 2 * math.log(loop.vocab_size)
        self.stop = StopSignal()

    def run(self) -> TrainResult:
        self.stop.install()
        try:
            self.loop.check_fence()  # a retry may own the run folder already
            extra = self.loop.resume()
            self.reporter.start(socket.gethostname(), extra)
            state, error = self._train()
            return self._finish(state, error)
        except fence.Superseded:
            self.reporter.abandon()  # the run's state and rows are the newer attempt's
            raise
        except TrunkNotReady:  # nothing trained yet: the branch waits, it has not failed
            self.reporter.abandon()
            raise
        except BaseException as exc:
            self.reporter.finish(RunState.FAILED, f"{exc.__class__.__name__}: {exc}", None)
            raise
        finally:
            self.stop.uninstall()

    def _train(self) -> tuple[RunState, str | None]:
        total = self.loop.budget.total_steps
        while self.loop.progress.step < total:
            logged = self._logged(self.loop.progress.step + 1, total)
            loss, stop = self.loop.train_step(self.stop.requested, grad_norm=logged)
            step = self.loop.progress.step
            if self.loop.superseded_by:  # before this step writes anything
                newer = self.loop.superseded_by
                raise fence.Superseded(self.cfg.run_dir, self.cfg.attempt or 0, newer)
            if not math.isfinite(loss) or loss > self.max_loss:
                return RunState.FAILED, (
                    f"diverged: training loss {loss:.6g} at step {step} (limit {self.max_loss:.6g})"
                )
            self.reporter.step_done(loss, log=logged or stop)  # a preempted run logs its last
            if self.cfg.eval_every_steps and step % self.cfg.eval_every_steps == 0 and step < total:
                self.reporter.validation(self.loop.validation_losses())
            kept = step in self.cfg.keep_steps  # a trunk's branch point, even its last step
            if kept:
                self.loop.save_checkpoint(self.reporter.checkpoint_extra())
            if stop and step < total:  # at the last step, finishing beats checkpointing
                if not kept:
                    self.loop.save_checkpoint(self.reporter.checkpoint_extra())
                return RunState.PREEMPTED, f"stopped by a signal at step {step}; resumable"
            every = self.cfg.checkpoint_every_steps
            if every and step % every == 0 and step < total and not kept:
                self.loop.save_checkpoint(self.reporter.checkpoint_extra())
        return RunState.SUCCEEDED, None

    def _logged(self, step: int, total: int) -> bool:
        return step % self.cfg.log_every_steps == 0 or step == total

    def _finish(self, state: RunState, error: str | None) -> TrainResult:
        self.loop.check_fence()
        val_loss = None
        if state == RunState.SUCCEEDED:
            losses = self.loop.validation_losses()
            self.reporter.validation(losses)
            val_loss = losses.get("val_loss")
            if self.cfg.export_model:
                self.reporter.export_model()
        self.reporter.finish(state, error, val_loss)
        return TrainResult(
            run_id=self.cfg.run_id,
            state=state,
            steps=self.loop.progress.step,
            tokens=self.loop.tokens_done,
            loss=self.loop.progress.last_loss,
            val_loss=val_loss,
            error=error,
            run_dir=self.cfg.run_dir,
        )
