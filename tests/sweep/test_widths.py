"""The widths a resumed run may narrow to (sweep.widths), what a launch asks of the scheduler
with --min-workers-per-run, and the one-line error of a ZeRO stage that does not fit."""

from __future__ import annotations

import pytest

from slscale.errors import ConfigError
from slscale.identity import run_id
from slscale.sweep import plan as plan_mod
from slscale.sweep import widths
from slscale.sweep.grid import expand
from slscale.sweep.io import load_grid
from slscale.sweep.launch import LaunchOptions, dry_run, run_requests, with_planned_settings
from slscale.sweep.scheduler import outcome as oc
from slscale.sweep.scheduler.policy import Resources
from slscale.sweep.scheduler.runners import MarkovJob, TrainerRun
from slscale.sweep.targets import ResourceTarget

GPU = "a100-40gb"


@pytest.fixture(scope="module")
def sims() -> dict[str, object]:
    """The SIMS-scale grid's runs by size name (one seed each)."""
    specs = expand(load_grid("sims-paper"), plan_mod.param_counts)
    by_size = {}
    for spec in specs:
        by_size.setdefault(spec.size, spec)
    return by_size


def test_a_cpu_run_narrows_to_the_counts_that_split_its_global_batch_down_to_the_floor():
    assert widths.narrower_cpu(global_batch=12, planned=8, floor=1) == [6, 4, 3, 2, 1]
    assert widths.narrower_cpu(global_batch=12, planned=8, floor=3) == [6, 4, 3]
    assert widths.narrower_cpu(global_batch=12, planned=8, floor=None) == []  # not elastic
    assert widths.narrower_cpu(global_batch=12, planned=8, floor=9) == []


def test_a_gpu_run_narrows_only_to_widths_its_zero_stage_fits_on(sims):
    """Qwen2.5-7B is planned on 8 x A100-40GB at ZeRO-3; at 16 GPUs, the only narrower width
    it fits on at ZeRO-3 is 8 (4 would need 44.8 GiB a GPU of 36.1)."""
    spec = sims["qwen2.5-7b"]
    row = plan_mod.plan_run(spec, GPU, 0.4, None)
    assert (row.gpus, row.zero_stage) == (8, 3)
    fits = widths.narrower_gpu(spec, GPU, planned=16, floor=1, zero_stage=3)
    assert [f.workers for f in fits] == [8]
    assert fits[0].settings() == {"zero_stage": 3, "micro_batch_size": row.micro_batch_size}
    small = widths.narrower_gpu(sims["llama-3.2-1b"], GPU, planned=16, floor=2, zero_stage=0)
    assert [f.workers for f in small] == [8, 4, 2]  # 3, 5, 6, 7 do not split a batch of 256


def test_widths_and_the_plan_choose_the_same_micro_batch(sims):
    for spec in sims.values():
        for gpu in ("a100-40gb", "a100-80gb", "h100-80gb"):
            row = plan_mod.plan_run(spec, gpu, 0.4, None)
            fit = widths.fit_at(spec, gpu, row.gpus, row.zero_stage)
            assert fit.micro_batch_size == row.micro_batch_size, (spec.size, gpu)


def test_a_stage_that_does_not_fit_is_one_line_saying_how_many_gpus_it_needs(sims):
    spec = sims["qwen2.5-7b"]
    with pytest.raises(ConfigError) as raised:
        widths.fit_at(spec, GPU, 4, 3)
    assert str(raised.value) == (
        f"run {run_id(spec)}: ZeRO-3 on 4 x a100-40gb does not fit in memory (it needs 44.8 "
        "GiB per GPU at micro-batch 1, 36.1 usable): run it on at least 8 GPUs (--gpus-per-run "
        "8) or with another --zero-stage (a checkpoint resumes only with the stage that wrote it)"
    )
    assert not raised.value.retryable
    with pytest.raises(ConfigError, match="no number of GPUs holds it at this stage"):
        widths.fit_at(sims["llama-3.2-3b"], GPU, 2, 0)  # ZeRO-0 keeps whole states anywhere


