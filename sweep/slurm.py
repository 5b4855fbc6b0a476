"""``slscale sweep slurm``: one sbatch script that runs a sweep on a Ray cluster of its own.

The script asks SLURM for ``nodes`` nodes (one task each), starts a Ray head on the first node
and a Ray worker on each other one through ``srun`` (one job step per node), with Ray's token
authentication on and a token made for the job, waits until every node has joined, runs
``slscale sweep launch GRID --address HEAD ...`` in the batch shell and stops the Ray nodes when
it ends, however it ends. With ``requeue``, SLURM sends the batch shell SIGUSR1 a while before
the time limit; the script then stops the driver (which asks its runs to checkpoint and leaves
them PREEMPTED), and requeues the job, which launches the same sweep again: finished runs are
skipped, the others resume from their checkpoints.

:func:`sbatch_script` turns :class:`SlurmOptions` into the script's text (no side effects);
:func:`submit` writes it and hands it to ``sbatch``. The script calls this module on the nodes
(``python -m slscale.sweep.slurm``) to find the head's address, start a Ray node on free ports
and wait for the nodes to join.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from slscale.errors import ConfigError, SlscaleError

TIME_FORMATS = (
    "MINUTES, MINUTES:SECONDS, HOURS:MINUTES:SECONDS, DAYS-HOURS, DAYS-HOURS:MINUTES or "
    "DAYS-HOURS:MINUTES:SECONDS"
)
_TIME = re.compile(
    r"(?:(?P<d>\d+)-(?P<dh>\d+)(?::(?P<dm>\d+)(?::(?P<ds>\d+))?)?)"
    r"|(?P<h>\d+):(?P<hm>\d+):(?P<hs>\d+)"
    r"|(?P<m>\d+)(?::(?P<ms>\d+))?"
)
MAX_NOTICE_SECONDS = 65535
"""The longest warning ``sbatch --signal`` accepts."""
HELPER = "slscale.sweep.slurm"
"""This module, as the script runs it on the nodes."""


def parse_time(text: str) -> int:
    """Seconds of a SLURM time limit (``sbatch --time`` formats); ConfigError if malformed."""
    match = _TIME.fullmatch(text.strip())
    if match is None:
        raise ConfigError(f"--time {text!r}: not a SLURM time; use {TIME_FORMATS}")
    g = {k: int(v) for k, v in match.groupdict().items() if v is not None}
    days, hours = g.get("d", 0), g.get("dh", g.get("h", 0))
    minutes = g.get("dm", g.get("hm", g.get("m", 0)))
    seconds = g.get("ds", g.get("hs", g.get("ms", 0)))
    total = ((days * 24 + hours) * 60 + minutes) * 60 + seconds
    if total <= 0:
        raise ConfigError(f"--time {text!r}: must be longer than zero")
    return total


@dataclasses.dataclass(frozen=True, kw_only=True)
class SlurmOptions:
    """What the sbatch script asks SLURM for and what it runs."""

    grid: str
    """The grid (YAML path, shipped name or module:function), as ``sweep launch`` takes it."""
    launch_args: tuple[str, ...]
    """Options of ``sweep launch`` (``--workdir`` among them), passed through as they are."""
    workdir: str
    """The study folder (absolute): the script, its log and the Ray nodes' logs go in
    ``<workdir>/slurm/``."""
    nodes: int
    """Nodes of the allocation: one Ray node each, the first the head."""
    gpus_per_node: int = 0
    """GPUs asked on each node and offered by its Ray node."""
    cpus_per_node: int | None = None
    """CPUs asked on each node and offered by its Ray node; None: whole nodes."""
    partition: str | None = None
    time: str | None = None
    """Time limit in a ``sbatch --time`` format."""
    account: str | None = None
    requeue: bool = False
    """Requeue the job when the time limit nears (and after a node failure)."""
    requeue_notice: int = 300
    """Seconds before the time limit at which the driver is told to stop."""
    job_name: str = "slscale-sweep"
    python: str = sys.executable
    """The Python of the environment on the nodes (same path everywhere)."""
    chdir: str = "."
    """Folder the job runs in (relative paths of the launch options are from here)."""
    join_timeout: int = 300
    """Seconds the nodes have to join the head."""

    def __post_init__(self) -> None:
        self._check_sizes()
        if not self.job_name.strip():
            raise ConfigError("--job-name: must not be empty")
        limit = parse_time(self.time) if self.time is not None else None
        if self.requeue:
            _check_notice(self.requeue_notice, limit, self.time)
        for name, value in self._values():
            if "\n" in value or "\r" in value or "\0" in value:
                raise ConfigError(f"{name} {value!r}: must be one line")

    def _check_sizes(self) -> None:
        if self.nodes < 1:
            raise ConfigError(f"--nodes {self.nodes}: need at least 1 node")
        if self.gpus_per_node < 0:
            raise ConfigError(f"--gpus-per-node {self.gpus_per_node}: must be 0 or more")
        if self.cpus_per_node is not None and self.cpus_per_node < 1:
            raise ConfigError(f"--cpus-per-node {self.cpus_per_node}: must be 1 or more")
        if self.join_timeout < 1:
            raise ConfigError(f"--join-timeout {self.join_timeout}: must be 1 s or more")

    def _values(self) -> list[tuple[str, str]]:
        named = [
            ("GRID", self.grid),
            ("--workdir", self.workdir),
            ("--partition", self.partition),
            ("--time", self.time),
            ("--account", self.account),
            ("--job-name", self.job_name),
            ("--python", self.python),
        ]
        launch = [("launch option", a) for a in self.launch_args]
        return [(n, v) for n, v in named if v is not None] + launch

    @property
    def logs(self) -> str:
        """The folder of the script, the job's log and the Ray nodes' logs."""
        return os.path.join(self.workdir, "slurm")

    @property
    def output(self) -> str:
        """The job's log (``%j``: the job id)."""
        return os.path.join(self.logs, f"{_file_name(self.job_name)}-%j.out")

    @property
    def script_path(self) -> str:
        """Where :func:`submit` writes the script by default."""
        return os.path.join(self.logs, f"{_file_name(self.job_name)}.sbatch")


