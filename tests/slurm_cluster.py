"""A throwaway SLURM cluster on this machine, for tests.

``slurm_cluster()`` writes a ``slurm.conf`` into a temporary folder, starts a MUNGE daemon with
a key of its own, ``slurmctld`` and one ``slurmd`` per node (``slurmd -N NAME``: several
nodes on this one host, each on its own port), all with ``SLURM_CONF`` pointing at that file,
waits until ``sinfo`` shows every node idle, and yields a :class:`SlurmCluster` whose ``env``
makes ``sbatch``, ``squeue``, ``scancel`` ... talk to it. On exit it cancels whatever jobs are
left, stops the daemons (only the processes it started) and deletes the folder.

The daemons run as root (they start the jobs' processes): the cluster needs root, and the
SLURM and MUNGE binaries (Debian: ``apt-get install slurm-wlm munge``). It runs without cgroups
(process tracking by parentage, no task plugin, no accounting), as in a container. Job ids
start at a random number, so that paths named after a job id (``/tmp/slscale-ray-<id>``) do
not meet those of an earlier cluster.

Use it from any test folder (with ``tests/`` on ``sys.path``)::

    from slurm_cluster import require_slurm, slurm_cluster

    @pytest.fixture(scope="module")
    def slurm():
        require_slurm()
        with slurm_cluster(nodes=2) as cluster:
            yield cluster
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from ci_env import missing

BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scancel", "scontrol", "sinfo")
MISSING_REASON = (
    "SLURM and MUNGE (munged, slurmctld, slurmd, sbatch, squeue, scancel, scontrol, sinfo) not "
    "found on PATH or in /usr/sbin, or not running as root (the daemons start jobs as their "
    "users); install them (Debian: apt-get install slurm-wlm munge)"
)
_SEARCH = ("/usr/sbin", "/usr/bin", "/sbin", "/bin")
FINISHED = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY")
"""Job states after which a job runs no more (unless requeued)."""


def find_binary(name: str) -> str | None:
    """The path of ``name`` on PATH or in the system folders, or None."""
    return shutil.which(name) or shutil.which(name, path=os.pathsep.join(_SEARCH))


def slurm_available() -> bool:
    """Whether this machine can run :func:`slurm_cluster` (binaries present, root)."""
    return os.geteuid() == 0 and all(find_binary(name) for name in BINARIES)


def require_slurm() -> None:
    """Skip the calling test when SLURM cannot run here, except under CI (``CI=true``), where
    .ci/run installs it: there it fails instead of skipping silently."""
    if not slurm_available():
        missing(MISSING_REASON)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclasses.dataclass
class SlurmCluster:
    """A running cluster: its folder, its config, the environment its commands need."""

    root: Path
    conf: Path
    nodes: list[str]
    env: dict[str, str]

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a SLURM command (``sbatch``, ``scontrol`` ...) against this cluster."""
        command = [find_binary(args[0]) or args[0], *args[1:]]
        done = subprocess.run(command, capture_output=True, text=True, env=self.env, timeout=60)
        if check and done.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed ({done.returncode}): {done.stderr}")
        return done

    def job(self, job_id: str) -> dict[str, str]:
        """``scontrol show job`` as a dict (JobState, Restarts, ...); {} once it is gone."""
        done = self.run("scontrol", "show", "job", "--oneliner", job_id, check=False)
        if done.returncode != 0:
            return {}
        fields = (item.partition("=") for item in done.stdout.split())
        return {key: value for key, _, value in fields}

    def state(self, job_id: str) -> str:
        """The job's state (PENDING, RUNNING, COMPLETED, ...; GONE once forgotten)."""
        return self.job(job_id).get("JobState", "GONE")

    def wait_for_state(self, job_id: str, states: tuple[str, ...], timeout: float) -> str:
        """Wait until the job is in one of ``states``; return that state."""
        deadline = time.monotonic() + timeout
        while True:
            state = self.state(job_id)
            if state in states:
                return state
            if time.monotonic() > deadline:
                raise AssertionError(f"job {job_id} still {state} after {timeout} s, not {states}")
            time.sleep(0.5)

    def wait_until_finished(self, job_id: str, timeout: float) -> str:
        """Wait until the job has finished; return its final state."""
        return self.wait_for_state(job_id, (*FINISHED, "GONE"), timeout)


@contextlib.contextmanager
def slurm_cluster(nodes: int = 2, cpus: int = 2) -> Iterator[SlurmCluster]:
    """Start MUNGE, slurmctld and ``nodes`` slurmd of ``cpus`` CPUs each; yield the cluster."""
    if not slurm_available():
        raise RuntimeError(MISSING_REASON)
    root = Path(tempfile.mkdtemp(prefix="slscale-slurm-"))
    names = [f"node{i + 1}" for i in range(nodes)]
    cluster = SlurmCluster(root=root, conf=root / "slurm.conf", nodes=names, env={})
    cluster.env = {**os.environ, "SLURM_CONF": str(cluster.conf)}
    daemons: list[subprocess.Popen[bytes]] = []
    try:
        _write_config(cluster, cpus)
        daemons.append(_start_munged(root))
        daemons.append(_start(cluster, "slurmctld", ["-D", "-i"]))
        for name in names:
            (root / "spool" / name).mkdir(parents=True)
            daemons.append(_start(cluster, "slurmd", ["-D", "-N", name], log=f"slurmd-{name}"))
        _wait_for_idle(cluster, daemons, timeout=60)
        yield cluster
    finally:
        with contextlib.suppress(Exception):
            _cancel_all(cluster)
        for process in reversed(daemons):
            _stop(process)
        shutil.rmtree(root, ignore_errors=True)


