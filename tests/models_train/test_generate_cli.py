"""``slscale generate`` on the models the session trains on the generated world (conftest.py):
an interleaved model (text, units and both markers) and a textless one (units-only vocabulary).

The models are barely trained, so what they say is not checked for sense, only for what the
command promises: the continuation is in the asked modality, units are unit ids in range, text
is made of the world's words, the first line of a units file is the prompt, seeded sampling
repeats, and every user error is one line.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from slscale.cli import main
from slscale.models.data.manifest import SPEECH, TEXT, EvalItem
from slscale.models.data.readers import SpeechReadOptions, read_speech
from slscale.models.world.lexicon import all_words

NUM_UNITS = 500
PROMPT = "tom loses the"


def _model(run: Any) -> Path:
    """The model folder of a trained-run fixture's only run."""
    workdir, status = run
    assert status == 0
    (run_dir,) = (workdir / "runs").iterdir()
    return Path(run_dir / "model")


@pytest.fixture
def interleaved(interleaved_run: Any) -> Path:
    return _model(interleaved_run)


@pytest.fixture
def textless(textless_run: Any) -> Path:
    return _model(textless_run)


@pytest.fixture
def units_file(tiny_world: Path) -> Path:
    """SlamKit rows (file_name, speaker, units, duration, aligned_text) of the world's speech."""
    return tiny_world / "speech" / "real" / "valid.jsonl"