def test_a_launch_offers_the_scheduler_fewer_workers_only_with_a_floor(sims, tmp_path):
    specs = [sims["qwen2.5-7b"], sims["llama-3.2-3b"]]
    wide = ResourceTarget(gpus_per_run=16)
    options = LaunchOptions(workdir=str(tmp_path), gpu=GPU, resources=wide)
    plan = dry_run(specs, options)
    ids = [run_id(s) for s in specs]

    def narrower(opts: LaunchOptions) -> list[list[int]]:
        requests = {r.run_id: r for r in run_requests(plan, opts, gpus_in_cluster=True)}
        return [[res.workers for res in requests[rid].narrower] for rid in ids]

    assert narrower(options) == [[], []]  # default: a run waits for its planned GPUs
    elastic = LaunchOptions(workdir=str(tmp_path), gpu=GPU, resources=wide, min_workers_per_run=2)
    # On 16 GPUs the plan puts the 7B at ZeRO-2, which fits on no fewer; the 3B at ZeRO-1,
    # which fits on 8 and 4 but not on 2.
    assert [r.zero_stage for r in plan.rows] == [2, 1]
    assert narrower(elastic) == [[], [8, 4]]
    cpu = LaunchOptions(workdir=str(tmp_path), workers_per_run=4, min_workers_per_run=1)
    (request, _) = run_requests(plan, cpu, gpus_in_cluster=False)
    assert request.narrower == (
        Resources(workers=2, cpus_per_worker=1.0),
        Resources(workers=1, cpus_per_worker=1.0),
    )  # 3 workers would not split the global batch of 256


def test_a_told_zero_stage_that_does_not_fit_fails_the_attempt_in_one_line(sims, tmp_path):
    """``--zero-stage 1`` for Llama-3.2-3B, which the plan puts on 2 x A100-40GB at ZeRO-2: on 4
    GPUs it fits (and the run may not narrow to 2, where it would not); on 2 GPUs the trainer's
    attempt fails at once, as an error no retry can cure, naming what to do."""
    spec = sims["llama-3.2-3b"]
    rid = run_id(spec)
    told = TrainerRun(job_builder=MarkovJob(), runtime={"zero_stage": 1}, plan_gpu=GPU)
    four = LaunchOptions(
        workdir=str(tmp_path), gpu=GPU, resources=ResourceTarget(gpus_per_run=4),
        min_workers_per_run=2,
    )  # fmt: skip
    plan = dry_run([spec], four)
    requests = run_requests(plan, four, gpus_in_cluster=True, zero_stage=1)
    assert [r.workers for r in requests[0].narrower] == []
    trainer = with_planned_settings(told, plan, requests, GPU)
    assert isinstance(trainer, TrainerRun)
    assert trainer.planned_settings(spec, rid, 4) == {"zero_stage": 1, "micro_batch_size": 1}

    two = LaunchOptions(workdir=str(tmp_path), gpu=GPU, resources=ResourceTarget(gpus_per_run=2))
    plan = dry_run([spec], two)
    trainer = with_planned_settings(told, plan, run_requests(plan, two, True, 1), GPU)
    assert isinstance(trainer, TrainerRun)
    with pytest.raises(ConfigError) as raised:
        trainer.planned_settings(spec, rid, 2)  # what an attempt on two GPUs asks first
    outcome = oc.from_exception(raised.value)
    assert outcome.kind is oc.Kind.FATAL
    assert outcome.error == (
        f"ConfigError: run {rid}: ZeRO-1 on 2 x a100-40gb does not fit in memory (it needs "
        "39.1 GiB per GPU at micro-batch 1, 36.1 usable): run it on at least 4 GPUs "
        "(--gpus-per-run 4) or with another --zero-stage (a checkpoint resumes only with the "
        "stage that wrote it)"
    )
