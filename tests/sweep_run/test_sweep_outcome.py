"""How attempt endings are classified, and which lease owners are certainly dead (no cluster)."""

import os
import signal
import socket
import subprocess
import sys

from ray import exceptions as rex
from sweep_run_helpers import specs_of, write_grid

from slscale import fence
from slscale.errors import ConfigError, DataError, SlscaleError, StoreError
from slscale.identity import run_id
from slscale.spec import spec_to_dict
from slscale.sweep.scheduler import leases
from slscale.sweep.scheduler.outcome import (
    Diverged,
    Kind,
    Preempted,
    execute,
    from_exception,
    from_ray_error,
    retryable,
)
from slscale.sweep.scheduler.runners import TrainerRun


def raising(exc):
    def run(spec, run_id, workdir, store_url, attempt):
        raise exc

    return run


def test_execute_returns_the_summary_of_a_run():
    outcome = execute(lambda *a: {"loss": 2.5, "attempt": a[-1]}, {}, "r", "/w", "/s", 3)
    assert outcome.kind is Kind.SUCCEEDED
    assert outcome.summary == {"loss": 2.5, "attempt": 3}
    assert outcome.error is None


def test_an_exception_is_an_error_with_its_traceback_tail():
    outcome = execute(raising(RuntimeError("disk full")), {}, "r", "/w", "/s", 1)
    assert outcome.kind is Kind.ERROR
    assert outcome.error == "RuntimeError: disk full"
    assert "Traceback" in outcome.traceback and "in run" in outcome.traceback
    assert outcome.error_text().startswith("RuntimeError: disk full\nTraceback")


def test_invalid_config_and_divergence_are_fatal():
    config = execute(raising(ConfigError("field 'lr' = -1: must be positive")), {}, "r", "", "", 1)
    diverged = from_exception(Diverged("diverged: training loss nan at step 7"))
    assert config.kind is Kind.FATAL and "field 'lr'" in config.error
    assert diverged.kind is Kind.FATAL


def test_errors_the_user_must_fix_are_fatal_and_transient_ones_are_retried():
    """Classified by the exception's class, never by its message: a bad data row, a missing
    TextLM (a plain SlscaleError) and an unknown field fail at once; a store outage, an
    out-of-memory error and an unexpected exception are retried, whatever they say."""
    fatal = [
        DataError("data/train.jsonl:3: unit 731 is outside [0, 500)"),
        SlscaleError("init 'org/lm': cannot load it"),
        ConfigError("unknown trainer setting(s) 'bogus'"),
        Diverged("diverged: training loss nan at step 7"),
    ]
    retried = [
        StoreError("results store 'pg': write failed: connection refused"),
        MemoryError("unit 731 is outside [0, 500)"),
        ConnectionResetError("config error"),
        RuntimeError("DataError: bad row"),
    ]
    for exc in fatal:
        assert not retryable(exc) and from_exception(exc).kind is Kind.FATAL, exc
    for exc in retried:
        assert retryable(exc) and from_exception(exc).kind is Kind.ERROR, exc
    # An error raised inside a Ray task arrives wrapped; its cause decides.
    data = DataError("data/train.jsonl:3: unit 731 is outside [0, 500)")
    wrapped = rex.RayTaskError("execute", "Traceback ...", data)
    assert from_ray_error(wrapped).kind is Kind.FATAL
    assert from_ray_error(wrapped).error == f"DataError: {data}"
    outage = rex.RayTaskError("execute", "Traceback ...", StoreError("store down"))
    assert from_ray_error(outage).kind is Kind.ERROR
    assert from_ray_error(rex.OutOfMemoryError("node memory 95%")).kind is Kind.ERROR


def test_stopping_on_a_signal_is_a_preemption():
    for exc in (Preempted("stopped at step 4"), KeyboardInterrupt(), SystemExit(1)):
        assert from_exception(exc).kind is Kind.PREEMPTED
        assert from_exception(exc).traceback is None


def test_sigterm_inside_a_run_becomes_a_preemption():
    def run(*args):
        os.kill(os.getpid(), signal.SIGTERM)
        raise AssertionError("the signal should have interrupted the run")

    before = signal.getsignal(signal.SIGTERM)
    outcome = execute(run, {}, "r", "", "", 1)
    assert outcome.kind is Kind.PREEMPTED
    assert "SIGTERM" in outcome.error
    assert signal.getsignal(signal.SIGTERM) is before  # the handler is restored


