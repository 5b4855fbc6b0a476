"""The Ray backend of the scheduler: submit / wait / cancel run attempts.

A run that is one process is a Ray task named ``slscale-run:<run id>`` (its process shows as
``ray::slscale-run:<run id>`` in ``ps`` and ``ray list tasks``). On CPUs, Ray's worker
processes are reused across runs (up to :data:`REUSE_CALLS` attempts each, then replaced): a
run then pays neither a process start nor the imports of torch, transformers and DeepSpeed,
seconds that would otherwise be paid by every run (a one-process run initialises its process
group of one once per process, and reuses it). An attempt with GPUs gets a fresh process
(``max_calls=1``), so that its device memory goes back to the node, and so does every
attempt when ``reuse_processes`` is off. A run of several
processes (several GPUs, or ``--workers-per-run`` on CPUs) is a Ray Train worker group
(``TorchTrainer``) whose workers call the trainer's worker function; its controller runs in
a small task of its own, so that many group runs can go at once. Ray does the placement and
the resource accounting; no process is managed here.

Every failure of a worker group comes back to the driver, which decides what to retry and on
how many workers (Ray Train retries nothing itself). When a worker was lost (its process or
node died), the group's attempt counts as preempted, whatever the surviving workers raised
after it (a collective's connection reset by the lost peer, typically). An attempt may be
given ``placement_seconds``: if Ray cannot place all its workers within them (the cluster
lost the room, or the driver's view of it was stale), it ends preempted without having run,
and its driver may start the run on fewer workers.

Without an address, :meth:`RayBackend.connect` starts the embedded local Ray runtime
(``ray.init``); with one, it joins that cluster. Ray's token authentication (on by default in
Ray 2.60) is left on: Ray binds the local runtime's servers to every interface, and the token
is what keeps other hosts out. A cluster started with ``RAY_AUTH_MODE=disabled`` is joined
either way.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import signal
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from slscale import fence
from slscale.errors import SlscaleError
from slscale.sweep.scheduler import outcome as oc
from slscale.sweep.scheduler.policy import Resources

REUSE_CALLS = 25
"""Attempts one reused Ray worker process runs before Ray replaces it (bounds any memory a
run leaves behind)."""

WorkerFunction = Callable[[dict[str, Any]], None]
"""A Ray Train worker loop: ``worker_fn(config)`` with config keys spec, run_id, workdir,
store_url, attempt; rank 0 writes ``<workdir>/runs/<run_id>/result.json``."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class Attempt:
    """One attempt of one run, as submitted."""

    run_id: str
    spec: dict[str, Any]
    attempt: int
    resources: Resources
    """This attempt's resources (a run may resume on fewer workers than it planned)."""
    workdir: str
    store_url: str
    placement_seconds: float | None = None
    """Worker groups: how long Ray may take to place the workers before the attempt ends
    PREEMPTED, unplaced (None: as long as it takes)."""


