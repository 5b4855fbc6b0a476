"""The tracker mirror without a trainer: W&B ids, a tracker failing mid-run, the flags."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

import pytest

from slscale.cli import main
from slscale.store.base import EvalResult, Metric
from slscale.trackers import WANDB_ID_CHARS, Background, Mirror, eval_values, wandb_run_id

LONG = "llama-mini4-100k-interleaved-from-textlm-mini4-100k-D1.33M-s0-8713cc9a"


def test_wandb_ids_are_the_run_id_where_wandb_takes_it() -> None:
    assert (
        wandb_run_id("llama-85M-textless-D1B-s0-1a2b3c4d") == "llama-85M-textless-D1B-s0-1a2b3c4d"
    )
    short = wandb_run_id(LONG)
    assert len(short) == WANDB_ID_CHARS and short.startswith(LONG[:40])
    assert wandb_run_id(LONG) == short  # stable: every attempt finds the same W&B run
    assert wandb_run_id(LONG[:-1] + "b") != short  # ids sharing a long prefix stay apart
    odd = wandb_run_id("a:b?c")
    assert ":" not in odd and "?" not in odd and odd != wandb_run_id("a-b-c")


class Recording:
    """A tracker that keeps what it is sent and raises from its ``fail_at``-th log on."""

    def __init__(self, name: str, fail_at: int | None = None) -> None:
        self.name, self.fail_at = name, fail_at
        self.logged: list[tuple[int, dict[str, float]]] = []
        self.summaries: list[dict[str, Any]] = []
        self.closed = False

    def log(self, step: int, values: Mapping[str, float]) -> None:
        if self.fail_at is not None and len(self.logged) + 1 >= self.fail_at:
            raise ConnectionError("network down")
        self.logged.append((step, dict(values)))

    def backfill(self, step: int, values: Mapping[str, float]) -> None:
        self.log(step, values)

    def summary(self, values: Mapping[str, Any]) -> None:
        self.summaries.append(dict(values))

    def close(self) -> None:
        self.closed = True


def rows(step: int) -> list[Metric]:
    return [Metric("r", step, "loss", 1.0 / step), Metric("r", step, "lr", 0.1)]


def test_a_tracker_failing_mid_run_is_dropped_after_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    good, bad = Recording("good"), Recording("bad", fail_at=3)
    mirror = Mirror([good, bad])
    with caplog.at_level(logging.WARNING, logger="slscale.trackers"):
        for step in range(1, 11):
            mirror.metrics(rows(step))
        mirror.summary({"loss": 0.1})
        mirror.close()
    assert [s for s, _ in good.logged] == list(range(1, 11))
    assert good.logged[1] == (2, {"loss": 0.5, "lr": 0.1})
    assert [s for s, _ in bad.logged] == [1, 2] and bad.closed
    assert good.summaries == [{"loss": 0.1}] and bad.summaries == [] and good.closed
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 1 and messages[0].startswith("bad mirror failed (log)")
    assert "ConnectionError: network down" in messages[0]


def test_rows_of_several_steps_are_logged_in_step_order() -> None:
    tracker = Recording("t")
    Mirror([tracker]).metrics([*rows(3), *rows(1), Metric("r", 3, "val_loss", 2.0)])
    assert tracker.logged == [
        (1, {"loss": 1.0, "lr": 0.1}),
        (3, {"loss": 1 / 3, "lr": 0.1, "val_loss": 2.0}),
    ]


def test_evals_become_summary_values_with_their_margins() -> None:
    scores = [
        EvalResult("r", 10, "sSC", "S", 0.61, 1000, "slamkit", margin=0.02),
        EvalResult("r", 10, "tSC", "T", 0.9, 1000, "slamkit"),
    ]
    assert eval_values(scores) == {
        "eval/sSC/S/slamkit": 0.61,
        "eval/sSC/S/slamkit/margin": 0.02,
        "eval/tSC/T/slamkit": 0.9,
    }


def test_wandb_options_without_a_project_are_a_one_line_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Any
) -> None:
    argv = ["train", "run.yaml", "--workdir", str(tmp_path), "--data", str(tmp_path)]
    assert main([*argv, "--wandb-entity", "lab", "--wandb-tags", "a"]) == 2
    err = capsys.readouterr().err
    assert err == "slscale: error: --wandb-entity, --wandb-tags need --wandb PROJECT\n"


def test_a_tracker_opened_in_the_background_gets_every_call_in_order() -> None:
    """A slow server does not hold the run: calls made while the tracker opens wait in order."""
    tracker, gate = Recording("slow"), threading.Event()

    def opener() -> Recording:
        gate.wait(10)
        return tracker

    mirror = Mirror([Background("slow", opener)])
    started = time.monotonic()
    for step in range(1, 4):
        mirror.metrics(rows(step))  # returns at once: the tracker is not open yet
    assert time.monotonic() - started < 1.0 and tracker.logged == []
    gate.set()
    mirror.summary({"loss": 0.3})
    mirror.close()
    assert [s for s, _ in tracker.logged] == [1, 2, 3]
    assert tracker.summaries == [{"loss": 0.3}] and tracker.closed


def test_a_tracker_that_fails_to_open_in_the_background_warns_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def opener() -> Recording:
        raise ConnectionError("Timed out initializing run")

    mirror = Mirror([Background("wandb", opener)], run_id="r1")
    with caplog.at_level(logging.WARNING, logger="slscale.trackers"):
        for step in range(1, 5):
            mirror.metrics(rows(step))
        mirror.close()
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 1 and mirror.names == []
    assert messages[0].startswith("wandb mirror cannot start for run r1: ConnectionError")
