"""The driver's choice of a resumed run's number of workers, on a real local Ray cluster (one
node, 2 CPUs) with synthetic runs: a run whose planned workers are gone starts on fewer once it
has waited for them, and each attempt's width is in the store. (A two-worker DeepSpeed run
losing a node and going on with one: tests/cluster/test_cluster_elastic.py.)"""

from __future__ import annotations

import datetime as dt

import pytest
from sweep_run_helpers import Events, curve, specs_of, write_grid

from slscale.errors import SlscaleError
from slscale.identity import run_id
from slscale.spec import RunState, spec_to_dict
from slscale.store import open_store
from slscale.sweep.scheduler.api import RunRequest, SchedulerOptions
from slscale.sweep.scheduler.backend import RayBackend
from slscale.sweep.scheduler.driver import Driver
from slscale.sweep.scheduler.policy import Resources
from slscale.sweep.scheduler.runners import SyntheticRun

pytestmark = pytest.mark.timeout(120)

WAIT = 2.0
STEPS = 12
PLANNED = Resources(workers=2, cpus_per_worker=1.5)
"""3 CPUs: more than the cluster's 2, as after losing a node."""
ONE = Resources(workers=1, cpus_per_worker=1.5)


def request(spec, narrower=(ONE,)):
    return RunRequest(
        run_id=run_id(spec),
        spec=spec_to_dict(spec),
        resources=PLANNED,
        work=1.0,
        tokens=spec.tokens,
        flops=1.0,
        narrower=narrower,
    )


def options(workdir):
    return SchedulerOptions(
        workdir=str(workdir),
        store_url=str(workdir),
        lease_seconds=4.0,
        poll_seconds=0.2,
        elastic_wait_seconds=WAIT,
    )


def preempted_on_two_workers(store, spec):
    """The run as a driver leaves it whose first attempt, on 2 workers, was preempted."""
    rid = run_id(spec)
    store.register({rid: spec_to_dict(spec)})
    store.set_state(rid, RunState.RUNNING, increment_attempts=True)
    store.record_attempt(rid, 1, 2)
    store.set_state(rid, RunState.PREEMPTED, error="its node was lost")


def test_a_resumed_run_whose_workers_are_gone_goes_on_fewer_after_the_wait(ray_address, tmp_path):
    (spec,) = specs_of(write_grid(tmp_path / "grid.yaml", seeds=[3], steps=[STEPS]))
    rid, workdir, events = run_id(spec), tmp_path / "w", Events()
    with open_store(workdir) as store:
        preempted_on_two_workers(store, spec)
        launched = dt.datetime.now(dt.UTC)
        driver = Driver(store, RayBackend(SyntheticRun()), options(workdir), events)
        report = driver.run([request(spec)])
        attempts = store.list_attempts([rid])
        record = store.get_run(rid)
    assert report.states == {rid: RunState.SUCCEEDED}
    assert record is not None and record.attempts == 2
    assert [(a.attempt, a.workers) for a in attempts] == [(1, 2), (2, 1)]
    assert (attempts[1].started_at - launched).total_seconds() >= WAIT  # it waited first
    assert (rid, f"resumes on 1 of its 2 workers (no more were free {WAIT:g} s after it "
            "stopped)") in events.lines  # fmt: skip
    assert sorted(curve(workdir, rid)) == list(range(1, STEPS + 1))


def test_only_a_resumed_run_with_fewer_worker_choices_may_go_on_fewer(ray_address, tmp_path):
    """A run that never started, or one without choices (no --min-workers-per-run), needs
    its planned workers: with none of the cluster's nodes holding them, the launch stops at
    once saying so."""
    fresh, resumed = specs_of(write_grid(tmp_path / "grid.yaml", seeds=[4, 5], steps=[STEPS]))
    workdir = tmp_path / "w"
    with open_store(workdir) as store:
        store.register({run_id(fresh): spec_to_dict(fresh)})
        preempted_on_two_workers(store, resumed)
        for requests in ([request(fresh)], [request(resumed, narrower=())]):
            driver = Driver(store, RayBackend(SyntheticRun()), options(workdir))
            with pytest.raises(SlscaleError, match=r"needs 2 x \(1.5 CPUs, 0 GPUs\) but no node"):
                driver.run(requests)
        assert store.list_attempts([run_id(fresh)]) == []