class RayBackend:
    """Runs attempts on a Ray cluster."""

    def __init__(
        self,
        run_fn: oc.RunFunction,
        worker_fn: WorkerFunction | None = None,
        use_gpu: bool = False,
        reuse_processes: bool = True,
    ) -> None:
        self.run_fn = run_fn
        self.worker_fn = worker_fn
        self.use_gpu = use_gpu
        self.reuse_processes = reuse_processes
        self._refs: dict[Any, Attempt] = {}

    @staticmethod
    def connect(address: str | None = None, num_cpus: int | None = None) -> None:
        """Start a local Ray runtime, or join the cluster at ``address``; no-op if connected."""
        import ray

        if ray.is_initialized():
            return
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
        if address is None:
            kwargs["num_cpus"] = num_cpus
        previous = signal.getsignal(signal.SIGTERM)
        try:
            ray.init(address=address, **kwargs)
        except (ConnectionError, ValueError, RuntimeError) as exc:
            where = f"the Ray cluster at {address!r}" if address else "a local Ray runtime"
            raise SlscaleError(
                f"cannot connect to {where}: {oc.one_line(exc)}; check --address "
                "(ray start --head prints it) and RAY_AUTH_MODE"
            ) from None
        if callable(previous) and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, previous)  # ray.init replaced it with sys.exit

    @staticmethod
    def nodes() -> list[tuple[float, float]]:
        """(CPUs, GPUs) of every live node."""
        import ray

        return [
            (float(n["Resources"].get("CPU", 0)), float(n["Resources"].get("GPU", 0)))
            for n in ray.nodes()
            if n.get("Alive")
        ]

    def unreachable(self, handles: Sequence[Any]) -> list[Any]:
        """Attempts among ``handles`` (one-process runs) whose node Ray has declared dead.
        Ray fails such a task by itself when its worker died with the node; a worker that
        lives on, cut off (a network partition), can leave the task pending for as long as
        the connection is not given up. The attempt noted its node in its marker
        (:mod:`slscale.fence`)."""
        import ray

        noted = {}
        for handle in handles:
            attempt = self._refs.get(handle)
            if attempt is not None and attempt.resources.workers == 1:
                run_dir = Path(attempt.workdir, "runs", attempt.run_id)
                node = fence.node_of(run_dir, attempt.attempt)
                if node is not None:
                    noted[handle] = node
        if not noted:
            return []
        dead = {n["NodeID"] for n in ray.nodes() if not n.get("Alive")}
        return [handle for handle, node in noted.items() if node in dead]

    def forget(self, handle: Any) -> None:
        """Give up on an attempt whose outcome will never come (its node is dead): kill its
        task if it can still be reached, and drop it."""
        import ray

        self._refs.pop(handle, None)
        with contextlib.suppress(Exception):  # a task on a dead node may not answer at all
            ray.cancel(handle, force=True, recursive=True)

    def submit(self, attempt: Attempt) -> Any:
        """Start an attempt; returns its handle (a Ray ObjectRef)."""
        stop = oc.stop_file(attempt.workdir, attempt.run_id, attempt.attempt)
        stop.unlink(missing_ok=True)  # left by a driver that died while stopping it
        res = attempt.resources
        if res.workers > 1:
            ref = self._submit_group(attempt)
        else:
            fresh = res.gpus_per_worker > 0 or not self.reuse_processes
            task = _remote_run(fresh).options(
                num_cpus=res.cpus_per_worker,
                num_gpus=res.gpus_per_worker,
                name=f"slscale-run:{attempt.run_id}",
            )
            args = (attempt.spec, attempt.run_id, attempt.workdir, attempt.store_url)
            threads = max(1, int(res.cpus_per_worker))
            ref = task.remote(self.run_fn, *args, attempt.attempt, threads)
        self._refs[ref] = attempt
        return ref

    def _submit_group(self, attempt: Attempt) -> Any:
        if self.worker_fn is None:
            raise SlscaleError(
                f"run {attempt.run_id} needs {attempt.resources.workers} processes but the run "
                "function has no Ray Train worker function"
            )
        task = _remote_group().options(name=f"slscale-group:{attempt.run_id}")
        return task.remote(self.worker_fn, attempt, self.use_gpu)

    def wait(self, handles: Sequence[Any], timeout_seconds: float) -> list[tuple[Any, oc.Outcome]]:
        """Attempts among ``handles`` that ended within ``timeout_seconds`` (maybe none)."""
        import ray

        if not handles:
            return []
        ready, rest = ray.wait(list(handles), num_returns=1, timeout=timeout_seconds)
        if ready and rest:
            more, _ = ray.wait(rest, num_returns=len(rest), timeout=0)
            ready += more
        return [(ref, self._result(ref)) for ref in ready]

    def _result(self, ref: Any) -> oc.Outcome:
        import ray

        self._refs.pop(ref, None)
        try:
            result = ray.get(ref)
        except Exception as exc:  # classified by cause
            return oc.from_ray_error(exc)
        assert isinstance(result, oc.Outcome), type(result)
        return result

    def cancel(self, handle: Any, force: bool = False) -> None:
        """Stop an attempt: ``force=False`` asks it to stop (a one-process run through its
        stop file: a SIGINT, the trainer checkpoints and returns; a worker group through
        ``ray.cancel``), ``force=True`` kills its process."""
        import ray

        attempt = self._refs.get(handle)
        if not force and attempt is not None and attempt.resources.workers == 1:
            path = oc.stop_file(attempt.workdir, attempt.run_id, attempt.attempt)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
            return
        with contextlib.suppress(ValueError, TypeError):  # already finished
            ray.cancel(handle, force=force, recursive=True)


@dataclasses.dataclass
class _Remotes:
    run: Any = None
    run_fresh: Any = None
    group: Any = None


_REMOTES = _Remotes()


