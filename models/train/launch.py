"""Run a job's workers as processes on this machine (data-parallel over gloo or NCCL).

One worker runs in the calling process. Several are spawned (``spawn`` start method, like
torchrun): each gets its rank, the shared rendezvous address and, on CPU, an equal share of the
cores as its thread count (two processes that each use every core run many times slower).
SIGTERM and SIGINT received by the launcher are forwarded to the workers, which checkpoint at the
end of their current step. On a cluster the same :func:`train_worker` runs under Ray Train.
"""

from __future__ import annotations

import contextlib
import os
import signal
from types import FrameType
from typing import Any

import torch
import torch.multiprocessing as mp

from slscale.models.train.config import TrainJob
from slscale.models.train.distributed import free_port
from slscale.models.train.worker import TrainResult, train_worker


def run_local(job: TrainJob) -> TrainResult:
    """Train ``job`` with ``job.config.num_workers`` local workers; worker 0's result."""
    if job.config.num_workers == 1:
        return train_worker(job)
    return _spawn(job)


def _spawn(job: TrainJob) -> TrainResult:
    workers = job.config.num_workers
    ctx = mp.get_context("spawn")
    results = ctx.SimpleQueue()
    port = free_port()
    context = mp.start_processes(
        _child,
        args=(job, workers, port, results),
        nprocs=workers,
        join=False,
        start_method="spawn",
    )
    previous = _forward_signals([p.pid for p in context.processes])
    try:
        while not context.join():
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    result: TrainResult = results.get()
    return result


def _forward_signals(pids: list[int]) -> dict[int, Any]:
    def forward(signum: int, frame: FrameType | None) -> None:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    return {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}


def _child(rank: int, job: TrainJob, workers: int, port: int, results: Any) -> None:
    os.environ.update(
        RANK=str(rank),
        WORLD_SIZE=str(workers),
        LOCAL_RANK=str(rank),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    if job.config.device != "cuda" and not torch.cuda.is_available():
        threads = max(1, (os.cpu_count() or 1) // workers)
        os.environ["OMP_NUM_THREADS"] = str(threads)
        torch.set_num_threads(threads)
    result = train_worker(job)
    if rank == 0:
        results.put(result)
    _leave_group()


def _leave_group() -> None:
    """Wait for every worker, take the process group down, then end the process at once.

    A worker that exits while another still uses the group (worker 0 serves its store) can make
    the other abort at exit; and gloo's threads can still hold work when the interpreter shuts
    down, which aborts the process (``terminate called without an active exception``, SIGABRT)
    after the run has finished and written everything. ``os._exit`` skips that teardown: the
    run's files are closed and worker 0's result is in the queue by now."""
    import logging
    import sys

    import torch.distributed as dist

    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
