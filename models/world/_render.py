"""Vectorised rendering of many documents at once (the mechanics behind PseudoSpeech.render).

Every word occurrence becomes ``3·phones + 1`` segments: per phone an optional one-frame
transition unit, an onset unit and a body unit (the phone's frames split at a random point),
then a pause. Segments are laid out in one array for the whole batch, noise is applied, empty
segments are dropped and consecutive duplicates collapsed inside each document.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from slscale.models.data.units import NUM_UNITS

if TYPE_CHECKING:
    from slscale.models.world.speech import PseudoSpeech, Rendered

COARTICULATION = 0.25
"""Probability of a one-frame transition unit between two phones of a word."""


def _gather(table: list[np.ndarray], index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate ``table[i]`` for i in ``index``; also return each piece's length."""
    lengths = np.array([len(t) for t in table], dtype=np.int64)[index]
    flat = np.concatenate(table)
    starts = np.concatenate(([0], np.cumsum([len(t) for t in table])))[index]
    offsets = np.repeat(starts - np.concatenate(([0], np.cumsum(lengths)[:-1])), lengths)
    return flat[offsets + np.arange(lengths.sum())], lengths


def render_batch(
    speech: PseudoSpeech,
    docs: Sequence[Sequence[str]],
    speakers: np.ndarray,
    rng: np.random.Generator,
) -> list[Rendered]:
    vocab = sorted({w for doc in docs for w in doc})
    row = {w: i for i, w in enumerate(vocab)}
    word_row = np.array([row[w] for doc in docs for w in doc], dtype=np.int64)
    words_per_doc = np.array([len(doc) for doc in docs], dtype=np.int64)
    word_doc = np.repeat(np.arange(len(docs)), words_per_doc)
    word_spk = speakers[word_doc]
    phones, phones_per_word = _gather([speech.pronunciation(w) for w in vocab], word_row)
    seg_units, seg_lens, word_base = _segments(speech, phones, phones_per_word, word_spk, rng)
    seg_doc = np.repeat(word_doc, 3 * phones_per_word + 1)
    _add_noise(speech, seg_units, seg_lens, speakers[seg_doc], rng)
    frame_start = np.cumsum(seg_lens) - seg_lens
    word_frames = np.stack(
        [frame_start[word_base], frame_start[word_base + 3 * phones_per_word]], axis=1
    )
    return _split_docs(seg_units, seg_lens, seg_doc, word_frames, words_per_doc)


def _segments(
    speech: PseudoSpeech,
    phones: np.ndarray,
    per_word: np.ndarray,
    word_spk: np.ndarray,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Units and frame counts of every segment; the index of each word's first segment."""
    spk = np.repeat(word_spk, per_word)
    first_of_word = np.concatenate(([0], np.cumsum(per_word)[:-1]))
    in_word = np.arange(len(phones)) - np.repeat(first_of_word, per_word)
    frames = (
        speech.base_frames[phones]
        * speech._rate[spk]
        * np.exp(speech._jitter[spk] * rng.standard_normal(len(phones)))
    )
    frames = np.maximum(1, np.rint(frames)).astype(np.int64)
    onset = 1 + np.floor(rng.random(len(phones)) * frames).astype(np.int64)
    previous = np.concatenate(([0], phones[:-1]))
    transition = (in_word > 0) & (rng.random(len(phones)) < COARTICULATION)
    choice = rng.integers(0, 2, size=(2, len(phones)))
    word_base = np.concatenate(([0], np.cumsum(3 * per_word + 1)[:-1]))
    seg = np.repeat(word_base, per_word) + 3 * in_word
    units = np.zeros(int((3 * per_word + 1).sum()), dtype=np.int64)
    lens = np.zeros_like(units)
    units[seg], lens[seg] = speech.transition[previous, phones], transition
    units[seg + 1], lens[seg + 1] = speech._units[spk, phones, choice[0]], onset
    units[seg + 2], lens[seg + 2] = speech._units[spk, phones, 2 + choice[1]], frames - onset
    pause = word_base + 3 * per_word
    units[pause] = speech._units[word_spk, 0, rng.integers(0, 4, len(word_spk))]
    lens[pause] = rng.poisson(speech._pause[word_spk])
    return units, lens, word_base


def _add_noise(
    speech: PseudoSpeech,
    units: np.ndarray,
    lens: np.ndarray,
    seg_spk: np.ndarray,
    rng: np.random.Generator,
) -> None:
    hit = (lens > 0) & (rng.random(len(units)) < speech._noise[seg_spk])
    units[hit] = rng.integers(0, NUM_UNITS, int(hit.sum()))


def _split_docs(
    units: np.ndarray,
    lens: np.ndarray,
    seg_doc: np.ndarray,
    word_frames: np.ndarray,
    words_per_doc: np.ndarray,
) -> list[Rendered]:
    from slscale.models.world.speech import Rendered

    keep = lens > 0
    units, lens, seg_doc = units[keep], lens[keep], seg_doc[keep]
    new = np.concatenate(([True], (units[1:] != units[:-1]) | (seg_doc[1:] != seg_doc[:-1])))
    starts = np.flatnonzero(new)
    out_units, out_lens, out_doc = units[starts], np.add.reduceat(lens, starts), seg_doc[starts]
    doc_bounds = np.searchsorted(out_doc, np.arange(len(words_per_doc) + 1))
    frame_bounds = np.concatenate(([0], np.cumsum(out_lens)))[doc_bounds]
    word_bounds = np.concatenate(([0], np.cumsum(words_per_doc)))
    return [
        Rendered(
            units=out_units[doc_bounds[d] : doc_bounds[d + 1]],
            durations=out_lens[doc_bounds[d] : doc_bounds[d + 1]],
            word_frames=word_frames[word_bounds[d] : word_bounds[d + 1]] - frame_bounds[d],
        )
        for d in range(len(words_per_doc))
    ]
