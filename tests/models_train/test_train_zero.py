"""The real DeepSpeed engine trains tiny Llama and Qwen2 models under every ZeRO stage (CPU,
gloo, fp32), stops at its token budget exactly and records the run in the store."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch
from train_helpers import tiny_job

from slscale.models.train import train_worker
from slscale.models.train.export import read_model_record
from slscale.models.train.report import read_result
from slscale.models.train.telemetry import read_metrics_jsonl
from slscale.spec import RunState
from slscale.store import open_store

STAGES = [
    pytest.param(0, id="zero0"),
    pytest.param(1, id="zero1", marks=pytest.mark.slow),
    pytest.param(2, id="zero2"),
    pytest.param(3, id="zero3", marks=pytest.mark.slow),
]


@pytest.mark.parametrize("family", ["llama", "qwen2"])
@pytest.mark.parametrize("stage", STAGES)
def test_zero_stage_trains_and_loss_falls(
    dist: Any, tmp_path: Path, stage: int, family: str
) -> None:
    job = tiny_job(tmp_path, run_id=f"{family}-z{stage}", family=family, zero_stage=stage)
    result = train_worker(job)

    assert result.state == RunState.SUCCEEDED
    assert result.tokens == job.config.tokens == 24 * 256 + 100
    assert result.steps == 25
    losses = _losses(read_metrics_jsonl(result.run_dir / "metrics.jsonl"))
    assert list(losses) == list(range(1, 26))
    assert losses[25] < losses[1] - 0.5, losses  # ln(64) = 4.16 at start; the chains are learnable
    assert result.val_loss is not None and result.val_loss < losses[1] - 0.5


def test_loss_does_not_depend_on_how_a_step_is_cut_into_micro_batches(
    dist: Any, tmp_path: Path
) -> None:
    # 8 sequences per step as 2 micro-batches of 4, and as 8 micro-batches of 1: the step's loss
    # is the token mean over the whole step either way, so the curves agree to rounding.
    runs = {}
    for micro in (4, 1):
        job = tiny_job(
            tmp_path,
            run_id=f"micro{micro}",
            micro_batch_size=micro,
            store=None,
            tokens=6 * 256 + 40,
        )
        runs[micro] = _losses(read_metrics_jsonl(train_worker(job).run_dir / "metrics.jsonl"))
    assert list(runs[4]) == list(range(1, 8))
    for step, loss in runs[4].items():
        assert runs[1][step] == pytest.approx(loss, abs=1e-5)


def _losses(rows: dict[tuple[int, str], Any]) -> dict[int, float]:
    return {step: row.value for (step, name), row in sorted(rows.items()) if name == "loss"}


@pytest.fixture(scope="module")
def finished(dist: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    workdir = tmp_path_factory.mktemp("finished")
    job = tiny_job(workdir, run_id="finished", log_every_steps=5, eval_every_steps=10)
    return job, train_worker(job)


def test_result_json_records_counts_flops_and_timings(finished: Any) -> None:
    job, result = finished
    record = read_result(result.run_dir)
    assert record["state"] == "SUCCEEDED"
    assert record["tokens"] == record["tokens_budget"] == job.config.tokens
    assert sum(record["tokens_by_stream"].values()) == job.config.tokens
    assert set(record["tokens_by_stream"]) == {"speech", "text"}
    model = job.model_factory()
    n_total = sum(p.numel() for p in model.parameters())
    assert record["n_params"] == n_total
    embedding = model.get_input_embeddings().weight.numel()  # tied with the LM head
    assert record["n_params_non_embedding"] == n_total - embedding
    assert record["flops_6nd"] == 6 * n_total * job.config.tokens
    # counted FLOPs = 6N(non-embedding) + LM head (6·d·V) + attention scores, never less than 6N
    assert record["flops_exact"] > record["flops_6nd"] > record["flops_6nd_non_embedding"]
    assert record["seconds"] > 0 and 0 < record["mfu"] < 1
    assert record["val_loss"] == pytest.approx(result.val_loss)


def test_store_has_state_summary_and_curves(finished: Any) -> None:
    job, result = finished
    with open_store(job.config.workdir) as store:
        run = store.get_run("finished")
        assert run is not None and run.state == RunState.SUCCEEDED
        assert run.summary["tokens"] == job.config.tokens
        assert run.summary["loss"] == pytest.approx(result.loss)
        frame = store.metrics_frame(run_ids=["finished"])
    loss_steps = sorted(frame[frame["name"] == "loss"]["step"])
    assert loss_steps == [5, 10, 15, 20, 25]  # every log_every_steps, and the last step
    assert sorted(frame[frame["name"] == "val_loss"]["step"]) == [10, 20, 25]
    last = frame[(frame["step"] == 25)]
    by_name = dict(zip(last["name"], last["value"], strict=True))
    assert by_name["tokens"] == job.config.tokens
    assert by_name["tokens.speech"] + by_name["tokens.text"] == job.config.tokens
    assert by_name["lr"] == pytest.approx(job.config.recipe.lr_min)  # the schedule's end
    assert math.isfinite(by_name["grad_norm"]) and by_name["tokens_per_second"] > 0


def test_exported_model_reloads_with_the_trained_weights(finished: Any) -> None:
    from transformers import AutoModelForCausalLM

    job, result = finished
    model_dir = result.run_dir / "model"
    assert read_model_record(model_dir) == {
        "run_id": "finished",
        "step": 25,
        "tokens": job.config.tokens,
    }
    reloaded = AutoModelForCausalLM.from_pretrained(model_dir)
    fresh = job.model_factory()
    ids = torch.arange(32).unsqueeze(0)
    with torch.no_grad():
        trained_logits = reloaded(input_ids=ids).logits
        fresh_logits = fresh(input_ids=ids).logits
    assert not torch.allclose(trained_logits, fresh_logits)
    batch = job.validation_data(0, 1).next_batch(4, 32)
    with torch.no_grad():
        logits = reloaded(input_ids=batch.input_ids, position_ids=batch.position_ids).logits
    from slscale.models.train.loop import labelled_tokens, next_token_nll

    first_val_loss = float(next_token_nll(logits, batch.labels)) / labelled_tokens(batch)
    assert first_val_loss < math.log(64) - 0.5


def test_diverging_run_fails_with_the_reason(dist: Any, tmp_path: Path) -> None:
    job = tiny_job(tmp_path, run_id="diverges", max_loss=1.0)  # the first loss is ~4.2
    result = train_worker(job)
    assert result.state == RunState.FAILED
    assert result.steps == 1
    assert result.error is not None and "diverged" in result.error and "step 1" in result.error
    with open_store(tmp_path) as store:
        run = store.get_run("diverges")
        assert run is not None and run.state == RunState.FAILED and run.error == result.error
    assert read_result(result.run_dir)["state"] == "FAILED"
    assert not (result.run_dir / "model").exists()


def test_nan_loss_fails_the_run(dist: Any, tmp_path: Path) -> None:
    job = tiny_job(tmp_path, run_id="nan", recipe={"lr": 1e30, "lr_min": 0.0})
    result = train_worker(job)
    assert result.state == RunState.FAILED
    assert result.error is not None and "diverged" in result.error
    assert read_result(result.run_dir)["loss"] is None or result.loss > 2 * math.log(64)


def test_a_finished_run_is_not_trained_again(finished: Any) -> None:
    job, result = finished
    metrics = result.run_dir / "metrics.jsonl"
    before = metrics.stat().st_mtime_ns, (result.run_dir / "result.json").read_text()
    again = train_worker(job)
    assert again == result
    assert (metrics.stat().st_mtime_ns, (result.run_dir / "result.json").read_text()) == before
