"""Readers: SlamKit unit JSONL, alignments, plain unit sequences, text, save_to_disk folders."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from models_data_helpers import write_jsonl

from slscale.errors import SlscaleError
from slscale.models.data.readers import SpeechReadOptions, read_speech, read_text
from slscale.models.data.units import dedup_units, word_unit_spans

ROW = {
    "file_name": "/audio/spk1/utt1.flac",
    "units": [5, 5, 7, 7, 7, 9, 1, 1, 3],
    "duration": [1, 2, 1, 1, 1, 3, 1, 1, 2],
    "aligned_text": [[" hello", 0.0, 0.28], [" world", 0.36, 0.52]],
}


def test_dedup_merges_durations():
    units, durations = dedup_units(np.array([5, 5, 7, 7, 7, 9, 5]), np.array([1, 2, 1, 1, 1, 3, 1]))
    assert units.tolist() == [5, 7, 9, 5]
    assert durations.tolist() == [3, 3, 3, 1]


def test_slamkit_row_with_alignment(tmp_path: Path):
    path = write_jsonl(tmp_path / "units.jsonl", [ROW])
    (doc,) = read_speech(path)
    assert doc.units.tolist() == [5, 7, 9, 1, 3]
    assert doc.durations.tolist() == [3, 3, 3, 2, 2]  # frames; 13 frames = 0.52 s
    assert doc.words == ("hello", "world")
    # unit centres (frames): 1.5, 4.5, 7.5, 10, 12 → seconds 0.06, 0.18, 0.30, 0.40, 0.48
    assert doc.word_spans.tolist() == [[0, 2], [3, 5]]
    assert doc.seconds == pytest.approx(0.52)


def test_without_dedup_keeps_repeats(tmp_path: Path):
    path = write_jsonl(tmp_path / "units.jsonl", [{"units": [4, 4, 2]}])
    (doc,) = read_speech(path, SpeechReadOptions(dedup=False))
    assert doc.units.tolist() == [4, 4, 2]
    assert doc.words is None


def test_alignment_sidecar(tmp_path: Path):
    row = {k: v for k, v in ROW.items() if k != "aligned_text"}
    path = write_jsonl(tmp_path / "units.jsonl", [row])
    meta = tmp_path / "meta"
    meta.mkdir()
    (meta / "utt1.json").write_text(json.dumps({"aligned_text": ROW["aligned_text"]}))
    (doc,) = read_speech(path, SpeechReadOptions(meta_dir=meta))
    assert doc.words == ("hello", "world")


def test_plain_unit_sequences(tmp_path: Path):
    txt = tmp_path / "units.txt"
    txt.write_text("1 2 2 3\n\n7 8\n")
    assert [d.units.tolist() for d in read_speech(txt)] == [[1, 2, 3], [7, 8]]
    tokenised = write_jsonl(tmp_path / "tok.jsonl", [{"audio_repr": "<Un3><Un49><Un49><Un7>"}])
    assert next(iter(read_speech(tokenised))).units.tolist() == [3, 49, 7]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"units": [1, 500, 2], "duration": [1, 1, 1]}, "unit 500 is outside [0, 500)"),
        ({"units": [1, -1], "duration": [1, 1]}, "unit -1 is outside"),
        ({"aligned_text": [["a", 0.0, 0.2], ["b", 0.3, 0.9]]}, "past the audio end"),
        ({"aligned_text": [["a", 0.2, 0.3], ["b", 0.0, 0.1]]}, "starts before word 0 ends"),
        ({"aligned_text": [["a", 0.3, 0.1]]}, "an end before its start"),
        ({"aligned_text": [["a", 0.0]]}, "list of [word, start, end]"),
        ({"duration": [1, 2]}, "must be a list of 9 frame counts"),
        ({"units": "1 2 3"}, "must be a list of integers"),
    ],
)
def test_bad_speech_rows_name_file_and_line(tmp_path: Path, change: dict, message: str):
    path = write_jsonl(tmp_path / "units.jsonl", [ROW, {**ROW, **change}])
    with pytest.raises(SlscaleError, match=re.escape(message)) as info:
        list(read_speech(path))
    assert f"{path}:2" in str(info.value)


def test_missing_units_and_bad_json(tmp_path: Path):
    path = write_jsonl(tmp_path / "a.jsonl", [{"file_name": "x"}])
    with pytest.raises(SlscaleError, match=r"a.jsonl:1: missing field 'units'"):
        list(read_speech(path))
    broken = tmp_path / "b.jsonl"
    broken.write_text('{"units": [1]}\n{"units": [1,\n')
    with pytest.raises(SlscaleError, match=r"b.jsonl:2: not valid JSON"):
        list(read_speech(broken))


def test_empty_documents_are_skipped_with_a_warning(tmp_path: Path, caplog):
    path = write_jsonl(tmp_path / "u.jsonl", [{"units": []}, ROW, {"units": []}])
    with caplog.at_level(logging.WARNING):
        docs = list(read_speech(path))
    assert len(docs) == 1
    assert "skipped 2 document(s) with no units" in caplog.text and "u.jsonl:1" in caplog.text
    text = write_jsonl(tmp_path / "t.jsonl", [{"text": "  "}, {"text": "hi"}])
    with caplog.at_level(logging.WARNING):
        assert list(read_text(text)) == ["hi"]
    assert "t.jsonl:1" in caplog.text


def test_text_reader_fields(tmp_path: Path):
    path = write_jsonl(tmp_path / "t.jsonl", [{"text": "one"}, {"audio_repr": "two"}])
    assert list(read_text(path)) == ["one", "two"]
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"body": "x"}])
    with pytest.raises(SlscaleError, match=r"bad.jsonl:1: missing field 'text'"):
        list(read_text(bad))


def _save_to_disk(folder: Path, rows: list[dict], split: str | None = None) -> None:
    """The layout ``datasets.Dataset.save_to_disk`` writes: Arrow stream files + state.json."""
    target = folder / split if split else folder
    target.mkdir(parents=True)
    table = pa.Table.from_pylist(rows)
    half = len(rows) // 2
    names = []
    for i, part in enumerate((table.slice(0, half), table.slice(half))):
        name = f"data-{i:05d}-of-00002.arrow"
        with (
            pa.OSFile(str(target / name), "wb") as sink,
            pa.ipc.new_stream(sink, table.schema) as w,
        ):
            w.write_table(part)
        names.append({"filename": name})
    state = {"_data_files": names, "_fingerprint": "x", "_split": split}
    (target / "state.json").write_text(json.dumps(state))
    (target / "dataset_info.json").write_text("{}")


def test_save_to_disk_dataset_and_dict(tmp_path: Path):
    rows = [{"text": f"document {i}"} for i in range(5)]
    _save_to_disk(tmp_path / "ds", rows)
    assert list(read_text(tmp_path / "ds")) == [r["text"] for r in rows]
    _save_to_disk(tmp_path / "dd", rows, split="train")
    _save_to_disk(tmp_path / "dd", rows[:2], split="validation")
    (tmp_path / "dd" / "dataset_dict.json").write_text('{"splits": ["train", "validation"]}')
    assert len(list(read_text(tmp_path / "dd"))) == 5
    assert len(list(read_text(tmp_path / "dd", split="validation"))) == 2
    # Arrow needs one type per list, so aligned words are stored as structs there
    words = [{"word": w, "start": s, "end": e} for w, s, e in ROW["aligned_text"]]
    _save_to_disk(tmp_path / "sp", [{**ROW, "aligned_text": words}] * 2)
    assert [d.words for d in read_speech(tmp_path / "sp")] == [("hello", "world")] * 2


def test_save_to_disk_errors(tmp_path: Path):
    _save_to_disk(tmp_path / "ds", [{"text": "a"}, {"text": "b"}])
    state = json.loads((tmp_path / "ds" / "state.json").read_text())
    (tmp_path / "ds" / "state.json").write_text(
        json.dumps({**state, "_indices_data_files": [{"filename": "indices.arrow"}]})
    )
    with pytest.raises(SlscaleError, match="flatten_indices"):
        list(read_text(tmp_path / "ds"))
    (tmp_path / "plain").mkdir()
    with pytest.raises(SlscaleError, match="not a dataset written by save_to_disk"):
        list(read_text(tmp_path / "plain"))
    with pytest.raises(SlscaleError, match="does not exist"):
        list(read_text(tmp_path / "nope.jsonl"))


def test_word_spans_partition_units():
    durations = np.array([2, 1, 3, 1, 1])  # unit centres at 0.04, 0.10, 0.18, 0.26, 0.30 s
    first, last = word_unit_spans(durations, np.array([0.0, 0.2]), np.array([0.12, 0.32]))
    # unit 2 lies in the pause between the words and belongs to neither
    assert first.tolist() == [0, 3] and last.tolist() == [2, 5]
