"""Speech-text interleaving at word boundaries (SIMS, arXiv 2504.02398; SpiritLM).

Each document's words are split into *speech spans* whose lengths are drawn from
Poisson(λ) (λ = ``span_mean_words``, SIMS: 10) until a fraction η (``speech_fraction``, SIMS:
0.3) of the words is covered; the remaining words are text. Spans never touch: at least one
text word lies between two spans. Each run of words is written after a modality token
(``<speech>`` or ``<text>``), so there is one at the start and one at every switch; a speech span
is the units from its first word's start to its last word's end (pauses inside included).

Differences from SlamKit's ``select_spans_poisson``, which draws once offline from the global
NumPy RNG: the draw takes an explicit generator (the streams seed it per epoch and document,
so it is reproducible and redrawn every epoch), and the last span is kept with the probability
that makes the expected speech fraction exactly η instead of always overshooting it. Span
lengths are zero-truncated Poisson draws (a span has at least one word). In short documents
the fit (spans plus separating text words must fit in the document, with at least one text
word) shortens spans, so the mean span length is close to λ only when documents hold several
spans' worth of words.
"""

from __future__ import annotations

import itertools

import numpy as np


def select_speech_spans(
    num_words: int, rng: np.random.Generator, span_mean_words: float, speech_fraction: float
) -> np.ndarray:
    """Boolean mask over the words: True where the word is rendered as speech."""
    mask = np.zeros(num_words, dtype=bool)
    if num_words < 2:
        mask[:] = num_words == 1 and rng.random() < speech_fraction
        return mask
    lengths = _fit(_draw_lengths(rng, num_words * speech_fraction, span_mean_words), num_words)
    if not lengths:
        return mask
    gaps = _gaps(rng, num_words - sum(lengths), len(lengths))
    position = 0
    for gap, length in zip(gaps, lengths, strict=False):
        position += gap
        mask[position : position + length] = True
        position += length
    return mask


def _draw_lengths(rng: np.random.Generator, target: float, mean: float) -> list[int]:
    """Poisson lengths while they fit the target; the one that would overshoot it is kept
    with probability (target - covered) / length, so the expected coverage is the target."""
    lengths: list[int] = []
    covered = 0
    while covered < target:
        length = 0
        while length == 0:
            length = int(rng.poisson(mean))
        if covered + length > target:
            if rng.random() < (target - covered) / length:
                lengths.append(length)
            break
        lengths.append(length)
        covered += length
    return lengths


def _fit(lengths: list[int], num_words: int) -> list[int]:
    """Drop spans, then shorten a lone span, until the spans, a text word between each two,
    and at least one text word in all fit in the document."""
    while len(lengths) > 1 and sum(lengths) + len(lengths) - 1 > num_words:
        lengths.pop()
    if len(lengths) == 1 and lengths[0] > num_words - 1:
        lengths[0] = num_words - 1
    return lengths


def _gaps(rng: np.random.Generator, text_words: int, num_spans: int) -> list[int]:
    """Text words before each span (inner gaps at least 1), uniformly over compositions."""
    free = text_words - (num_spans - 1)
    bars = np.sort(rng.choice(free + num_spans, size=num_spans, replace=False))
    slots = np.diff(np.concatenate(([-1], bars))) - 1  # stars before each bar
    return [int(s) + (1 if i > 0 else 0) for i, s in enumerate(slots)]


def runs(mask: np.ndarray) -> list[tuple[int, int, bool]]:
    """Maximal runs of equal values: ``(start, end, is_speech)``."""
    if mask.size == 0:
        return []
    cuts = np.flatnonzero(mask[1:] != mask[:-1]) + 1
    bounds = np.concatenate(([0], cuts, [mask.size]))
    return [(int(a), int(b), bool(mask[a])) for a, b in itertools.pairwise(bounds)]


def assemble(
    mask: np.ndarray,
    word_ids: list[np.ndarray],
    word_spans: np.ndarray,
    unit_ids: np.ndarray,
    speech_id: int,
    text_id: int,
) -> np.ndarray:
    """Token ids of one interleaved document (int32).

    ``word_ids[i]`` are word i's text token ids, ``word_spans[i]`` its unit range, ``unit_ids``
    the document's unit token ids. A speech span whose words hold no unit (possible for very
    short words after de-duplication) is written as text instead.
    """
    pieces: list[np.ndarray] = []
    for start, end, is_speech in runs(_drop_empty_spans(mask, word_spans)):
        if is_speech:
            units = unit_ids[word_spans[start, 0] : word_spans[end - 1, 1]]
            pieces += [np.array([speech_id], np.int32), units]
        else:
            pieces += [np.array([text_id], np.int32), *word_ids[start:end]]
    return np.concatenate(pieces).astype(np.int32) if pieces else np.zeros(0, np.int32)


def _drop_empty_spans(mask: np.ndarray, word_spans: np.ndarray) -> np.ndarray:
    out = mask.copy()
    for start, end, is_speech in runs(mask):
        if is_speech and word_spans[end - 1, 1] <= word_spans[start, 0]:
            out[start:end] = False
    return out