def _remote_run(fresh: bool) -> Any:
    import ray

    if fresh:
        if _REMOTES.run_fresh is None:
            _REMOTES.run_fresh = ray.remote(max_calls=1, max_retries=0)(oc.execute)
        return _REMOTES.run_fresh
    if _REMOTES.run is None:
        _REMOTES.run = ray.remote(max_calls=REUSE_CALLS, max_retries=0)(oc.execute)
    return _REMOTES.run


def _remote_group() -> Any:
    import ray

    if _REMOTES.group is None:
        _REMOTES.group = ray.remote(num_cpus=0, max_calls=1, max_retries=0)(run_group)
    return _REMOTES.group


START_TIMEOUT_VARIABLE = "RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S"
"""Ray Train's limit on the wait for a worker group's placement (it hands the variable on from
the process that calls ``fit`` to its controller)."""


def run_group(worker_fn: WorkerFunction, attempt: Attempt, use_gpu: bool) -> oc.Outcome:
    """Run an attempt as a Ray Train worker group (the body of the group's task, a fresh
    process)."""
    import os
    import time

    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer
    from ray.train.v2.api.config import FailureConfig  # ray.train's, typed as of Ray Train v2

    bounded = attempt.placement_seconds is not None
    if bounded:
        os.environ[START_TIMEOUT_VARIABLE] = f"{attempt.placement_seconds:g}"
    res = attempt.resources
    config = {
        "spec": attempt.spec,
        "run_id": attempt.run_id,
        "workdir": attempt.workdir,
        "store_url": attempt.store_url,
        "attempt": attempt.attempt,
    }
    per_worker = {"CPU": res.cpus_per_worker} | ({"GPU": res.gpus_per_worker} if use_gpu else {})
    trainer = TorchTrainer(
        worker_fn,
        train_loop_config=config,
        scaling_config=ScalingConfig(
            num_workers=res.workers, use_gpu=use_gpu, resources_per_worker=per_worker
        ),
        run_config=RunConfig(
            name=f"{attempt.run_id}-attempt{attempt.attempt}",
            storage_path=str(Path(attempt.workdir, "ray_train").resolve()),
            # Retries are the driver's; a group that cannot be placed in time (bounded) raises
            # instead of waiting again.
            failure_config=FailureConfig(
                max_failures=0,
                max_preemption_failures=0,
                controller_failure_limit=0 if bounded else -1,
            ),
        ),
    )
    start = time.monotonic()
    try:
        trainer.fit()
    except Exception as exc:  # classified by cause
        run_dir = Path(attempt.workdir, "runs", attempt.run_id)
        newer = fence.newer_attempt(run_dir, attempt.attempt)
        if newer is not None:  # whatever stopped it, the run is the newer attempt's now
            return oc.from_exception(fence.Superseded(run_dir, attempt.attempt, newer))
        return _group_failure(exc, attempt)
    result = Path(attempt.workdir, "runs", attempt.run_id, "result.json")
    summary = json.loads(result.read_text()) if result.exists() else {}
    return oc.Outcome(kind=oc.Kind.SUCCEEDED, summary=summary, seconds=time.monotonic() - start)


def _group_failure(exc: BaseException, attempt: Attempt) -> oc.Outcome:
    """Classify a worker group's failure: its placement timed out (the controller's
    ``WorkerGroupStartupTimeoutError``), or by its workers' errors (Ray Train's
    ``WorkerGroupError.worker_failures``: rank -> exception). A lost worker outranks the
    others' errors, which it typically caused; an error that another attempt would meet again
    (FATAL) outranks a lost worker."""
    controller = getattr(exc, "controller_failure", None)
    if type(controller).__name__ == "WorkerGroupStartupTimeoutError":
        return oc.Outcome(
            kind=oc.Kind.PREEMPTED,
            error=f"its {attempt.resources.workers} workers could not be placed within "
            f"{attempt.placement_seconds:g} s",
            unplaced=True,
        )
    failures = list(getattr(exc, "worker_failures", {}).values())
    if not failures:
        return oc.from_exception(exc)
    outcomes = [_worker_outcome(f) for f in failures]
    for kind in (oc.Kind.SUPERSEDED, oc.Kind.FATAL, oc.Kind.PREEMPTED, oc.Kind.ERROR):
        for outcome in outcomes:
            if outcome.kind is kind:
                return outcome
    return outcomes[0]


def _worker_outcome(exc: BaseException) -> oc.Outcome:
    if "HealthCheck" in type(exc).__name__ or "Died" in type(exc).__name__:
        return oc.Outcome(kind=oc.Kind.PREEMPTED, error=oc.one_line(exc))
    return oc.from_exception(exc)
