"""``slscale world`` commands end to end: generate, pretrain a TextLM, use it as an init."""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import pytest
import torch

from slscale.errors import ConfigError
from slscale.models.build import build_model
from slscale.models.data.factory import make_batch_source
from slscale.models.world import commands as world_commands
from slscale.models.world.pretrain import PretrainSettings, lr_at
from slscale.spec import DataMix, Modality, RunSpec


def _run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="slscale")
    world_commands.add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_generate_pretrain_and_init_an_interleaved_run(tmp_path: Path, capsys):
    world, textlm = tmp_path / "world", tmp_path / "textlm"
    assert (
        _run(
            "world",
            "generate",
            "--out",
            str(world),
            "--words",
            "2e4",
            "--eval-pairs",
            "20",
            "--seed",
            "4",
        )
        == 0
    )
    assert "evaluation sets" in capsys.readouterr().out
    assert json.loads((world / "world.json").read_text())["config"]["seed"] == 4
    torch.manual_seed(0)
    assert (
        _run(
            "world",
            "pretrain-textlm",
            "--world",
            str(world),
            "--family",
            "qwen2",
            "--size",
            "mini-25k",
            "--out",
            str(textlm),
            "--steps",
            "60",
            "--batch-size",
            "8",
            "--context-length",
            "64",
            "--lr",
            "1e-2",
            "--threads",
            "1",
        )
        == 0
    )
    record = json.loads((textlm / "pretrain.json").read_text())
    # ln(274) = 5.6 at initialisation; the unigram entropy of the world's text is 4.0 nats,
    # so a loss well below it means the model uses the context
    assert record["train_loss"] < 3.6 and record["valid_loss"] < 3.6
    spec = RunSpec(
        family="qwen2",
        modality=Modality.INTERLEAVED,
        tokens=4096,
        size="mini-25k",
        init=str(textlm),
        mix=DataMix(text_share=0.3, interleaved_share=0.4, speech_share=0.3),
    )
    model, vocab = build_model(spec)
    assert vocab.vocab_size == 274 + 502  # the world tokenizer's <pad> is kept
    batch = make_batch_source(spec, vocab, world).next_batch(2, 64)
    loss = model(
        input_ids=batch.input_ids, labels=batch.labels, position_ids=batch.position_ids
    ).loss
    assert torch.isfinite(loss)
    assert _run("world", "baselines", "--world", str(world)) == 0
    assert "ssc_tt/bigram" in capsys.readouterr().out


def test_bad_arguments(tmp_path: Path):
    with pytest.raises(SystemExit):
        _run("world", "generate", "--out", str(tmp_path), "--words", "1.5")
    with pytest.raises(ConfigError, match="run 'slscale world generate' first"):
        _run("world", "pretrain-textlm", "--world", str(tmp_path), "--out", str(tmp_path / "x"))


def test_learning_rate_schedule():
    settings = PretrainSettings(steps=100, warmup_steps=10, lr=1.0, lr_min=0.1)
    assert lr_at(0, settings) == pytest.approx(0.1)
    assert lr_at(9, settings) == pytest.approx(1.0)
    assert lr_at(99, settings) == pytest.approx(0.1)
    values = [lr_at(s, settings) for s in range(10, 100)]
    assert all(a >= b for a, b in itertools.pairwise(values))