def generate(capsys: Any, model: Path, *argv: str) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of ``slscale generate MODEL …`` in this process."""
    capsys.readouterr()
    status = main(["generate", str(model), *argv])
    out, err = capsys.readouterr()
    return status, out, err


def units_of(out: str) -> list[int]:
    """The units of the one JSON line a speech continuation prints (and nothing else)."""
    (line,) = out.splitlines()
    row = json.loads(line)
    assert set(row) == {"units"}
    units: list[int] = row["units"]
    assert all(isinstance(u, int) for u in units)
    return units


def words_of(out: str) -> list[str]:
    (line,) = out.splitlines()
    return line.split()


# ----------------------------------------------------------------------------- continuations


@pytest.mark.parametrize("temperature", ["0", "1"])
def test_a_text_prompt_continues_in_world_words(
    capsys: Any, interleaved: Path, temperature: str
) -> None:
    status, out, _ = generate(
        capsys,
        interleaved,
        "--prompt-text",
        PROMPT,
        "--to",
        TEXT,
        "--max-tokens",
        "30",
        "--temperature",
        temperature,
        "--seed",
        "3",
    )
    assert status == 0
    words = words_of(out)
    assert words and set(words) <= set(all_words())
    assert "<" not in out  # no unit, marker or special token


def test_a_speech_prompt_continues_in_units_of_the_first_row(
    capsys: Any, interleaved: Path, units_file: Path
) -> None:
    status, out, _ = generate(
        capsys, interleaved, "--prompt-units", str(units_file), "--to", SPEECH, "--max-tokens", "20"
    )
    assert status == 0
    units = units_of(out)
    assert len(units) == 20 and all(0 <= u < NUM_UNITS for u in units)
    # the library's greedy continuation of the file's first row (de-duplicated, as training
    # reads it), which differs from that of its second row
    first, second = library_units(interleaved, list(read_speech(units_file))[:2])
    assert units == first and first != second


def library_units(model_dir: Path, docs: list[Any]) -> list[list[int]]:
    """Units of the greedy 20-unit continuation the library gives each speech document."""
    from slscale.models.evaluate.generate import generate as library_generate
    from slscale.models.evaluate.runner import load_checkpoint

    model, vocab = load_checkpoint(model_dir, "cpu")
    prompts = [EvalItem(modality=SPEECH, units=doc.units) for doc in docs]
    continuations = [library_generate(model, vocab, p, SPEECH, max_new_tokens=20) for p in prompts]
    return [[int(u) for u in vocab.decode_units(ids)] for ids in continuations]


def test_an_interleaved_model_continues_a_text_prompt_in_speech(
    capsys: Any, interleaved: Path
) -> None:
    status, out, _ = generate(
        capsys,
        interleaved,
        "--prompt-text",
        PROMPT,
        "--to",
        SPEECH,
        "--max-tokens",
        "15",
        "--temperature",
        "1",
    )
    assert status == 0
    units = units_of(out)
    assert len(units) == 15 and all(0 <= u < NUM_UNITS for u in units)


def test_an_interleaved_model_continues_a_speech_prompt_in_text(
    capsys: Any, interleaved: Path, units_file: Path
) -> None:
    status, out, _ = generate(
        capsys,
        interleaved,
        "--prompt-units",
        str(units_file),
        "--to",
        TEXT,
        "--temperature",
        "1",
        "--max-tokens",
        "20",
    )
    assert status == 0
    words = words_of(out)
    assert words and set(words) <= set(all_words())


def test_a_textless_model_continues_speech(capsys: Any, textless: Path, units_file: Path) -> None:
    status, out, _ = generate(
        capsys,
        textless,
        "--prompt-units",
        str(units_file),
        "--to",
        SPEECH,
        "--max-tokens",
        "25",
        "--temperature",
        "1",
    )
    assert status == 0
    units = units_of(out)
    assert len(units) == 25 and all(0 <= u < NUM_UNITS for u in units)


@pytest.mark.parametrize("modality", [SPEECH, TEXT])
def test_the_same_seed_repeats_and_another_differs(
    capsys: Any, interleaved: Path, modality: str
) -> None:
    def run(seed: str) -> str:
        status, out, _ = generate(
            capsys,
            interleaved,
            "--prompt-text",
            PROMPT,
            "--to",
            modality,
            "--max-tokens",
            "20",
            "--temperature",
            "2",
            "--seed",
            seed,
        )
        assert status == 0
        return out

    first = run("1")
    assert run("1") == first
    assert run("2") != first


def test_greedy_is_deterministic_and_ignores_the_seed(capsys: Any, interleaved: Path) -> None:
    outs = {
        generate(capsys, interleaved, "--prompt-text", PROMPT, "--to", SPEECH, "--seed", s)[1]
        for s in ("1", "1", "2")
    }
    assert len(outs) == 1
    assert len(units_of(outs.pop())) == 50  # the default --max-tokens; speech has no eos


@pytest.mark.parametrize("modality", [SPEECH, TEXT])
def test_sampling_among_the_likeliest_one_is_greedy(
    capsys: Any, interleaved: Path, modality: str
) -> None:
    argv = ("--prompt-text", PROMPT, "--to", modality, "--max-tokens", "20")
    greedy = generate(capsys, interleaved, *argv)
    top_1 = generate(capsys, interleaved, *argv, "--temperature", "2", "--top-k", "1")
    sampled = generate(capsys, interleaved, *argv, "--temperature", "2")
    assert greedy[0] == 0 and top_1[:2] == greedy[:2] and sampled[1] != greedy[1]


def test_out_holds_a_speech_row_the_readers_read(
    capsys: Any, interleaved: Path, tmp_path: Path
) -> None:
    argv = ("--prompt-text", PROMPT, "--to", SPEECH, "--temperature", "1", "--max-tokens", "12")
    _, printed, _ = generate(capsys, interleaved, *argv)
    out = tmp_path / "gen" / "continuation.jsonl"
    status, stdout, err = generate(capsys, interleaved, *argv, "--out", str(out))
    assert status == 0 and stdout == "" and str(out) in err
    (doc,) = read_speech(out, SpeechReadOptions(dedup=False))
    assert doc.units.tolist() == units_of(printed)


def test_out_holds_the_text_that_is_also_printed(
    capsys: Any, interleaved: Path, tmp_path: Path
) -> None:
    out = tmp_path / "continuation.txt"
    status, stdout, _ = generate(
        capsys,
        interleaved,
        "--prompt-text",
        PROMPT,
        "--to",
        TEXT,
        "--out",
        str(out),
        "--temperature",
        "1",
        "--max-tokens",
        "8",
    )
    assert status == 0 and words_of(stdout)
    assert out.read_text() == stdout


# ----------------------------------------------------------------------------- errors


def error_of(status: int, out: str, err: str) -> str:
    """The one error line of a failed command (which printed no result)."""
    assert status == 2 and out == ""
    (line,) = [x for x in err.splitlines() if x.startswith("slscale: error:")]
    return line


def test_a_textless_model_cannot_continue_in_text(
    capsys: Any, textless: Path, units_file: Path
) -> None:
    line = error_of(*generate(capsys, textless, "--prompt-units", str(units_file), "--to", TEXT))
    assert str(textless) in line and "no text vocabulary" in line and "--to speech" in line


def test_a_textless_model_cannot_read_a_text_prompt(capsys: Any, textless: Path) -> None:
    line = error_of(*generate(capsys, textless, "--prompt-text", PROMPT, "--to", SPEECH))
    assert str(textless) in line and "no text vocabulary" in line
    assert "cannot read --prompt-text" in line and "--prompt-units" in line


@pytest.mark.parametrize("bad", [500, -1])
def test_prompt_units_outside_the_vocabulary_are_named(
    capsys: Any, interleaved: Path, tmp_path: Path, bad: int
) -> None:
    path = tmp_path / "prompt.jsonl"
    path.write_text(json.dumps({"file_name": "a.wav", "units": [3, bad, 7]}) + "\n")
    line = error_of(*generate(capsys, interleaved, "--prompt-units", str(path), "--to", SPEECH))
    assert f"{path}:1" in line and f"unit {bad} " in line and f"[0, {NUM_UNITS})" in line


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", ": no prompt in it"),
        ("\n\n", ": no prompt in it"),
        ('{"file_name": "a.wav", "units": []}\n', ":1: the prompt has no units"),
        ('{"file_name": "a.wav"}\n', ":1: missing field 'units'"),
    ],
)
def test_an_empty_prompt_file_is_named(
    capsys: Any, interleaved: Path, tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "prompt.jsonl"
    path.write_text(content)
    line = error_of(*generate(capsys, interleaved, "--prompt-units", str(path), "--to", SPEECH))
    assert f"{path}{message}" in line


def test_a_missing_prompt_file_is_named(capsys: Any, interleaved: Path, tmp_path: Path) -> None:
    path = tmp_path / "nowhere.jsonl"
    line = error_of(*generate(capsys, interleaved, "--prompt-units", str(path), "--to", TEXT))
    assert f"--prompt-units {path}: no such file" in line


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("  ", "--prompt-text is empty"),
        ("tom <Un3> the", "--prompt-text: the text contains a speech-vocabulary token"),
    ],
)
def test_a_bad_text_prompt_is_named(
    capsys: Any, interleaved: Path, text: str, message: str
) -> None:
    line = error_of(*generate(capsys, interleaved, "--prompt-text", text, "--to", TEXT))
    assert message in line


def test_a_missing_model_folder_is_named(capsys: Any, tmp_path: Path) -> None:
    folder = tmp_path / "runs" / "nowhere" / "model"
    line = error_of(*generate(capsys, folder, "--prompt-text", PROMPT, "--to", TEXT))
    assert f"model folder {folder} does not exist" in line


def test_a_folder_slscale_did_not_save_is_named(capsys: Any, tmp_path: Path) -> None:
    line = error_of(*generate(capsys, tmp_path, "--prompt-text", PROMPT, "--to", TEXT))
    assert str(tmp_path) in line and "not saved by slscale" in line


def test_a_model_folder_without_weights_is_named(
    capsys: Any, textless: Path, tmp_path: Path, units_file: Path
) -> None:
    (tmp_path / "slscale_vocab.json").write_text((textless / "slscale_vocab.json").read_text())
    (tmp_path / "config.json").write_text((textless / "config.json").read_text())
    argv = ("--prompt-units", str(units_file), "--to", SPEECH)
    line = error_of(*generate(capsys, tmp_path, *argv))
    assert f"{tmp_path}: cannot load the model" in line and "model.safetensors" in line


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (("--max-tokens", "0"), "--max-tokens 0: must be at least 1"),
        (("--max-tokens", "-3"), "--max-tokens -3: must be at least 1"),
        (("--temperature", "-0.5"), "--temperature -0.5: must be >= 0"),
        (("--temperature", "nan"), "--temperature nan: must be >= 0"),
        (("--temperature", "inf"), "--temperature inf: must be >= 0"),
        (("--temperature", "1", "--top-k", "0"), "--top-k 0: must be at least 1"),
        (("--top-k", "5"), "--top-k applies only when sampling"),
    ],
)
def test_bad_sampling_options_are_named(
    capsys: Any, interleaved: Path, options: tuple[str, ...], message: str
) -> None:
    argv = ("--prompt-text", PROMPT, "--to", TEXT, *options)
    assert message in error_of(*generate(capsys, interleaved, *argv))
