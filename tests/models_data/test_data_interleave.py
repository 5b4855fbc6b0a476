"""Interleaving: span statistics (property tests), separation, modality tokens, round trips."""

from __future__ import annotations

import itertools

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from slscale.models.data.interleave import assemble, runs, select_speech_spans

SPEECH_ID, TEXT_ID = 100_000, 100_001


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31), lam=st.sampled_from([3.0, 5.0, 10.0]), eta=st.floats(0.15, 0.5))
def test_fraction_and_span_length_over_many_documents(seed: int, lam: float, eta: float):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(int(8 * lam), int(40 * lam), size=300)
    speech_words = total_words = 0
    spans: list[int] = []
    for n in lengths:
        mask = select_speech_spans(int(n), rng, lam, eta)
        speech_words += int(mask.sum())
        total_words += int(n)
        spans += [end - start for start, end, is_speech in runs(mask) if is_speech]
    assert abs(speech_words / total_words - eta) <= 0.03
    assert abs(np.mean(spans) / lam - 1) <= 0.10


@settings(max_examples=200, deadline=None)
@given(
    n=st.integers(0, 200),
    seed=st.integers(0, 2**31),
    lam=st.floats(0.5, 20),
    eta=st.floats(0.01, 0.99),
)
def test_spans_never_touch_and_some_text_remains(n: int, seed: int, lam: float, eta: float):
    mask = select_speech_spans(n, np.random.default_rng(seed), lam, eta)
    assert mask.shape == (n,)
    if n >= 2:
        assert not mask.all()  # at least one text word
    # runs alternate by construction; two speech runs are separated by >= 1 text word
    kinds = [is_speech for _, _, is_speech in runs(mask)]
    assert all(a != b for a, b in itertools.pairwise(kinds))


def test_seeded_and_redrawn():
    a = select_speech_spans(300, np.random.default_rng([1, 0]), 10, 0.3)
    b = select_speech_spans(300, np.random.default_rng([1, 0]), 10, 0.3)
    c = select_speech_spans(300, np.random.default_rng([1, 1]), 10, 0.3)
    assert (a == b).all() and not (a == c).all()


def _doc(num_words: int, rng: np.random.Generator):
    """Words with 1–2 text ids each and 1–4 units each (a pause unit between some words)."""
    word_ids = [np.arange(rng.integers(1, 3), dtype=np.int32) + 10 * i for i in range(num_words)]
    spans, units, cursor = [], [], 0
    for i in range(num_words):
        k = int(rng.integers(1, 5))
        spans.append([cursor, cursor + k])
        units += [5000 + 10 * i + j for j in range(k)]
        cursor += k
        if rng.random() < 0.3:
            units.append(4999)  # pause, inside a span only when both neighbours are speech
            cursor += 1
    return word_ids, np.asarray(spans), np.asarray(units, dtype=np.int32)


@settings(max_examples=100, deadline=None)
@given(n=st.integers(1, 120), seed=st.integers(0, 2**31))
def test_assembled_tokens_round_trip(n: int, seed: int):
    rng = np.random.default_rng(seed)
    word_ids, spans, units = _doc(n, rng)
    mask = select_speech_spans(n, rng, 10, 0.3)
    ids = assemble(mask, word_ids, spans, units, SPEECH_ID, TEXT_ID)
    segments = []
    for token in ids.tolist():
        if token in (SPEECH_ID, TEXT_ID):
            segments.append((token, []))
        else:
            segments[-1][1].append(token)  # the document starts with a modality token
    expected = runs(mask)
    assert len(segments) == len(expected)
    for (token, body), (start, end, is_speech) in zip(segments, expected, strict=True):
        assert token == (SPEECH_ID if is_speech else TEXT_ID)
        if is_speech:
            assert body == units[spans[start, 0] : spans[end - 1, 1]].tolist()
        else:  # text spans give back exactly their words' ids, in order
            assert body == np.concatenate(word_ids[start:end]).tolist()
    switches = sum(1 for a, b in itertools.pairwise(mask) if a != b)
    assert int(np.isin(ids, [SPEECH_ID, TEXT_ID]).sum()) == switches + 1


def test_speech_span_without_units_is_written_as_text():
    word_ids = [np.array([1]), np.array([2]), np.array([3])]
    spans = np.array([[0, 1], [1, 1], [1, 2]])  # word 1 has no unit
    mask = np.array([False, True, False])
    ids = assemble(mask, word_ids, spans, np.array([7, 8]), SPEECH_ID, TEXT_ID)
    assert ids.tolist() == [TEXT_ID, 1, 2, 3]
