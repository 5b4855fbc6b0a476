"""Mixing by token share, packing, resume, shards, and the factory on a generated world."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from slscale.errors import ConfigError
from slscale.models.build import build_model
from slscale.models.data.corpus import FlatDocs
from slscale.models.data.factory import RunData, make_batch_source, make_validation_sources
from slscale.models.data.mixing import Component, MixedBatchSource
from slscale.models.data.streams import PrefixedDocs
from slscale.spec import DataMix, Modality, RunSpec


def _docs(first_id: int, count: int, mean_length: int, seed: int) -> PrefixedDocs:
    """``count`` documents of geometric lengths; document i is [first_id + i, …]."""
    rng = np.random.default_rng(seed)
    arrays = [
        np.full(int(rng.geometric(1 / mean_length)), first_id + i, dtype=np.int32)
        for i in range(count)
    ]
    return PrefixedDocs(FlatDocs.from_arrays(arrays), np.zeros(0, dtype=np.int32))


def _source(shares: dict[str, float], seed: int = 0, **kw) -> MixedBatchSource:
    parts = [
        Component("text", "main", _docs(10_000, 50, 12, 1)),
        Component("interleaved", "real", _docs(20_000, 40, 60, 2), 0.75),
        Component("interleaved", "synthetic", _docs(30_000, 30, 90, 3), 0.25),
        Component("speech", "real", _docs(40_000, 20, 300, 4)),
    ]
    return MixedBatchSource(parts, shares, seed=seed, pad_id=-1, unit_range=(40_000, 40_020), **kw)


@pytest.mark.parametrize(
    "shares",
    [
        {"text": 0.2, "interleaved": 0.5, "speech": 0.3},
        {"text": 0.6, "interleaved": 0.1, "speech": 0.3},
        {"text": 0.0, "interleaved": 0.5, "speech": 0.5},
    ],
)
def test_token_shares_are_reached_whatever_the_document_lengths(shares: dict[str, float]):
    source = _source(shares)
    totals: dict[str, int] = {}
    for _ in range(60):
        batch = source.next_batch(4, 128)
        assert sum(batch.tokens_by_stream.values()) == batch.num_tokens  # no padding
        for key, value in batch.tokens_by_source.items():
            totals[key] = totals.get(key, 0) + value
    consumed = source.tokens_consumed()
    assert {k: v for k, v in totals.items()} == {k: consumed[k] for k in totals}
    total = 60 * 4 * 128
    for stream, share in shares.items():
        assert abs(consumed.get(stream, 0) / total - share) <= 0.02, (stream, consumed)
    if shares["interleaved"]:
        synthetic = consumed["interleaved/synthetic"] / consumed["interleaved"]
        assert abs(synthetic - 0.25) <= 0.02
    assert consumed["units"] == consumed.get("speech/real", 0)  # unit ids are the speech docs


_FIRST_BATCH = """
import sys
sys.path.insert(0, sys.argv[1])
from test_data_mixing import _source
batch = _source({"text": 0.2, "interleaved": 0.5, "speech": 0.3}).next_batch(4, 128)
print(batch.input_ids.flatten().tolist())
"""


def test_the_mix_is_the_same_in_every_process():
    """Stream ties (every count is 0 at the start) go to the first stream listed, not to
    whichever one Python's per-process string hashing puts first in a set: the same seed gives
    the same batches in every process."""
    here = str(Path(__file__).parent)
    batches = []
    for hash_seed in range(5):
        env = {**os.environ, "PYTHONHASHSEED": str(hash_seed)}
        out = subprocess.run(
            [sys.executable, "-c", _FIRST_BATCH, here],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        batches.append(json.loads(out.stdout))
    assert all(b == batches[0] for b in batches)
    assert 10_000 <= batches[0][0] < 20_000  # the text stream, listed first, supplies first


def test_packing_labels_and_positions():
    source = _source({"text": 1.0})
    batch = source.next_batch(3, 50)
    ids, labels, positions = (
        t.numpy() for t in (batch.input_ids, batch.labels, batch.position_ids)
    )
    for row in range(3):
        starts = [0] + [c for c in range(1, 50) if ids[row, c] != ids[row, c - 1]]
        for col in range(50):
            if col in starts and (col > 0 or labels[row, col] == -100):
                assert labels[row, col] == -100 and positions[row, col] == 0
            else:
                assert labels[row, col] == ids[row, col]
        # positions restart at every document and count up inside it
        for a, b in zip(starts, [*starts[1:], 50], strict=True):
            assert positions[row, a:b].tolist() == list(range(b - a))
    # a document cut at the end of a row continues at the start of the next, with its label
    assert ids[1, 0] == ids[0, -1] and labels[1, 0] == ids[1, 0]


def test_resume_gives_identical_batches():
    source = _source({"text": 0.3, "interleaved": 0.4, "speech": 0.3}, seed=5)
    for _ in range(7):
        source.next_batch(2, 64)
    state = json.loads(json.dumps(source.state_dict()))  # survives a JSON round trip
    expected = [source.next_batch(2, 64) for _ in range(40)]
    resumed = _source({"text": 0.3, "interleaved": 0.4, "speech": 0.3}, seed=5)
    resumed.load_state_dict(state)
    for want in expected:
        got = resumed.next_batch(2, 64)
        assert torch.equal(got.input_ids, want.input_ids)
        assert torch.equal(got.labels, want.labels)
        assert torch.equal(got.position_ids, want.position_ids)
        assert got.tokens_by_source == want.tokens_by_source
    assert resumed.tokens_consumed() == source.tokens_consumed()
    other = _source({"text": 1.0})
    with pytest.raises(ConfigError, match="the data mix changed"):
        other.load_state_dict(state)
    sharded = _source({"text": 0.3, "interleaved": 0.4, "speech": 0.3}, shard=1, num_shards=2)
    with pytest.raises(ConfigError, match="resume with the same number of data-parallel"):
        sharded.load_state_dict(state)


def test_epochs_reshuffle_and_shards_are_disjoint():
    def first_ids(source: MixedBatchSource, count: int) -> list[int]:
        seen: list[int] = []
        while len(seen) < count:
            batch = source.next_batch(1, 16)
            starts = (batch.labels[0] == -100).nonzero().flatten().tolist()
            seen += [int(batch.input_ids[0, s]) for s in starts]
        return seen[:count]

    whole = first_ids(_source({"text": 1.0}), 100)
    assert sorted(whole[:50]) == list(range(10_000, 10_050))  # epoch 0 visits each doc once
    assert sorted(whole[50:]) == sorted(whole[:50]) and whole[50:] != whole[:50]
    shards = [first_ids(_source({"text": 1.0}, shard=k, num_shards=2), 25) for k in (0, 1)]
    assert not set(shards[0]) & set(shards[1])
    assert sorted(shards[0] + shards[1]) == list(range(10_000, 10_050))


def test_one_pass_pads_and_stops():
    source = _source({"speech": 1.0}, shuffle=False, max_epochs=1)
    batches = []
    while not source.exhausted:
        batches.append(source.next_batch(2, 256))
    total = sum(len(source._parts[0].docs.document(i, 0)) for i in range(20))
    assert source.tokens_consumed()["speech"] == total
    last = batches[-1]
    pad = last.input_ids == -1
    assert pad.any() and (last.labels[pad] == -100).all()
    assert sum(b.tokens_by_stream["speech"] for b in batches) == total


def test_mix_without_data_is_an_error():
    parts = [Component("text", "main", _docs(0, 5, 10, 0))]
    with pytest.raises(ConfigError, match=r"stream 'speech' a share of 0\.5 but no data"):
        MixedBatchSource(parts, {"text": 0.5, "speech": 0.5}, seed=0, pad_id=0, unit_range=(0, 0))


# ----------------------------------------------------------------------------- factory


def _world_spec(**mix) -> RunSpec:
    return RunSpec(
        family="llama",
        modality=Modality.INTERLEAVED,
        tokens=10_000,
        size="mini-25k",
        mix=DataMix(**mix),
        seed=3,
    )


def test_factory_on_a_world(world: Path):
    spec = _world_spec(text_share=0.2, interleaved_share=0.5, speech_share=0.3, synthetic_share=0.4)
    _, vocab = build_model(spec, tokenizer=world / "tokenizer")
    data = RunData(spec, vocab, world)
    source = data.train_source()
    for _ in range(30):
        batch = source.next_batch(4, 128)
    consumed = source.tokens_consumed()
    total = 30 * 4 * 128
    for stream, share in (("text", 0.2), ("interleaved", 0.5), ("speech", 0.3)):
        assert abs(consumed[stream] / total - share) <= 0.02
    speech_sources = consumed["speech/synthetic"] + consumed["interleaved/synthetic"]
    assert abs(speech_sources / (consumed["speech"] + consumed["interleaved"]) - 0.4) <= 0.02
    assert (batch.input_ids == vocab.bos_token_id).any()
    assert not (batch.input_ids == vocab.pad_token_id).any()
    stats = data.stats()
    assert stats["tokens_per_doc/speech/real"] > 3 * stats["tokens_per_doc/text/main"]
    assert sum(v for k, v in stats.items() if k.startswith("sample_ratio/")) == pytest.approx(1)
    # interleaved documents mix modalities and start with bos + a modality token
    inter = data._components("train")[1]
    assert inter.key == "interleaved/real"
    doc = inter.docs.document(0, 0)
    assert doc[0] == vocab.bos_token_id and doc[1] in (vocab.speech_token_id, vocab.text_token_id)
    masks = [[inter.docs.mask(i, epoch) for i in range(100)] for epoch in (0, 1)]
    redrawn = sum(not np.array_equal(a, b) for a, b in zip(*masks, strict=True))
    assert redrawn >= 80  # every epoch draws new spans
    fraction = sum(m.sum() for m in masks[0]) / sum(len(m) for m in masks[0])
    assert abs(fraction - 0.3) < 0.05


def test_validation_sources_cover_the_valid_split_once(world: Path):
    spec = _world_spec(text_share=0.5, interleaved_share=0.5, speech_share=0.0)
    _, vocab = build_model(spec, tokenizer=world / "tokenizer")
    sources = make_validation_sources(spec, vocab, world)
    assert set(sources) == {"text", "interleaved"}
    text = sources["text"]
    while not text.exhausted:
        text.next_batch(4, 64)
    lines = (world / "text" / "valid.jsonl").read_text().splitlines()
    expected = sum(len(json.loads(line)["text"].split()) + 2 for line in lines)  # bos + <text>
    assert text.tokens_consumed()["text"] == expected
    first = make_validation_sources(spec, vocab, world)["interleaved"].next_batch(2, 64)
    again = make_validation_sources(spec, vocab, world)["interleaved"].next_batch(2, 64)
    assert torch.equal(first.input_ids, again.input_ids)


def test_factory_errors(world: Path, tmp_path: Path):
    textless = RunSpec(
        family="llama",
        modality=Modality.TEXTLESS,
        tokens=10,
        size="mini-25k",
        units_only_vocab=True,
    )
    _, units_only = build_model(textless)
    source = make_batch_source(textless, units_only, world, seed=1)
    batch = source.next_batch(2, 64)
    assert int(batch.input_ids.max()) < 502 and batch.unit_tokens > 120
    spec = _world_spec(text_share=0.5, interleaved_share=0.5, speech_share=0.0)
    with pytest.raises(ConfigError, match="units-only vocabulary cannot encode text"):
        RunData(spec, units_only, world)
    _, vocab = build_model(spec, tokenizer=world / "tokenizer")
    (tmp_path / "text").mkdir()
    with pytest.raises(ConfigError, match=r"data text train: no files under"):
        make_batch_source(spec, vocab, tmp_path)
    with pytest.raises(ConfigError, match="does not exist"):
        make_batch_source(spec, vocab, tmp_path / "missing")


def test_layout_file(world: Path, tmp_path: Path):
    (tmp_path / "slscale_data.json").write_text(
        json.dumps(
            {
                "sources": {
                    "text": {
                        "train": [str(world / "text" / "train.jsonl")],
                        "valid": [str(world / "text" / "valid.jsonl")],
                    }
                }
            }
        )
    )
    spec = _world_spec(text_share=1.0, interleaved_share=0.0, speech_share=0.0)
    _, vocab = build_model(spec, tokenizer=world / "tokenizer")
    assert make_batch_source(spec, vocab, tmp_path).next_batch(1, 32).tokens_by_stream == {
        "text": 32
    }
    (tmp_path / "slscale_data.json").write_text(json.dumps({"source": {}}))
    with pytest.raises(ConfigError, match="unknown key 'source'"):
        make_batch_source(spec, vocab, tmp_path)
    (tmp_path / "slscale_data.json").write_text(
        json.dumps({"sources": {"text": {"train": ["nothing*.jsonl"]}}})
    )
    with pytest.raises(ConfigError, match=r"sources.text.train: no file matches"):
        make_batch_source(spec, vocab, tmp_path)