def _check_notice(notice: int, limit: int | None, time_text: str | None) -> None:
    if not 1 <= notice <= MAX_NOTICE_SECONDS:
        raise ConfigError(
            f"--requeue-notice {notice}: must be between 1 and {MAX_NOTICE_SECONDS} seconds"
        )
    if limit is not None and notice >= limit:
        raise ConfigError(
            f"--requeue-notice {notice} s is not shorter than --time {time_text} "
            f"({limit} s); lower it or ask for more time"
        )


def _file_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "job"


# ---------------------------------------------------------------------------- the script


def sbatch_script(options: SlurmOptions) -> str:
    """The text of the sbatch script for ``options``."""
    return "\n".join([*_header(options), "", *_settings(options), _BODY])


def _header(o: SlurmOptions) -> list[str]:
    q = shlex.quote
    lines = [
        "#!/bin/bash",
        f"#SBATCH --job-name={q(o.job_name)}",
        f"#SBATCH --nodes={o.nodes}",
        "#SBATCH --ntasks-per-node=1",
    ]
    if o.gpus_per_node > 0:
        lines.append(f"#SBATCH --gpus-per-node={o.gpus_per_node}")
    if o.cpus_per_node is not None:
        lines.append(f"#SBATCH --cpus-per-task={o.cpus_per_node}")
    else:
        lines.append("#SBATCH --exclusive")
    for flag, value in (("partition", o.partition), ("time", o.time), ("account", o.account)):
        if value is not None:
            lines.append(f"#SBATCH --{flag}={q(value)}")
    if o.requeue:
        lines += ["#SBATCH --requeue", f"#SBATCH --signal=B:USR1@{o.requeue_notice}"]
    lines += [
        f"#SBATCH --output={q(o.output)}",
        "#SBATCH --open-mode=append",
        f"#SBATCH --chdir={q(o.chdir)}",
        "#",
        "# A Ray cluster on this allocation (head on the first node, a worker on each other",
        "# one), then `slscale sweep launch` on it. Written by `slscale sweep slurm`.",
    ]
    return lines


def _settings(o: SlurmOptions) -> list[str]:
    q = shlex.quote
    cpus = str(o.cpus_per_node) if o.cpus_per_node is not None else '"$SLURM_CPUS_ON_NODE"'
    step = f"--nodes=1 --ntasks=1 --cpus-per-task={cpus}"
    if o.gpus_per_node > 0:
        step += f" --gpus-per-node={o.gpus_per_node}"
    launch = " ".join(q(a) for a in o.launch_args)
    return [
        f"PY={q(o.python)}",
        f"GRID={q(o.grid)}",
        f"LAUNCH=({launch})",
        f"NODES={o.nodes}",
        f"JOIN_TIMEOUT={o.join_timeout}",
        f"LOGS={q(o.logs)}/ray-$SLURM_JOB_ID",
        f"STEP=({step})",
        f"RAY_NODE=(--num-cpus={cpus} --num-gpus={o.gpus_per_node}"
        ' --temp-dir="/tmp/slscale-ray-$SLURM_JOB_ID")',
        f"REQUEUE={int(o.requeue)}",
    ]


