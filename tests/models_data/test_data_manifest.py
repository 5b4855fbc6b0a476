"""Pair manifests, and the StoryCloze-folder and ZeroSpeech gold.csv importers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from models_data_helpers import write_jsonl

from slscale.errors import SlscaleError
from slscale.models.data.importers import UnitIndex, import_storycloze, import_zerospeech
from slscale.models.data.manifest import EvalItem, EvalPair, read_manifest, write_manifest

SPEECH = {"modality": "speech", "units": [1, 2, 3]}
TEXT = {"modality": "text", "text": "tom finds the cart ."}


def test_round_trip(tmp_path: Path):
    pair = EvalPair(
        id="a",
        task="ssc",
        prompt=EvalItem(modality="speech", units=np.array([4, 5])),
        positive=EvalItem(modality="text", text="yes"),
        negative=EvalItem(modality="text", text="no"),
        meta={"k": 1},
    )
    bare = EvalPair(
        id="b",
        prompt=None,
        positive=EvalItem(modality="text", text="x"),
        negative=EvalItem(modality="text", text="y"),
    )
    assert write_manifest([pair, bare], tmp_path / "m.jsonl") == 2
    back = list(read_manifest(tmp_path / "m.jsonl"))
    assert [p.to_dict() for p in back] == [pair.to_dict(), bare.to_dict()]
    assert back[0].prompt.units.tolist() == [4, 5] and back[1].prompt is None


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"id": "x", "positive": TEXT, "negative": TEXT}, "missing field 'prompt'"),
        ({"id": "x", "prompt": None, "negative": TEXT}, "missing field 'positive'"),
        ({"prompt": None, "positive": TEXT, "negative": TEXT}, "missing field 'id'"),
        (
            {"id": "x", "prompt": None, "positive": {"modality": "video"}, "negative": TEXT},
            "positive: must be an object with modality",
        ),
        (
            {"id": "x", "prompt": None, "positive": TEXT, "negative": {"modality": "speech"}},
            "negative: a speech item needs a non-empty list",
        ),
        (
            {
                "id": "x",
                "prompt": {"modality": "speech", "units": [1, 999]},
                "positive": TEXT,
                "negative": TEXT,
            },
            "prompt: unit 999 is outside",
        ),
        (
            {
                "id": "x",
                "prompt": None,
                "positive": {"modality": "text", "text": ""},
                "negative": TEXT,
            },
            "needs a non-empty field 'text'",
        ),
        ({"id": "first", "prompt": None, "positive": TEXT, "negative": TEXT}, "duplicate id"),
    ],
)
def test_bad_lines_name_file_and_line(tmp_path: Path, row: dict, message: str):
    good = {"id": "first", "prompt": SPEECH, "positive": TEXT, "negative": TEXT}
    path = write_jsonl(tmp_path / "m.jsonl", [good, row])
    with pytest.raises(SlscaleError, match=message) as info:
        list(read_manifest(path))
    assert f"{path}:2" in str(info.value)


def _units_file(tmp_path: Path, names: list[str]) -> Path:
    rows = [
        {"file_name": name, "units": [i % 500, i % 500, (i + 1) % 500]}
        for i, name in enumerate(names)
    ]
    return write_jsonl(tmp_path / "units.jsonl", rows)


def test_storycloze_cross_modal_multi_speaker(tmp_path: Path):
    folder = tmp_path / "cross_ms_sSC"
    names = []
    for speaker in ("spkA", "spkB"):
        (folder / speaker).mkdir(parents=True)
        for i in range(3):
            for part, text in (("mutual", f"story {i}"), ("correct", "good"), ("incorrect", "bad")):
                (folder / speaker / f"{i}_{part}.txt").write_text(f"{text}\n")
                (folder / speaker / f"{i}_{part}.wav").write_bytes(b"")
                names.append(f"/data/cross_ms_sSC/{speaker}/{i}_{part}.wav")
    units = UnitIndex(_units_file(tmp_path, names))
    pairs = import_storycloze(
        folder, prompt_modality="speech", continuation_modality="text", units=units, task="ms_ssc"
    )
    assert [p.id for p in pairs] == [f"{s}/{i}" for s in ("spkA", "spkB") for i in range(3)]
    first = pairs[4]  # spkB/1: prompt units of "/spkB/1_mutual.wav" (deduplicated)
    index = names.index("/data/cross_ms_sSC/spkB/1_mutual.wav")
    assert first.prompt.units.tolist() == [index, index + 1]
    assert (first.positive.text, first.negative.text) == ("good", "bad")
    assert first.meta == {"speaker": "spkB"} and first.task == "ms_ssc"
    text_only = import_storycloze(folder, prompt_modality="text", continuation_modality="text")
    assert text_only[0].prompt.text == "story 0"


def test_storycloze_whole_story_items_and_errors(tmp_path: Path):
    folder = tmp_path / "sSC"
    folder.mkdir()
    for part in ("correct", "incorrect"):
        (folder / f"7_{part}.wav").write_bytes(b"")
    units = UnitIndex(_units_file(tmp_path, ["7_correct.wav", "7_incorrect.wav"]))
    (pair,) = import_storycloze(
        folder, prompt_modality="speech", continuation_modality="speech", units=units
    )
    assert pair.prompt is None and pair.positive.units.tolist() == [0, 1]
    with pytest.raises(SlscaleError, match="need a units JSONL"):
        import_storycloze(folder, prompt_modality="speech", continuation_modality="speech")
    with pytest.raises(SlscaleError, match=r"7_correct.txt is missing"):
        import_storycloze(folder, prompt_modality="text", continuation_modality="text")
    with pytest.raises(SlscaleError, match=r"no units for 7_correct\.wav"):
        import_storycloze(
            folder,
            prompt_modality="speech",
            continuation_modality="speech",
            units=UnitIndex(_units_file(tmp_path, ["other.wav"])),
        )
    with pytest.raises(SlscaleError, match=r"no .<id>_correct\.wav."):
        import_storycloze(
            tmp_path / "units.jsonl", prompt_modality="text", continuation_modality="text"
        )


LEXICAL = """id,filename,voice,frequency,word,phones,length,correct
1,aaa,Alex,12,brick,b r I k,4,1
1,bbb,Alex,12,blick,b l I k,4,0
1,ccc,Vicki,12,brick,b r I k,4,1
1,ddd,Vicki,12,blick,b l I k,4,0
2,eee,Alex,3,sun,s V n,3,0
2,fff,Alex,3,sun,s V n,3,1
"""
SYNTACTIC = """id,filename,voice,type,subtype,correct,transcription
9,s1,Bruce,noun_verb_agreement,simple,1,the dog runs
9,s2,Bruce,noun_verb_agreement,simple,0,the dog run
"""


def test_zerospeech_lexical_and_syntactic(tmp_path: Path):
    gold = tmp_path / "gold.csv"
    gold.write_text(LEXICAL)
    units = UnitIndex(
        _units_file(
            tmp_path,
            [
                "lexical/dev/aaa.wav",
                "lexical/dev/bbb.wav",
                "ccc.wav",
                "ddd.wav",
                "eee.wav",
                "fff.wav",
            ],
        )
    )
    pairs = import_zerospeech(gold, modality="speech", units=units)
    assert [p.id for p in pairs] == ["1/Alex", "1/Vicki", "2/Alex"]
    assert pairs[0].task == "swuggy" and pairs[0].prompt is None
    assert pairs[0].positive.units.tolist() == [0, 1] and pairs[0].negative.units.tolist() == [1, 2]
    assert pairs[2].positive.units.tolist() == [5, 6]  # correct=1 row comes second
    assert pairs[1].meta == {"voice": "Vicki", "frequency": "12"}
    syntactic = tmp_path / "syn.csv"
    syntactic.write_text(SYNTACTIC)
    (pair,) = import_zerospeech(syntactic, modality="text")
    assert (pair.task, pair.positive.text, pair.negative.text) == (
        "sblimp",
        "the dog runs",
        "the dog run",
    )
    assert pair.meta["type"] == "noun_verb_agreement"


def test_zerospeech_errors(tmp_path: Path):
    gold = tmp_path / "gold.csv"
    gold.write_text(LEXICAL.replace("2,fff,Alex,3,sun,s V n,3,1\n", ""))
    with pytest.raises(SlscaleError, match=r"gold.csv:6: id 2 \(voice 'Alex'\) has no positive"):
        import_zerospeech(gold, modality="text")
    gold.write_text(LEXICAL.replace("3,1\n", "3,yes\n"))
    with pytest.raises(SlscaleError, match=r"gold.csv:7: 'correct' must be 1 or 0"):
        import_zerospeech(gold, modality="text")
    gold.write_text("id,filename,correct\n1,a,1\n")
    with pytest.raises(SlscaleError, match="missing column 'transcription'"):
        import_zerospeech(gold, modality="text")


def test_cli_import_and_check(tmp_path: Path, capsys):
    import argparse

    from slscale.models.data import commands

    parser = argparse.ArgumentParser()
    commands.add_commands(parser.add_subparsers())
    gold = tmp_path / "gold.csv"
    gold.write_text(SYNTACTIC)
    out = tmp_path / "sblimp.jsonl"
    args = parser.parse_args(
        ["data", "import-zerospeech", str(gold), "--modality", "text", "--out", str(out)]
    )
    assert args.func(args) == 0
    assert json.loads(out.read_text())["positive"]["text"] == "the dog runs"
    args = parser.parse_args(["data", "check-manifest", str(out)])
    assert args.func(args) == 0
    assert "1 valid pairs; tasks: sblimp" in capsys.readouterr().out
