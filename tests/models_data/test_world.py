"""The miniature world: determinism, formats, pseudo-speech realism, evaluation sets."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from slscale.errors import ConfigError
from slscale.models.data.manifest import read_manifest
from slscale.models.data.readers import SpeechReadOptions, read_speech, read_text
from slscale.models.world.check import baseline_report
from slscale.models.world.generate import WorldConfig, generate_world
from slscale.models.world.lexicon import all_words, check_lexicon
from slscale.models.world.speech import PseudoSpeech, pronounce


def test_same_seed_same_world_other_seed_other_world(tmp_path: Path):
    config = WorldConfig(seed=1, words=3000, eval_pairs=20)
    generate_world(tmp_path / "a", config)
    generate_world(tmp_path / "b", config)
    generate_world(tmp_path / "c", WorldConfig(seed=2, words=3000, eval_pairs=20))
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.jsonl"))
    assert len(files) == 6 + 19
    for name in files:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert (tmp_path / "a/text/train.jsonl").read_text() != (
        tmp_path / "c/text/train.jsonl"
    ).read_text()


def test_corpora_sizes_and_formats(world: Path):
    record = json.loads((world / "world.json").read_text())
    assert record["counts"]["text"]["words"] >= 30_000
    assert record["counts"]["speech/real"]["words"] >= 30_000
    assert record["counts"]["speech/synthetic"]["words"] >= 15_000
    check_lexicon()
    assert 200 <= len(all_words()) <= 400
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(world / "tokenizer"))
    texts = list(read_text(world / "text" / "train.jsonl"))
    ids = tokenizer(texts[:500], add_special_tokens=False)["input_ids"]
    assert tokenizer.unk_token_id not in {i for row in ids for i in row}
    assert tokenizer.decode(ids[0]) == texts[0]
    docs = list(
        read_speech(
            world / "speech" / "real" / "train.jsonl", SpeechReadOptions(require_alignment=True)
        )
    )
    assert len(docs) > 700 and all(d.speaker.startswith("spk") for d in docs)
    words = sum(len(d.words) for d in docs)
    units_per_word = sum(len(d.units) for d in docs) / words
    seconds_per_word = sum(d.seconds for d in docs) / words
    assert 3 <= units_per_word <= 9  # mHuBERT-25Hz after de-duplication: ~15 units/s
    assert 0.25 <= seconds_per_word <= 0.5  # 2–4 words per second
    assert all(d.units.max() < 500 for d in docs)


def _durations_by_word(path: Path) -> dict[str, list[int]]:
    out: dict[str, list[int]] = defaultdict(list)
    for line in path.read_text().splitlines()[:300]:
        row = json.loads(line)
        for word, start, end in row["aligned_text"]:
            out[word].append(round((end - start) / 0.04))
    return out


def test_speakers_and_synthetic_voice_differ(world: Path):
    real = _durations_by_word(world / "speech" / "real" / "train.jsonl")
    tts = _durations_by_word(world / "speech" / "synthetic" / "train.jsonl")
    common = [w for w in ("tom", "the", "is", "in") if len(real[w]) > 20 and len(tts[w]) > 20]
    assert common
    for word in common:  # the synthetic voice is steadier than a crowd of real speakers
        assert np.std(tts[word]) < np.std(real[word])
    speech = PseudoSpeech(seed=3)
    rng = np.random.default_rng(0)
    a, b, _c = speech.render([["tom", "finds", "the", "cart"]] * 3, [0, 1, speech.synthetic], rng)
    assert len(set(a.units) & set(b.units)) < len(set(a.units))  # voices use different units
    assert a.word_frames.shape == (4, 2) and (np.diff(a.word_frames, axis=1) > 0).all()
    assert a.durations.sum() >= a.word_frames[-1, 1]
    assert pronounce("cheese") == pronounce("chees")  # silent final e
    assert pronounce("shovel") != pronounce("hovel")


def test_eval_sets(world: Path):
    index = json.loads((world / "eval" / "index.json").read_text())
    assert {e["file"] for e in index} >= {
        "ssc_ss.jsonl",
        "ssc_st.jsonl",
        "ssc_ts.jsonl",
        "ssc_tt.jsonl",
        "tsc_tt.jsonl",
        "ms_ssc_ss.jsonl",
        "sblimp_s.jsonl",
        "sblimp_t.jsonl",
        "swuggy_s.jsonl",
        "ms_swuggy_s.jsonl",
    }
    sets = {e["file"]: list(read_manifest(world / "eval" / e["file"])) for e in index}
    assert all(len(pairs) == 600 for pairs in sets.values())
    tt, ss, st = sets["ssc_tt.jsonl"], sets["ssc_ss.jsonl"], sets["ssc_st.jsonl"]
    assert [p.id for p in tt] == [p.id for p in ss] == [p.id for p in st]
    assert (ss[0].prompt.modality, ss[0].positive.modality) == ("speech", "speech")
    assert (st[0].prompt.modality, st[0].positive.text) == ("speech", tt[0].positive.text)
    assert {p.meta["negative"] for p in tt} == {"wrong_object", "wrong_effect"}
    ms_speakers = {p.meta["speaker"] for p in sets["ms_ssc_ss.jsonl"]}
    assert ms_speakers == {"spk16", "spk17", "spk18", "spk19"}  # held out from training
    assert {p.meta["speaker"] for p in ss} == {"tts"}
    train_speakers = {
        json.loads(line)["speaker"]
        for line in (world / "speech" / "real" / "train.jsonl").read_text().splitlines()
    }
    assert not train_speakers & ms_speakers
    for pair in tt:  # same length, same first word: only the story can tell them apart
        pos, neg = pair.positive.text.split(), pair.negative.text.split()
        assert len(pos) == len(neg) and pos[0] == neg[0] and pos != neg
    words = set(all_words())
    for pair in sets["swuggy_s.jsonl"]:
        assert not np.array_equal(pair.positive.units, pair.negative.units)
    assert {p.meta["negative"] for p in sets["sblimp_t.jsonl"]} == {
        "agreement",
        "attractor",
        "determiner",
        "word_order",
    }
    for pair in sets["sblimp_t.jsonl"]:
        assert set(pair.negative.text.split()) <= words


def test_bigram_is_at_chance_and_story_structure_is_not(world: Path):
    report = baseline_report(world)
    assert abs(report["ssc_tt/bigram"] - 0.5) <= 0.06
    assert abs(report["tsc_tt/bigram"] - 0.5) <= 0.06
    assert report["ssc_tt/trigger"] >= 0.9
    assert report["tsc_tt/trigger"] >= 0.9
    assert report["sblimp_t/trigram"] >= 0.6  # local syntax is learnable


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("words", 0, "field 'words' = 0: must be positive"),
        ("speech_words", -5, "field 'speech_words' = -5: must be >= 0"),
        ("held_out_speakers", 20, "field 'held_out_speakers' = 20: must be in"),
        ("topics", 1, r"field 'topics' = 1: must be in \[2, 10\]"),
        ("objects_per_topic", 7, r"field 'objects_per_topic' = 7: must be in \[2, 6\]"),
        ("names", 0, r"field 'names' = 0: must be in \[1, 16\]"),
        ("speaker_spread", 1.5, r"field 'speaker_spread' = 1.5: must be in \[0, 1\]"),
    ],
)
def test_bad_world_config(field: str, value: int, message: str):
    with pytest.raises(ConfigError, match=message):
        WorldConfig(**{field: value})


def test_a_narrow_lexicon_is_all_the_stories_and_eval_sets_use(tmp_path: Path):
    config = WorldConfig(words=3000, eval_pairs=40, topics=2, objects_per_topic=2, names=1)
    generate_world(tmp_path, config)
    allowed = set(config.lexicon.words())
    assert len(allowed) < len(all_words())
    texts = list(read_text(tmp_path / "text" / "train.jsonl"))
    assert {w for t in texts for w in t.split()} <= allowed
    for pair in read_manifest(tmp_path / "eval" / "tsc_tt.jsonl"):
        words = f"{pair.prompt.text} {pair.positive.text} {pair.negative.text}".split()
        assert set(words) <= allowed and words[0] == "tom"  # the one name


def test_speaker_spread_zero_gives_every_voice_the_typical_units():
    same, apart = PseudoSpeech(seed=3, speaker_spread=0.0), PseudoSpeech(seed=3)
    assert all((v.units == same.voices[0].units).all() for v in same.voices)
    assert not all((v.units == apart.voices[0].units).all() for v in apart.voices)


def test_five_million_words(tmp_path: Path):  # text only: a few seconds
    record = generate_world(
        tmp_path, WorldConfig(words=5_000_000, speech_words=0, synthetic_words=0, eval_pairs=10)
    )
    assert record["counts"]["text"]["words"] >= 5_000_000