_BODY = r"""
set -uo pipefail
say() { echo "slscale-slurm: $(date '+%F %T') $*"; }

# Ray's token authentication, with a token made for this job: srun passes the environment to
# the nodes and the driver, and nobody without the token can submit work to this cluster.
export RAY_AUTH_MODE=token
RAY_AUTH_TOKEN=$("$PY" -c 'import secrets; print(secrets.token_hex(32))') || exit 1
export RAY_AUTH_TOKEN

any_alive() {
  local pid
  for pid in "$@"; do kill -0 "$pid" 2>/dev/null && return 0; done
  return 1
}

steps=()
driver=""
notice=0
ending=0
stop_ray() {
  ((${#steps[@]})) || return 0
  say "stopping the Ray nodes"
  kill -TERM "${steps[@]}" 2>/dev/null
  for _ in $(seq 60); do
    any_alive "${steps[@]}" || break
    sleep 0.5
  done
  kill -KILL "${steps[@]}" 2>/dev/null
  wait "${steps[@]}" 2>/dev/null
  steps=()
}
on_notice() {
  notice=1
  say "the time limit is near: stopping the sweep (its runs checkpoint) to requeue the job"
  if [[ -n $driver ]]; then kill -TERM "$driver" 2>/dev/null; fi
}
trap stop_ray EXIT
trap on_notice USR1
# scancel and the time limit send SIGTERM to every process of the job, the driver included.
trap 'ending=1; say "SIGTERM: the job is ending; the driver stops its runs"' TERM

start_node() {  # HOST RAY-START-OPTIONS...
  local host=$1
  shift
  srun "${STEP[@]}" -w "$host" "$PY" -m slscale.sweep.slurm ray-node -- \
    "${RAY_NODE[@]}" "$@" >>"$LOGS/ray-$host.log" 2>&1 &
  steps+=($!)
}

mkdir -p "$LOGS" || exit 1
mapfile -t hosts < <(scontrol show hostnames "$SLURM_JOB_NODELIST")
head_address=$("$PY" -m slscale.sweep.slurm head-address) || exit 1
say "job $SLURM_JOB_ID (restart ${SLURM_RESTART_COUNT:-0}): Ray head $head_address on" \
  "${hosts[0]}, workers on ${hosts[*]:1}; node logs in $LOGS"
start_node "${hosts[0]}" --head --node-ip-address="${head_address%:*}" \
  --port="${head_address##*:}" --include-dashboard=false
for host in "${hosts[@]:1}"; do
  start_node "$host" --address="$head_address"
done
"$PY" -m slscale.sweep.slurm wait-for-nodes "$head_address" "$NODES" "$JOIN_TIMEOUT" || exit 1

status=130
if ((!notice && !ending)); then
  say "launching: slscale sweep launch $GRID --address $head_address ${LAUNCH[*]}"
  "$PY" -m slscale.cli sweep launch "$GRID" --address "$head_address" "${LAUNCH[@]}" &
  driver=$!
  while :; do
    wait "$driver"
    status=$?
    kill -0 "$driver" 2>/dev/null || break
  done
  say "the driver ended with status $status"
fi
if ((REQUEUE && notice && status != 0)); then
  stop_ray
  say "requeueing job $SLURM_JOB_ID: the next start resumes the sweep"
  scontrol requeue "$SLURM_JOB_ID"
fi
exit "$status"
"""


# ---------------------------------------------------------------------------- submitting


def write_script(options: SlurmOptions, path: str | os.PathLike[str]) -> Path:
    """Write the script to ``path`` (and create the folder of the job's log)."""
    target = Path(path)
    make_log_folder(options)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(sbatch_script(options))
    except OSError as exc:
        raise SlscaleError(f"cannot write the sbatch script {target}: {exc.strerror}") from None
    return target


def make_log_folder(options: SlurmOptions) -> None:
    """Create ``<workdir>/slurm/``: SLURM does not create the folder of a job's log, and a job
    whose log cannot be opened fails without a word."""
    try:
        Path(options.logs).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SlscaleError(f"cannot create {options.logs}: {exc.strerror}") from None


