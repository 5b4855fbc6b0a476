"""Helpers of the cluster tests: a two-node Ray cluster on one machine, and a run function
that records the node each attempt ran on.

Each node is one ``ray start --block`` process started in a session of its own; every process
of the node (GCS, raylet, agents, and the workers, which move to process groups of their own)
stays in that session, so a node is killed — or shut down at the end — by signalling exactly
the processes of that session, never by ``ray stop`` (which would stop every Ray instance of
the machine).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from slscale.sweep.scheduler.runners import SyntheticRun

RAY = str(Path(sys.executable).with_name("ray"))
NODES_FILE = "nodes.jsonl"
EVERY = 5
"""Checkpoint cadence of the synthetic runs of the cluster tests."""
# Node death is noticed after a few failed health checks; keep that short (defaults: 3 s x 5).
FAST_HEALTH_CHECKS = {
    "RAY_health_check_period_ms": "500",
    "RAY_health_check_timeout_ms": "1000",
    "RAY_health_check_failure_threshold": "3",
}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def node_env(pythonpath: str) -> dict[str, str]:
    """Environment of the nodes and drivers: no auth token, one thread, the helpers importable."""
    path = os.pathsep.join(p for p in (pythonpath, os.environ.get("PYTHONPATH", "")) if p)
    return {
        **os.environ,
        **FAST_HEALTH_CHECKS,
        "RAY_AUTH_MODE": "disabled",
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": path,
    }


@dataclasses.dataclass
class RayNode:
    """One ``ray start --block`` process and the process group it leads."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def kill(self) -> None:
        """SIGKILL every process of this node at once (a machine lost), and reap the leader.
        Ray's worker processes put themselves in process groups of their own, in the node's
        session: the whole session is signalled, or they would train on for seconds."""
        self._signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self, grace_seconds: float = 5.0) -> None:
        """SIGTERM the node's processes, then SIGKILL whatever is left after
        ``grace_seconds``."""
        self._signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=grace_seconds)
        self._signal(signal.SIGKILL)  # workers the leader left behind
        self.process.wait(timeout=30)
        deadline = time.monotonic() + 30
        while self.session_pids() and time.monotonic() < deadline:  # until init reaps them
            time.sleep(0.1)

    def session_pids(self) -> list[int]:
        """Live (not zombie) processes still in this node's session (its leader's group and
        the groups of its workers)."""
        out = subprocess.run(["ps", "-e", "-o", "pid=,sid=,stat="], capture_output=True, text=True)
        rows = (line.split() for line in out.stdout.splitlines())
        leader = self.process.pid
        return [int(p) for p, sid, state in rows if int(sid) == leader and state[0] != "Z"]

    def _signal(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, sig)
        for pid in self.session_pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)


