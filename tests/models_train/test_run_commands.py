"""``slscale train`` and ``slscale eval`` end to end on a generated miniature world: real data
streams, vocabulary extension, the DeepSpeed trainer, the SQLite store, the evaluation."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from slscale.cli import main
from slscale.spec import RunState
from slscale.store import open_store

sys.path.insert(0, str(Path(__file__).parents[1]))
from tracker_files import tensorboard_scalars
from train_helpers import RUN_YAML, TEXTLESS


def cli(*argv: str) -> int:
    """``slscale …`` in this process (user errors print one line and return 2)."""
    return main(list(argv))


def test_train_runs_a_spec_on_real_streams(interleaved_run: Any) -> None:
    workdir, status = interleaved_run
    assert status == 0
    (run_dir,) = (workdir / "runs").iterdir()
    record = json.loads((run_dir / "result.json").read_text())
    assert record["state"] == "SUCCEEDED"
    assert record["tokens"] == 9000  # 8 full steps of 16 x 64 and one of 808 tokens
    assert record["steps"] == 9
    assert set(record["tokens_by_stream"]) == {"text", "interleaved", "speech"}
    assert sum(record["tokens_by_stream"].values()) == 9000
    assert set(record["val_losses"]) == {
        "val_loss",
        "val_loss.text",
        "val_loss.interleaved",
        "val_loss.speech",
    }
    assert record["spec"]["mix"]["text_share"] == 0.4
    with open_store(workdir) as store:
        runs = store.runs_frame()
        assert list(runs["run_id"]) == [run_dir.name]
        assert runs["state"].iloc[0] == str(RunState.SUCCEEDED)
        assert runs["family"].iloc[0] == "llama" and runs["tokens"].iloc[0] == 9000
    model = run_dir / "model"
    assert {"slscale_vocab.json", "slscale_model.json", "config.json"} <= {
        p.name for p in model.iterdir()
    }


def test_eval_scores_the_trained_model_into_the_store(interleaved_run: Any) -> None:
    workdir, _ = interleaved_run
    (run_dir,) = (workdir / "runs").iterdir()
    out = workdir / "scores.json"
    status = cli(
        "eval",
        str(run_dir / "model"),
        "--suite",
        "sSC,sWUGGY,MS-tSC",
        "--variants",
        "S,T2S",
        "--conventions",
        "slamkit;cuervo-marxer",
        "--workdir",
        str(workdir),
        "--out",
        str(out),
        "--tensorboard",
        str(workdir / "tb"),
    )
    assert status == 0
    scores = json.loads(out.read_text())
    # sSC: S and T2S; sWUGGY: S only (no prompt); MS-tSC: S and T2S — each under 2 conventions
    assert len(scores) == 10
    assert all(s["n_items"] == 24 and 0.0 <= s["accuracy"] <= 1.0 for s in scores)
    with open_store(workdir) as store:
        evals = store.evals_frame()
    assert len(evals) == 10
    assert set(evals["run_id"]) == {run_dir.name} and set(evals["step"]) == {9}
    assert set(evals["benchmark"]) == {"sSC", "sWUGGY", "MS-tSC"}
    assert set(evals["convention"]) == {
        "nll=mean,span=sequence,softmax=full",
        "nll=mean,span=continuation,softmax=full",
    }
    # mirrored at the checkpoint's step, beside the run's curve (32-bit floats there)
    board = tensorboard_scalars(workdir / "tb" / run_dir.name)
    for row in evals.itertuples():
        tag = f"eval/{row.benchmark}/{row.variant}/{row.convention}"
        assert board[tag] == {9: pytest.approx(row.value, rel=1e-6)}
        assert board[f"{tag}/margin"] == {9: pytest.approx(row.margin, rel=1e-6, abs=1e-7)}


def test_textless_units_only_run(textless_run: Any) -> None:
    workdir, status = textless_run
    assert status == 0
    (run_dir,) = (workdir / "runs").iterdir()
    record = json.loads((run_dir / "result.json").read_text())
    assert record["tokens_by_stream"] == {"speech": 2048}
    assert record["n_params"] - record["n_params_non_embedding"] == 502 * 32  # units-only rows


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("family: [unclosed", "not valid YAML"),
        ("- a list", "expected a mapping"),
        (
            "family: llama\nsize: mini-25k\nmodality: textless\ntokens: 10\ncolour: red",
            "unknown field 'colour'",
        ),
    ],
)
def test_bad_run_files_are_named(tmp_path: Path, capsys: Any, content: str, message: str) -> None:
    run_file = tmp_path / "bad.yaml"
    run_file.write_text(content)
    assert cli("train", str(run_file), "--workdir", str(tmp_path), "--data", str(tmp_path)) == 2
    err = capsys.readouterr().err
    assert str(run_file) in err and message in err


def test_missing_data_folder_is_named(tmp_path: Path, capsys: Any) -> None:
    run_file = tmp_path / "run.yaml"
    run_file.write_text(RUN_YAML.format(**TEXTLESS))
    missing = tmp_path / "nowhere"
    assert cli("train", str(run_file), "--workdir", str(tmp_path), "--data", str(missing)) == 2
    assert f"--data {missing}: no such folder" in capsys.readouterr().err


def test_eval_without_a_record_needs_a_manifest_folder(tmp_path: Path, capsys: Any) -> None:
    assert cli("eval", str(tmp_path), "--suite", "sSC") == 2
    assert "pass --manifest-dir" in capsys.readouterr().err


def test_a_run_file_with_an_init_folder_and_no_size_takes_its_architecture(
    tmp_path: Path,
) -> None:
    import transformers

    from slscale.models.run_commands import read_run_yaml

    config = transformers.Qwen2Config(
        num_hidden_layers=1,
        hidden_size=32,
        num_attention_heads=2,
        num_key_value_heads=1,
        intermediate_size=64,
        vocab_size=200,
        tie_word_embeddings=False,
    )
    transformers.Qwen2ForCausalLM(config).save_pretrained(tmp_path / "lm")
    path = tmp_path / "run.yaml"
    path.write_text(
        f"family: qwen2\nmodality: interleaved\ntokens: 1024\ninit: {tmp_path / 'lm'}\n"
    )
    spec = read_run_yaml(path)
    assert spec.arch is not None and spec.size is None
    assert (spec.arch.num_layers, spec.arch.hidden_size, spec.arch.num_kv_heads) == (1, 32, 1)
    assert (spec.arch.vocab_size, spec.arch.tie_embeddings) == (200, False)
