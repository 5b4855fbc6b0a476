"""Errors of the sweep commands a user can cause, and the commands that need no cluster."""

from __future__ import annotations

import pytest
from sweep_run_helpers import records, specs_of, write_grid

from slscale.cli import main as slscale_cli
from slscale.errors import SlscaleError
from slscale.identity import run_id
from slscale.spec import RunState, spec_to_dict
from slscale.store import open_store
from slscale.sweep.launch import LaunchOptions, load_run_function, prepare
from slscale.sweep.scheduler.api import SchedulerOptions


def test_a_run_function_that_cannot_be_imported_is_named():
    with pytest.raises(SlscaleError, match="--run-fn 'no_such_module:f' cannot be imported"):
        load_run_function("no_such_module:f")


def test_run_function_keyword_arguments_must_be_a_json_object(tmp_path, capsys):
    grid = write_grid(tmp_path / "grid.yaml", seeds=[0], steps=[1])
    argv = [
        "sweep",
        "launch",
        str(grid),
        "--workdir",
        str(tmp_path / "w"),
        "--run-fn",
        "slscale.sweep.scheduler.runners:SyntheticRun",
    ]
    assert slscale_cli([*argv, "--run-fn-kwargs", "{step_seconds: 1"]) == 2
    assert "--run-fn-kwargs '{step_seconds: 1': not JSON" in capsys.readouterr().err
    assert slscale_cli([*argv, "--run-fn-kwargs", "[1, 2]"]) == 2
    assert "must be a JSON object" in capsys.readouterr().err


def test_bad_launch_options_say_which_flag():
    with pytest.raises(SlscaleError, match="--order 'biggest'"):
        LaunchOptions(workdir="w", order="biggest")
    with pytest.raises(SlscaleError, match="--cpus-per-run 0"):
        LaunchOptions(workdir="w", cpus_per_run=0)
    with pytest.raises(SlscaleError, match="--max-concurrent 0: must be >= 1"):
        SchedulerOptions(workdir="w", store_url="s", max_concurrent=0)
    with pytest.raises(SlscaleError, match="lease of 2 s: must exceed four polls"):
        SchedulerOptions(workdir="w", store_url="s", lease_seconds=2, poll_seconds=1)


def test_cancel_marks_unfinished_runs_and_names_unknown_ones(tmp_path, capsys):
    grid = write_grid(tmp_path / "grid.yaml", seeds=[0, 1, 2], steps=[1])
    ids = [run_id(s) for s in specs_of(grid)]
    workdir = tmp_path / "w"
    with open_store(workdir) as store:
        store.register({run_id(s): spec_to_dict(s) for s in specs_of(grid)})
        store.set_state(ids[0], RunState.SUCCEEDED)
    assert slscale_cli(["sweep", "cancel", "--workdir", str(workdir), "nope-123"]) == 2
    assert "run 'nope-123' is not in the store" in capsys.readouterr().err
    assert slscale_cli(["sweep", "cancel", "--workdir", str(workdir)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines() == [f"cancelled {ids[1]}", f"cancelled {ids[2]}"]
    runs = records(workdir)
    assert runs[ids[0]].state == RunState.SUCCEEDED  # finished runs are never touched
    assert runs[ids[1]].state == RunState.FAILED
    assert runs[ids[1]].error.startswith("cancelled by")
    assert runs[ids[1]].summary["cancelled"] == runs[ids[1]].error

    # --retry-failed gives cancelled runs a fresh start: PENDING, no error, not cancelled.
    with open_store(workdir) as store:
        plan = prepare(
            specs_of(grid), LaunchOptions(workdir=str(workdir), retry_failed=True), store
        )
    assert plan.to_run == ids[1:] and plan.skipped == {ids[0]: RunState.SUCCEEDED}
    again = records(workdir)[ids[1]]
    assert (again.state, again.error, again.summary["cancelled"]) == (RunState.PENDING, None, None)


def test_dry_run_shows_resume_and_skip_from_the_store(tmp_path, capsys):
    grid = write_grid(tmp_path / "grid.yaml", seeds=[0, 1, 2, 3], steps=[1])
    ids = [run_id(s) for s in specs_of(grid)]
    workdir = tmp_path / "w"
    with open_store(workdir) as store:
        store.register({run_id(s): spec_to_dict(s) for s in specs_of(grid)[:3]})
        store.set_state(ids[0], RunState.SUCCEEDED)
        store.set_state(ids[1], RunState.PREEMPTED)
        store.set_state(ids[2], RunState.FAILED, error="boom")
    argv = ["sweep", "launch", str(grid), "--workdir", str(workdir), "--dry-run"]
    assert slscale_cli(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("dry run: 1 run, 1 resume, 0 retry, 2 skip")
    actions = {line.split()[2]: line.split()[0] for line in lines[1:]}
    assert actions == {ids[0]: "skip", ids[1]: "resume", ids[2]: "skip", ids[3]: "run"}
    assert slscale_cli([*argv, "--retry-failed"]) == 0
    assert "0 retry" not in capsys.readouterr().out.splitlines()[0]


def test_launch_needs_the_trainers_data_or_a_run_function(tmp_path, capsys):
    grid = write_grid(tmp_path / "grid.yaml", seeds=[0], steps=[1])
    argv = ["sweep", "launch", str(grid), "--workdir", str(tmp_path / "w")]
    assert slscale_cli(argv) == 2
    assert "pass --data DIR" in capsys.readouterr().err
    fn = ["--run-fn", "slscale.sweep.scheduler.runners:SyntheticRun"]
    assert slscale_cli([*argv, "--data", str(tmp_path), *fn]) == 2
    assert "not both" in capsys.readouterr().err
    assert not (tmp_path / "w").exists()  # nothing registered, no cluster started


def test_launch_help_says_which_failures_are_retried(capsys):
    with pytest.raises(SystemExit):
        slscale_cli(["sweep", "launch", "--help"])
    text = capsys.readouterr().out
    assert "which failures are retried:" in text
    assert "input and configuration errors: never" in text
    assert "up to --max-retries times" in text and "a bad data row names its file and line" in text