def test_ray_failures_of_the_process_are_preemptions():
    for exc in (rex.WorkerCrashedError(), rex.NodeDiedError("node 3 died")):
        assert from_ray_error(exc).kind is Kind.PREEMPTED
    assert from_ray_error(rex.TaskCancelledError()).kind is Kind.CANCELLED


def test_a_task_error_is_classified_by_its_cause():
    wrapped = rex.RayTaskError("execute", "Traceback ...", ConfigError("field 'seed' = -1"))
    assert from_ray_error(wrapped).kind is Kind.FATAL


def test_this_process_is_not_a_dead_owner():
    assert not leases.is_dead_owner(leases.owner_name())


def test_an_exited_process_on_this_host_is_a_dead_owner():
    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    mine = leases.owner_name().split("/")
    owner = "/".join([*mine[:3], child.stdout.strip(), "abcd1234"])
    assert leases.is_dead_owner(owner)


def test_owners_elsewhere_are_left_to_expire():
    mine = leases.owner_name().split("/")
    other_host = "/".join(["not-" + socket.gethostname(), *mine[1:]])
    other_namespace = "/".join([*mine[:2], "1", "999999", "x"])
    for owner in (other_host, other_namespace, "driver-7", "", None):
        assert not leases.is_dead_owner(owner)


def test_an_owner_from_before_a_reboot_is_dead():
    mine = leases.owner_name().split("/")
    rebooted = "/".join([mine[0], "00000000" if mine[1] != "00000000" else "11111111", *mine[2:]])
    assert leases.is_dead_owner(rebooted)


def test_a_stop_file_interrupts_a_run_which_returns_preempted(tmp_path):
    """The driver's stop file reaches a running attempt as a SIGINT (here in this process's
    main thread, as in a Ray worker): the run stops within a poll and the attempt is PREEMPTED;
    the file names the attempt, and another attempt runs undisturbed."""
    import threading
    import time

    from slscale.sweep.scheduler import outcome

    steps: list[int] = []

    def run_fn(spec, run_id, workdir, store_url, attempt):
        for step in range(200):  # 10 s unless stopped
            steps.append(step)
            time.sleep(0.05)
        return {"steps": len(steps)}

    stop = outcome.stop_file(str(tmp_path), "r1", 1)
    stop.parent.mkdir(parents=True)
    threading.Timer(0.5, stop.touch).start()
    start = time.monotonic()
    result = outcome.execute(run_fn, {}, "r1", str(tmp_path), str(tmp_path), 1)
    assert result.kind is outcome.Kind.PREEMPTED, result
    assert time.monotonic() - start < 0.5 + 1.0 and len(steps) < 40

    # The stop file of attempt 1 does not stop attempt 2 (which outlives several polls).
    def short_run(spec, run_id, workdir, store_url, attempt):
        time.sleep(4 * outcome.STOP_POLL_SECONDS)
        return {"ok": 1}

    second = outcome.execute(short_run, {}, "r1", str(tmp_path), str(tmp_path), 2)
    assert stop.exists() and second.kind is outcome.Kind.SUCCEEDED, second


class Captured(Exception):
    pass


def test_the_trainer_run_gives_the_trainer_its_attempt_number(tmp_path):
    seen = {}

    def job_builder(spec, **runtime):
        seen.update(runtime)
        raise Captured

    (spec,) = specs_of(write_grid(tmp_path / "grid.yaml", seeds=[0], steps=[4]))
    run = TrainerRun(job_builder=job_builder)
    outcome = execute(run, spec_to_dict(spec), run_id(spec), str(tmp_path), str(tmp_path), 3)
    assert outcome.kind is Kind.ERROR and outcome.error == "Captured"
    assert seen["attempt"] == 3 and seen["run_id"] == run_id(spec)


def test_an_attempt_whose_folder_names_a_newer_one_is_superseded(tmp_path):
    fence.mark(tmp_path / "runs" / "r", 2)
    outcome = execute(raising(KeyboardInterrupt()), {}, "r", str(tmp_path), "/s", 1)
    assert outcome.kind is Kind.SUPERSEDED and outcome.traceback is None
    assert "attempt 1 was superseded by attempt 2" in outcome.error
    assert from_exception(fence.Superseded("/w", 1, 2)).kind is Kind.SUPERSEDED
