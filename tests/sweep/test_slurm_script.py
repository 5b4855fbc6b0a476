"""The sbatch script of ``slscale sweep slurm``: its header, the values it hands to bash (read
back by bash itself), its syntax, and the one-line errors of bad options. The script running
on a real SLURM cluster is tested in tests/cluster/test_slurm_real.py."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from slscale.cli import main
from slscale.errors import ConfigError, SlscaleError
from slscale.sweep import slurm
from slscale.sweep.slurm import SlurmOptions, parse_time, sbatch_script

BASH = shutil.which("bash") or "/bin/bash"
GRID = {
    "name": "tiny",
    "base": {
        "family": "llama",
        "modality": "textless",
        "arch": {
            "num_layers": 1,
            "hidden_size": 16,
            "num_heads": 2,
            "num_kv_heads": 1,
            "intermediate_size": 32,
            "vocab_size": 64,
        },
        "recipe": {"global_batch_size": 4, "context_length": 32, "lr": 3e-3},
    },
    "axes": {"seed": [1, 2], "tokens": [1280]},
}
SYNTHETIC = ["--run-fn", "slscale.sweep.scheduler.runners:SyntheticRun"]


@pytest.fixture
def grid(tmp_path: Path) -> Path:
    path = tmp_path / "my grids" / "grid one.yaml"
    path.parent.mkdir()
    path.write_text(yaml.safe_dump(GRID))
    return path


def options(**changes: object) -> SlurmOptions:
    base: dict[str, object] = {
        "grid": "/data/grid.yaml",
        "launch_args": ("--workdir", "/study"),
        "workdir": "/study",
        "nodes": 2,
    }
    return SlurmOptions(**{**base, **changes})  # type: ignore[arg-type]


def header(script: str) -> list[str]:
    return [line for line in script.splitlines() if line.startswith("#SBATCH")]


def bash_values(script: str, *expressions: str) -> list[str]:
    """What bash makes of the script's settings: each expression printed on its own line (a
    bash array expanded to one line per element)."""
    settings = script.split("\nset -uo pipefail")[0]
    program = settings + "\n" + "\n".join(f'printf "%s\\n" {e}' for e in expressions)
    env = {**os.environ, "SLURM_JOB_ID": "4242", "SLURM_CPUS_ON_NODE": "64"}
    done = subprocess.run([BASH, "-c", program], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


# ---------------------------------------------------------------------------- the header


def test_header_of_a_full_gpu_job():
    script = sbatch_script(
        options(
            nodes=4,
            gpus_per_node=8,
            cpus_per_node=96,
            partition="gpu",
            time="2-00:00:00",
            account="proj",
            requeue=True,
            requeue_notice=600,
            job_name="scaling",
        )
    )
    assert script.startswith("#!/bin/bash\n")
    assert header(script) == [
        "#SBATCH --job-name=scaling",
        "#SBATCH --nodes=4",
        "#SBATCH --ntasks-per-node=1",
        "#SBATCH --gpus-per-node=8",
        "#SBATCH --cpus-per-task=96",
        "#SBATCH --partition=gpu",
        "#SBATCH --time=2-00:00:00",
        "#SBATCH --account=proj",
        "#SBATCH --requeue",
        "#SBATCH --signal=B:USR1@600",
        "#SBATCH --output=/study/slurm/scaling-%j.out",
        "#SBATCH --open-mode=append",
        "#SBATCH --chdir=.",
    ]


def test_header_leaves_out_what_was_not_asked():
    lines = header(sbatch_script(options(nodes=1)))
    text = "\n".join(lines)
    for absent in ("--gpus-per-node", "--cpus-per-task", "--partition", "--time", "--account"):
        assert absent not in text
    assert "#SBATCH --requeue" not in lines and "--signal" not in text
    assert "#SBATCH --exclusive" in lines  # no CPU count: whole nodes
    assert "#SBATCH --nodes=1" in lines


def test_values_with_spaces_and_quotes_reach_bash_unchanged():
    tricky = '{"step_seconds": 0.1, "note": "it\'s $HOME"}'
    o = options(
        grid="/my grids/grid one.yaml",
        workdir="/my study",
        launch_args=("--workdir", "/my study", "--run-fn-kwargs", tricky),
        account="a b",
        job_name="my job",
        python="/opt/my env/bin/python",
    )
    script = sbatch_script(o)
    assert "#SBATCH --account='a b'" in header(script)
    assert "#SBATCH --job-name='my job'" in header(script)
    assert "#SBATCH --output='/my study/slurm/my_job-%j.out'" in header(script)
    assert bash_values(script, '"$GRID"', '"$PY"', '"$LOGS"', '"${LAUNCH[@]}"') == [
        "/my grids/grid one.yaml",
        "/opt/my env/bin/python",
        "/my study/slurm/ray-4242",
        "--workdir",
        "/my study",
        "--run-fn-kwargs",
        tricky,
    ]


def test_ray_nodes_are_one_srun_step_per_node_with_the_nodes_resources():
    script = sbatch_script(options(nodes=3, gpus_per_node=4, cpus_per_node=32))
    assert bash_values(script, '"${STEP[@]}"', '"${RAY_NODE[@]}"', '"$NODES"') == [
        "--nodes=1",
        "--ntasks=1",
        "--cpus-per-task=32",
        "--gpus-per-node=4",
        "--num-cpus=32",
        "--num-gpus=4",
        "--temp-dir=/tmp/slscale-ray-4242",
        "3",
    ]
    assert 'srun "${STEP[@]}" -w "$host" "$PY" -m slscale.sweep.slurm ray-node --' in script
    assert 'for host in "${hosts[@]:1}"; do' in script  # a worker on every other node
    assert '--head --node-ip-address="${head_address%:*}"' in script


def test_without_a_cpu_count_the_nodes_offer_the_cpus_slurm_gave():
    script = sbatch_script(options(gpus_per_node=0))
    assert bash_values(script, '"${STEP[@]}"', '"${RAY_NODE[@]}"') == [
        "--nodes=1",
        "--ntasks=1",
        "--cpus-per-task=64",
        "--num-cpus=64",
        "--num-gpus=0",
        "--temp-dir=/tmp/slscale-ray-4242",
    ]


def test_token_auth_waiting_launch_and_shutdown_are_in_the_script():
    script = sbatch_script(options(join_timeout=123))
    assert "export RAY_AUTH_MODE=token" in script and "export RAY_AUTH_TOKEN" in script
    assert bash_values(script, '"$JOIN_TIMEOUT"') == ["123"]
    assert 'wait-for-nodes "$head_address" "$NODES" "$JOIN_TIMEOUT" || exit 1' in script
    launch = 'sweep launch "$GRID" --address "$head_address" "${LAUNCH[@]}" &'
    assert launch in script
    assert "trap stop_ray EXIT" in script


def test_requeue_stops_the_driver_and_requeues_only_when_asked():
    with_requeue = sbatch_script(options(requeue=True))
    without = sbatch_script(options())
    assert bash_values(with_requeue, '"$REQUEUE"') == ["1"]
    assert bash_values(without, '"$REQUEUE"') == ["0"]
    assert "trap on_notice USR1" in with_requeue
    assert 'kill -TERM "$driver"' in with_requeue
    assert 'scontrol requeue "$SLURM_JOB_ID"' in with_requeue


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"requeue": True, "time": "4:00:00", "gpus_per_node": 8, "cpus_per_node": 16},
        {"launch_args": ("--workdir", "/a b", "--run-fn-kwargs", '{"x": "$(rm -rf /)"}')},
    ],
)
def test_the_script_is_valid_bash(tmp_path, changes):
    path = tmp_path / "job.sbatch"
    path.write_text(sbatch_script(options(**changes)))
    done = subprocess.run([BASH, "-n", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


# ---------------------------------------------------------------------------- time limits


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90", 5400),
        ("1:30", 90),
        ("2:00:00", 7200),
        ("1-0", 86400),
        ("1-2:3", 93780),
        ("1-02:03:04", 93784),
    ],
)
def test_slurm_time_formats(text, seconds):
    assert parse_time(text) == seconds


@pytest.mark.parametrize("text", ["", "1h", "1:2:3:4", "-5", "a-1", "1-", "0", "0:00"])
def test_bad_time_is_refused(text):
    with pytest.raises(ConfigError, match="--time"):
        parse_time(text)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"nodes": 0}, "--nodes 0: need at least 1 node"),
        ({"gpus_per_node": -1}, "--gpus-per-node -1: must be 0 or more"),
        ({"cpus_per_node": 0}, "--cpus-per-node 0: must be 1 or more"),
        ({"time": "4h"}, "--time '4h': not a SLURM time"),
        ({"requeue": True, "time": "5", "requeue_notice": 300}, "not shorter than --time 5"),
        ({"requeue": True, "requeue_notice": 70000}, "--requeue-notice 70000"),
        ({"job_name": " "}, "--job-name: must not be empty"),
        ({"partition": "gpu\n#SBATCH --x"}, "must be one line"),
    ],
)
def test_bad_options_are_refused(changes, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        options(**changes)


# ---------------------------------------------------------------------------- the command


def test_cli_prints_the_script_with_absolute_paths(grid, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = ["sweep", "slurm", str(grid.relative_to(tmp_path)), "--nodes", "2"]
    argv += ["--gpus-per-node", "1", "--", "--workdir", "my study", *SYNTHETIC]
    code, out, err = run_cli(argv, capsys)
    assert code == 0, err
    assert f"#SBATCH --chdir={tmp_path}" in header(out)
    values = bash_values(out, '"$GRID"', '"${LAUNCH[@]}"')
    assert values == [str(grid), "--workdir", "my study", *SYNTHETIC]
    assert (tmp_path / "my study" / "slurm").is_dir()  # SLURM does not create the log folder


def test_cli_writes_the_script_with_out(grid, tmp_path, capsys):
    target = tmp_path / "job.sbatch"
    argv = ["sweep", "slurm", str(grid), "--nodes", "1", "--gpus-per-node", "0", "--requeue"]
    argv += ["--out", str(target), "--", "--workdir", str(tmp_path / "w"), *SYNTHETIC]
    code, out, err = run_cli(argv, capsys)
    assert code == 0, err
    assert out == ""
    assert "#SBATCH --signal=B:USR1@300" in header(target.read_text())


def test_submit_without_sbatch_says_where_the_script_is(grid, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    workdir = tmp_path / "w"
    argv = ["sweep", "slurm", str(grid), "--nodes", "1", "--gpus-per-node", "0", "--submit"]
    code, _, err = run_cli([*argv, "--", "--workdir", str(workdir), *SYNTHETIC], capsys)
    assert code == 2
    assert err.startswith("slscale: error: sbatch not found on PATH; the script is in ")
    assert (workdir / "slurm" / "slscale-sweep.sbatch").exists()


@pytest.mark.parametrize(
    ("args", "launch", "message"),
    [
        (["--nodes", "0"], [], "--nodes 0: need at least 1 node"),
        (["--gpus-per-node", "-2"], [], "--gpus-per-node -2: must be 0 or more"),
        (["--time", "one hour"], [], "--time 'one hour': not a SLURM time"),
        ([], ["--address", "x:1"], "--address after --: the script sets it"),
        ([], ["--num-cpus", "4"], "--num-cpus after --: not for a SLURM job"),
        ([], ["--no-such-option"], "options after --: unrecognized arguments: --no-such-option"),
    ],
)
def test_bad_input_is_one_line_not_a_traceback(grid, tmp_path, capsys, args, launch, message):
    base = {"--nodes": "2", "--gpus-per-node": "0"}
    for flag, value in zip(args[::2], args[1::2], strict=True):
        base[flag] = value
    argv = ["sweep", "slurm", str(grid), *[x for kv in base.items() for x in kv]]
    argv += ["--", "--workdir", str(tmp_path / "w"), *launch]
    code, out, err = run_cli(argv, capsys)
    assert code == 2 and out == ""
    assert err.startswith(f"slscale: error: {message}"), err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_a_missing_grid_file_is_named(tmp_path, capsys):
    missing = tmp_path / "nope.yaml"
    argv = ["sweep", "slurm", str(missing), "--nodes", "1", "--gpus-per-node", "0"]
    code, _, err = run_cli([*argv, "--", "--workdir", str(tmp_path / "w")], capsys)
    assert code == 2
    assert err.strip() == f"slscale: error: {missing}: no such grid file"


def test_launch_options_need_a_workdir(grid, capsys):
    argv = ["sweep", "slurm", str(grid), "--nodes", "1", "--gpus-per-node", "0", "--"]
    code, _, err = run_cli([*argv, *SYNTHETIC], capsys)
    assert code == 2
    assert "the following arguments are required: --workdir" in err


# ---------------------------------------------------------------------------- node helpers


def test_ray_nodes_get_free_ports_of_their_own():
    head = slurm.ray_node_command(["--head", "--port=6500"])
    worker = slurm.ray_node_command(["--address=10.0.0.1:6500"])
    assert head[1:4] == ["start", "--block", "--disable-usage-stats"]
    assert Path(head[0]).name == "ray"
    flags = {a.split("=")[0] for a in head if a.startswith("--")}
    assert {"--dashboard-agent-listen-port", "--ray-client-server-port"} <= flags
    assert "--ray-client-server-port" not in {a.split("=")[0] for a in worker}
    ports = [int(a.split("=")[1]) for a in head if "-port=" in a]
    assert len(set(ports)) == len(ports) >= 5


def test_waiting_for_a_head_that_never_listens_ends_with_an_error(capsys):
    address = f"127.0.0.1:{slurm.free_port()}"
    assert slurm.main(["wait-for-nodes", address, "2", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"slscale: error: the Ray head did not listen on {address} within 1 s")


def test_wait_for_nodes_raises_a_slscale_error():
    with pytest.raises(SlscaleError, match="did not listen"):
        slurm.wait_for_nodes(f"127.0.0.1:{slurm.free_port()}", 1, 0.5)
