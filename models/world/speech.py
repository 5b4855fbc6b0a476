"""A pseudo-speech tokenizer: words → 25 Hz unit sequences with speakers, durations and noise.

It stands in for "TTS or a human reads the text, mHuBERT-25Hz + k-means turns the audio into
500 units, consecutive duplicates are collapsed":

* a word is pronounced letter by letter with a few rules (digraphs such as "th", "ee" are one
  phone; doubled letters and a final silent "e" are dropped), so a non-word gets a plausible
  pronunciation too; "." is a long pause;
* each of the 33 phones owns a block of 13 units, silence owns units 0–11 and units 441–499
  mark transitions between phones (coarticulation). Every phone has a typical onset unit and a
  typical body unit of its block — the clusters most speakers' audio of that phone falls in, as
  mHuBERT's units follow phones more than voices. A speaker realises a phone with 4 units
  (2 for the onset, 2 for the rest, one of the two drawn per occurrence), each the typical one
  except with probability ``speaker_spread``, where it is another unit of the block (how far
  this voice's audio lands from the majority's clusters); at its own speaking rate, with jitter
  on the durations; a pause of Poisson frames follows each word;
* the single "synthetic" speaker (a TTS voice) speaks at a fixed rate with little jitter and no
  noise; "real" speakers differ in their units, rate, jitter and pauses, and a small fraction
  of their segments is replaced by a random unit (noise).

Durations are in 40 ms frames (vowels ~3, consonants ~2 frames: 80–120 ms per phone, ~3 words
per second). :meth:`PseudoSpeech.render` is vectorised over many documents at once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from slscale.models.data.units import NUM_UNITS

SILENCE_UNITS = 12
PHONE_BLOCK = 13
_DIGRAPHS = ("th", "sh", "ch", "ng", "ee", "oo", "ou", "ow", "ai", "ea", "oa")
_LETTERS = tuple("abdefghijklmnoprstuvwz")
_MAPPED = {"c": "k", "q": "k", "y": "i"}
PHONES = ("<sil>", "<pause>", *_DIGRAPHS, *_LETTERS)
_PHONE_ID = {p: i for i, p in enumerate(PHONES)}
_VOWELS = set("aeiou") | {"ee", "oo", "ou", "ow", "ai", "ea", "oa"}
TRANSITION_BASE = SILENCE_UNITS + PHONE_BLOCK * (len(PHONES) - 2)
assert TRANSITION_BASE < NUM_UNITS


def pronounce(word: str) -> list[int]:
    """Phone ids of ``word`` (see the module docstring)."""
    if word == ".":
        return [_PHONE_ID["<pause>"]]
    phones: list[str] = []
    i, w = 0, word.lower()
    while i < len(w):
        pair = w[i : i + 2]
        if pair in _DIGRAPHS:
            phones.append(pair)
            i += 2
            continue
        letter = _MAPPED.get(w[i], w[i])
        silent_e = letter == "e" and i == len(w) - 1 and len(w) > 3 and w[i - 1] not in "aeiou"
        if not silent_e and (not phones or letter != phones[-1]):
            phones += ["k", "s"] if letter == "x" else [letter] if letter in _PHONE_ID else []
        i += 1
    return [_PHONE_ID[p] for p in phones]


@dataclasses.dataclass(frozen=True, kw_only=True)
class Voice:
    """How one speaker realises phones."""

    units: np.ndarray
    """int [num_phones, 4]: the speaker's units of each phone (2 onset, 2 body)."""
    rate: float
    """Duration multiplier (slow > 1)."""
    jitter: float
    """Std of the log-normal factor on each phone's duration."""
    pause_frames: float
    """Mean frames of silence after a word."""
    noise: float
    """Probability that a segment's unit is replaced by a random unit."""


@dataclasses.dataclass(frozen=True)
class Rendered:
    """One rendered document, in SlamKit's ``extract_features`` format plus its alignment."""

    units: np.ndarray
    durations: np.ndarray
    word_frames: np.ndarray
    """int [num_words, 2]: each word's [start, end) frame."""


def _phone_blocks() -> list[np.ndarray]:
    """The units of each phone: silence and pause share units 0–11, then 13 per phone."""
    blocks = [np.arange(SILENCE_UNITS)] + [
        SILENCE_UNITS + PHONE_BLOCK * k + np.arange(PHONE_BLOCK) for k in range(len(PHONES) - 2)
    ]
    return [blocks[max(0, p - 1)] for p in range(len(PHONES))]


class PseudoSpeech:
    """Deterministic voices from a seed: ``num_real`` real speakers and one synthetic one."""

    def __init__(self, seed: int, num_real: int = 20, speaker_spread: float = 1.0) -> None:
        if not 0.0 <= speaker_spread <= 1.0:
            raise ValueError(f"speaker_spread = {speaker_spread}: must be in [0, 1]")
        rng = np.random.default_rng([seed, 0x5BEE])
        blocks = _phone_blocks()
        typical = np.stack([rng.choice(b, 2, replace=False) for b in blocks])
        self.voices = [
            self._voice(rng, typical, blocks, speaker_spread, synthetic=False)
            for _ in range(num_real)
        ]
        self.voices.append(self._voice(rng, typical, blocks, speaker_spread, synthetic=True))
        self.synthetic = num_real
        self.transition = TRANSITION_BASE + rng.integers(
            0, NUM_UNITS - TRANSITION_BASE, size=(len(PHONES), len(PHONES))
        )
        self._prons: dict[str, np.ndarray] = {}
        is_vowel = np.array([p in _VOWELS for p in PHONES])
        self.base_frames = np.where(is_vowel, 3.0, 2.0)
        self.base_frames[_PHONE_ID["<pause>"]] = 6.0
        self._stack()

    @staticmethod
    def _voice(
        rng: np.random.Generator,
        typical: np.ndarray,
        blocks: list[np.ndarray],
        spread: float,
        synthetic: bool,
    ) -> Voice:
        """A voice whose units are the typical ones (slots 0–1 onset, 2–3 body) except with
        probability ``spread`` each, where they are any unit of the phone's block."""
        units = typical[:, [0, 0, 1, 1]].copy()
        for p, block in enumerate(blocks):
            stray = rng.random(4) < spread
            units[p, stray] = rng.choice(block, int(stray.sum()))
        if synthetic:
            return Voice(units=units, rate=1.0, jitter=0.1, pause_frames=1.0, noise=0.0)
        return Voice(
            units=units,
            rate=float(rng.uniform(0.8, 1.25)),
            jitter=float(rng.uniform(0.2, 0.35)),
            pause_frames=float(rng.uniform(0.3, 1.5)),
            noise=0.02,
        )

    def _stack(self) -> None:
        self._units = np.stack([v.units for v in self.voices])
        self._rate = np.array([v.rate for v in self.voices])
        self._jitter = np.array([v.jitter for v in self.voices])
        self._pause = np.array([v.pause_frames for v in self.voices])
        self._noise = np.array([v.noise for v in self.voices])

    def pronunciation(self, word: str) -> np.ndarray:
        if word not in self._prons:
            self._prons[word] = np.asarray(pronounce(word), dtype=np.int64)
        return self._prons[word]

    def render(
        self,
        docs: Sequence[Sequence[str]],
        speakers: Sequence[int] | np.ndarray,
        rng: np.random.Generator,
    ) -> list[Rendered]:
        """Render documents (lists of words), document i by voice ``speakers[i]``."""
        from slscale.models.world._render import render_batch

        return render_batch(self, docs, np.asarray(speakers, dtype=np.int64), rng)