def submit(options: SlurmOptions, path: str | os.PathLike[str] | None = None) -> str:
    """Write the script (to ``path``, by default ``<workdir>/slurm/<job name>.sbatch``), submit
    it with ``sbatch`` and return the job id."""
    script = write_script(options, path or options.script_path)
    sbatch = shutil.which("sbatch")
    if sbatch is None:
        raise SlscaleError(
            f"sbatch not found on PATH; the script is in {script}: submit it from a SLURM "
            "login node"
        )
    done = subprocess.run([sbatch, "--parsable", str(script)], capture_output=True, text=True)
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines() or ["no output"]
        raise SlscaleError(f"sbatch {script} failed ({done.returncode}): {lines[-1]}")
    return done.stdout.strip().split(";")[0]


# ---------------------------------------------------------------------------- the command


def add_parser(ssub: Any) -> None:
    """Register ``sweep slurm``."""
    p = ssub.add_parser(
        "slurm",
        help="an sbatch script running a sweep on a Ray cluster of its own",
        description="Print (or write, or submit) an sbatch script that starts a Ray cluster on "
        "its allocation and runs `slscale sweep launch GRID` on it. Options after `--` are "
        "passed to `sweep launch` (--workdir is required). Creates <workdir>/slurm/ for the "
        "job's logs.",
    )
    p.add_argument("grid", help="grid YAML, shipped grid name, or module:function")
    p.add_argument("launch_args", nargs="+", metavar="-- LAUNCH_OPTIONS")
    p.add_argument("--nodes", type=int, required=True, help="nodes (one Ray node each)")
    p.add_argument("--gpus-per-node", type=int, required=True, help="GPUs per node (0: none)")
    p.add_argument("--cpus-per-node", type=int, help="CPUs per node (default: whole nodes)")
    p.add_argument("--partition", help="SLURM partition")
    p.add_argument("--time", help="time limit (sbatch --time: 90, 4:00:00, 2-00:00:00)")
    p.add_argument("--account", help="SLURM account")
    p.add_argument(
        "--requeue",
        action="store_true",
        help="near the time limit, stop the sweep (runs checkpoint) and requeue the job",
    )
    p.add_argument(
        "--requeue-notice",
        type=int,
        default=300,
        metavar="SECONDS",
        help="how long before the time limit the sweep is stopped (default 300)",
    )
    p.add_argument("--job-name", default="slscale-sweep", help="job name (default slscale-sweep)")
    p.add_argument(
        "--python", default=sys.executable, help="Python on the nodes (default: this one)"
    )
    p.add_argument(
        "--join-timeout",
        type=int,
        default=300,
        metavar="SECONDS",
        help="how long the nodes have to join the Ray head (default 300)",
    )
    where = p.add_mutually_exclusive_group()
    where.add_argument("--out", metavar="FILE", help="write the script to FILE")
    where.add_argument(
        "--submit",
        action="store_true",
        help="write it to <workdir>/slurm/<job name>.sbatch and submit it; print the job id",
    )
    p.set_defaults(func=cmd_slurm)


def cmd_slurm(args: argparse.Namespace) -> int:
    """``slscale sweep slurm``."""
    options = options_from_args(args)
    if args.submit:
        job = submit(options)
        print(job)
        print(
            f"slscale: submitted job {job}: script {options.script_path}, log "
            f"{options.output.replace('%j', job)}",
            file=sys.stderr,
        )
    elif args.out:
        write_script(options, args.out)
        print(f"wrote {args.out}", file=sys.stderr)
    else:
        make_log_folder(options)
        print(sbatch_script(options), end="")
    return 0


def options_from_args(args: argparse.Namespace) -> SlurmOptions:
    """Options of the script from the command line; checks the grid and the launch options
    here, not hours later on the cluster."""
    launch = _checked_launch_args(args.grid, list(args.launch_args))
    return SlurmOptions(
        grid=_grid_reference(args.grid),
        launch_args=tuple(launch.args),
        workdir=os.path.abspath(launch.workdir),
        nodes=args.nodes,
        gpus_per_node=args.gpus_per_node,
        cpus_per_node=args.cpus_per_node,
        partition=args.partition,
        time=args.time,
        account=args.account,
        requeue=args.requeue,
        requeue_notice=args.requeue_notice,
        job_name=args.job_name,
        python=args.python,
        chdir=os.getcwd(),
        join_timeout=args.join_timeout,
    )


def _grid_reference(grid: str) -> str:
    """The grid as the job names it: a file by its absolute path, anything else as given."""
    from slscale.sweep.io import load_grid

    load_grid(grid)  # a missing or broken grid fails here, with its own message
    return os.path.abspath(grid) if os.path.isfile(grid) else grid


@dataclasses.dataclass(frozen=True)
class _LaunchArgs:
    args: list[str]
    workdir: str