def _write_config(cluster: SlurmCluster, cpus: int) -> None:
    root = cluster.root
    (root / "state").mkdir()
    node_lines = [
        f"NodeName={name} NodeHostname=localhost NodeAddr=127.0.0.1 Port={free_port()} "
        f"CPUs={cpus} RealMemory=1000 State=UNKNOWN"
        for name in cluster.nodes
    ]
    settings = {
        "ClusterName": "slscale-test",
        "SlurmctldHost": "localhost(127.0.0.1)",
        "SlurmctldPort": free_port(),
        "AuthType": "auth/munge",
        "CredType": "cred/munge",
        "AuthInfo": f"socket={root / 'munge.socket'}",
        "SlurmUser": "root",
        "SlurmdUser": "root",
        "StateSaveLocation": root / "state",
        "SlurmdSpoolDir": f"{root / 'spool'}/%n",
        "SlurmctldPidFile": root / "slurmctld.pid",
        "SlurmdPidFile": f"{root}/slurmd-%n.pid",
        "SlurmctldLogFile": root / "slurmctld.log",
        "SlurmdLogFile": f"{root}/slurmd-%n.log",
        # No cgroups in a container: track a job's processes by parentage, bind nothing.
        "ProctrackType": "proctrack/linuxproc",
        "TaskPlugin": "task/none",
        "JobAcctGatherType": "jobacct_gather/none",
        "AccountingStorageType": "accounting_storage/none",
        "SwitchType": "switch/none",
        "MpiDefault": "none",
        "ReturnToService": 2,
        "SchedulerType": "sched/builtin",
        "SelectType": "select/cons_tres",
        "SelectTypeParameters": "CR_CPU",
        "SlurmdParameters": "config_overrides",
        "KillWait": 10,
        "FirstJobId": random.randrange(100_000, 10_000_000),
    }
    lines = [f"{key}={value}" for key, value in settings.items()]
    partition = f"PartitionName=test Nodes={','.join(cluster.nodes)} Default=YES State=UP"
    cluster.conf.write_text("\n".join([*lines, *node_lines, partition, ""]))


def _start_munged(root: Path) -> subprocess.Popen[bytes]:
    key = root / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    args = [
        "-F", "--force", f"--key-file={key}", f"--socket={root / 'munge.socket'}",
        f"--pid-file={root / 'munged.pid'}", f"--seed-file={root / 'munged.seed'}",
        f"--log-file={root / 'munged.log'}",
    ]  # fmt: skip
    process = _popen([find_binary("munged") or "munged", *args], root / "munged.out", None)
    deadline = time.monotonic() + 20
    while not (root / "munge.socket").exists():
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"munged did not start: {_tail(root / 'munged.log')}")
        time.sleep(0.1)
    return process


def _start(
    cluster: SlurmCluster, daemon: str, args: list[str], log: str | None = None
) -> subprocess.Popen[bytes]:
    command = [find_binary(daemon) or daemon, *args]
    return _popen(command, cluster.root / f"{log or daemon}.out", cluster.env)


def _popen(command: list[str], out: Path, env: dict[str, str] | None) -> subprocess.Popen[bytes]:
    """Start a daemon in the foreground, in a session of its own, its output to ``out``."""
    with out.open("ab") as fh:
        return subprocess.Popen(
            command, stdout=fh, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )


def _wait_for_idle(
    cluster: SlurmCluster, daemons: list[subprocess.Popen[bytes]], timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    states = ""
    while time.monotonic() < deadline:
        dead = [str(p.args) for p in daemons if p.poll() is not None]
        if dead:
            raise RuntimeError(f"{dead[0]} exited: {_logs(cluster.root)}")
        done = cluster.run("sinfo", "--noheader", "--Node", "--format=%N %t", check=False)
        states = done.stdout.strip()
        rows = dict(line.split() for line in states.splitlines() if len(line.split()) == 2)
        if sorted(rows) == sorted(cluster.nodes) and set(rows.values()) == {"idle"}:
            return
        time.sleep(0.3)
    raise RuntimeError(f"nodes not idle after {timeout} s ({states!r}): {_logs(cluster.root)}")


def _cancel_all(cluster: SlurmCluster) -> None:
    """Cancel every job still known and wait (up to a minute) until none runs."""
    jobs = cluster.run("squeue", "--noheader", "--format=%i", check=False).stdout.split()
    if not jobs:
        return
    cluster.run("scancel", *jobs, check=False)
    for job in jobs:
        with contextlib.suppress(AssertionError):
            cluster.wait_until_finished(job, timeout=60)


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM a daemon started here, SIGKILL it after 10 s."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def _tail(path: Path, chars: int = 1500) -> str:
    return path.read_text(errors="replace")[-chars:] if path.exists() else f"(no {path.name})"


def _logs(root: Path) -> str:
    return "\n".join(f"--- {p.name}\n{_tail(p)}" for p in sorted(root.glob("*.log")))