def start_node(
    name: str, env: dict[str, str], logdir: Path, head_port: int, head: bool, temp_dir: str
) -> RayNode:
    """Start a node offering the custom resource ``name`` (1 CPU) in a new process group."""
    common = [
        "--block",
        "--node-ip-address=127.0.0.1",
        "--num-cpus=1",
        f"--resources={json.dumps({name: 1})}",
        "--disable-usage-stats",
        f"--dashboard-agent-listen-port={free_port()}",
        f"--metrics-export-port={free_port()}",
        f"--runtime-env-agent-port={free_port()}",
        f"--temp-dir={temp_dir}",
    ]
    role = (
        ["--head", f"--port={head_port}", "--include-dashboard=false"]
        if head
        else [f"--address=127.0.0.1:{head_port}"]
    )
    log = logdir / f"{name}.log"
    with log.open("wb") as fh:
        process = subprocess.Popen(
            [RAY, "start", *role, *common],
            stdout=fh,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    return RayNode(name=name, process=process, log=log)


def short_temp_dir() -> str:
    """A short Ray temp folder (its unix sockets must fit in 107 characters)."""
    return tempfile.mkdtemp(prefix="slr-", dir="/tmp")


def wait_for_nodes(address: str, names: set[str], timeout: float, env: dict[str, str]) -> None:
    """Wait until the cluster at ``address`` has live nodes offering each of ``names``."""
    script = (
        f"import json, ray; ray.init(address={address!r}, log_to_driver=False); "
        "print(json.dumps([sorted(n['Resources']) for n in ray.nodes() if n['Alive']]))"
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60
        )
        if out.returncode == 0:
            offered = {r for node in json.loads(out.stdout.splitlines()[-1]) for r in node}
            if names <= offered:
                return
        time.sleep(0.5)
    raise AssertionError(f"the cluster at {address} did not offer {sorted(names)} in {timeout} s")


@dataclasses.dataclass(frozen=True, kw_only=True)
class NodeRecordingRun:
    """:class:`SyntheticRun` (or the DeepSpeed trainer), noting first in ``<run dir>/nodes.jsonl``
    the attempt and the custom resources (``node_a``/``node_b``) of the Ray node it runs on."""

    step_seconds: float = 0.0
    """Sleep per step."""
    checkpoint_every_steps: int = 5
    """Checkpoint cadence."""
    trainer: dict[str, Any] | None = None
    """Runtime settings of the real trainer on the Markov toy data
    (:func:`~slscale.sweep.scheduler.runners.markov_trainer`); None: the synthetic run."""

    def __call__(
        self, spec: dict[str, Any], run_id: str, workdir: str, store_url: str, attempt: int
    ) -> dict[str, Any]:
        import ray

        node_id = ray.get_runtime_context().get_node_id()
        names = [
            sorted(r for r in n["Resources"] if r.startswith("node_"))
            for n in ray.nodes()
            if n["NodeID"] == node_id
        ]
        run_dir = Path(workdir, "runs", run_id)
        run_dir.mkdir(parents=True, exist_ok=True)
        record = {
            "attempt": attempt,
            "node_id": node_id,
            "node": names[0],
            "pid": os.getpid(),
            "ray_auth_mode": os.environ.get("RAY_AUTH_MODE"),
        }
        with (run_dir / NODES_FILE).open("a") as fh:
            fh.write(json.dumps(record) + "\n")
        if self.trainer is not None:
            from slscale.sweep.scheduler.runners import markov_trainer

            trainer = markov_trainer(
                **self.trainer, checkpoint_every_steps=self.checkpoint_every_steps
            )
            return trainer(spec, run_id, workdir, store_url, attempt)
        inner = SyntheticRun(
            step_seconds=self.step_seconds, checkpoint_every_steps=self.checkpoint_every_steps
        )
        return inner(spec, run_id, workdir, store_url, attempt)


def placements(workdir: Path, run_id: str) -> list[dict[str, Any]]:
    """Every attempt of a run with its node, in order."""
    path = workdir / "runs" / run_id / NODES_FILE
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def sweep_driver(
    workdir: Path,
    grid: Path,
    address: str,
    env: dict[str, str],
    run_fn_kwargs: Any = None,
    *options: str,
) -> Any:
    """``slscale sweep launch GRID --address ADDR`` as its own process (by default synthetic
    runs of 0.1 s a step, checkpointing every :data:`EVERY` steps)."""
    kwargs = run_fn_kwargs or {"step_seconds": 0.1, "checkpoint_every_steps": EVERY}
    command = [
        sys.executable, "-m", "slscale.cli", "sweep", "launch", str(grid),
        "--workdir", str(workdir), "--address", address, "--lease-seconds", "10",
        "--run-fn", "cluster_helpers:NodeRecordingRun", "--run-fn-kwargs", json.dumps(kwargs),
        *options,
    ]  # fmt: skip
    return subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )


def stored_steps(workdir: Path, rid: str) -> int:
    """Steps of the run in the store (the synthetic run writes each step at once)."""
    from sweep_run_helpers import curve

    return len(curve(workdir, rid))


def uninterrupted_curve(tmp_path: Path, spec: Any, rid: str) -> dict[int, float]:
    """The loss curve of the synthetic run ``rid`` trained in this process without a stop."""
    from sweep_run_helpers import curve

    from slscale.spec import spec_to_dict
    from slscale.store import open_store

    reference = tmp_path / f"reference-{rid}"
    with open_store(reference) as store:
        store.register({rid: spec_to_dict(spec)})
    run = SyntheticRun(checkpoint_every_steps=EVERY)
    run(spec_to_dict(spec), rid, str(reference), str(reference), 1)
    return curve(reference, rid)