class _RaisingParser(argparse.ArgumentParser):
    """An argparse parser whose errors are SlscaleErrors (one line, no usage text)."""

    def error(self, message: str) -> Any:
        raise SlscaleError(f"options after --: {message} (they are `sweep launch` options)")


def _checked_launch_args(grid: str, args: list[str]) -> _LaunchArgs:
    """Parse ``args`` as ``sweep launch`` does; refuse the options the script sets."""
    from slscale.sweep.sweep_commands import _launch_parser

    parser = _RaisingParser(prog="slscale sweep", add_help=False)
    _launch_parser(parser.add_subparsers(dest="command"))
    parsed = parser.parse_args(["launch", grid, *args])
    if parsed.address is not None:
        raise SlscaleError("--address after --: the script sets it (its own Ray cluster)")
    if parsed.num_cpus is not None or parsed.dry_run:
        flag = "--num-cpus" if parsed.num_cpus is not None else "--dry-run"
        raise SlscaleError(f"{flag} after --: not for a SLURM job (its Ray cluster is the job's)")
    return _LaunchArgs(args=args, workdir=parsed.workdir)


# ---------------------------------------------------------------------------- on the nodes


def free_port() -> int:
    """A TCP port that nothing on this host listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("", 0))
        return int(sock.getsockname()[1])


def head_address() -> str:
    """``IP:PORT`` for a Ray head on this host: the address Ray would advertise, a free port."""
    import ray.util

    return f"{ray.util.get_node_ip_address()}:{free_port()}"


def ray_node_command(ray_args: Sequence[str]) -> list[str]:
    """``ray start --block RAY_ARGS``, with the ports Ray would otherwise fix (dashboard agent,
    metrics, runtime env agent, client server) set to free ones: another job's Ray on the
    same host does not clash with this one."""
    ray = str(Path(sys.executable).with_name("ray"))
    ports = ["dashboard-agent-listen-port", "metrics-export-port", "runtime-env-agent-port"]
    if "--head" in ray_args:
        ports.append("ray-client-server-port")
    free = [f"--{name}={free_port()}" for name in ports]
    return [ray, "start", "--block", "--disable-usage-stats", *ray_args, *free]


def wait_for_nodes(address: str, count: int, timeout: float) -> int:
    """Wait until the Ray cluster at ``address`` has ``count`` live nodes; return how long it
    took (s). SlscaleError after ``timeout`` seconds."""
    started = time.monotonic()
    deadline = started + timeout
    _wait_for_port(address, deadline, timeout)
    import ray

    ray.init(address=address, include_dashboard=False, log_to_driver=False)
    try:
        while True:
            alive = sum(1 for n in ray.nodes() if n.get("Alive"))
            if alive >= count:
                return round(time.monotonic() - started)
            if time.monotonic() > deadline:
                raise SlscaleError(
                    f"{alive} of {count} Ray nodes joined the head at {address} in "
                    f"{timeout:g} s; see the nodes' logs (ray-<host>.log)"
                )
            time.sleep(1.0)
    finally:
        ray.shutdown()


def _wait_for_port(address: str, deadline: float, timeout: float) -> None:
    host, _, port = address.rpartition(":")
    while True:
        try:
            with socket.create_connection((host, int(port)), timeout=2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise SlscaleError(
                    f"the Ray head did not listen on {address} within {timeout:g} s; see its "
                    "log (ray-<first host>.log)"
                ) from None
            time.sleep(0.5)


def main(argv: Sequence[str] | None = None) -> int:
    """The script's helpers: ``head-address``, ``ray-node ARGS``, ``wait-for-nodes``."""
    parser = argparse.ArgumentParser(prog=f"python -m {HELPER}")
    sub = parser.add_subparsers(dest="what", required=True)
    sub.add_parser("head-address")
    node = sub.add_parser("ray-node")
    node.add_argument("ray_args", nargs="*", help="options of ray start (after --)")
    wait = sub.add_parser("wait-for-nodes")
    wait.add_argument("address")
    wait.add_argument("count", type=int)
    wait.add_argument("timeout", type=float)
    args = parser.parse_args(argv)
    try:
        if args.what == "head-address":
            print(head_address())
        elif args.what == "ray-node":
            command = ray_node_command(args.ray_args)
            sys.stdout.flush()
            os.execv(command[0], command)
        else:
            took = wait_for_nodes(args.address, args.count, args.timeout)
            print(f"slscale-slurm: {args.count} Ray nodes up after {took} s", flush=True)
    except SlscaleError as exc:
        print(f"slscale: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
