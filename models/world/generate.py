"""Write a miniature world to a folder, deterministically from a seed.

Layout (the data layout :mod:`slscale.models.data.layout` reads)::

    world.json                        what was generated, with counts and the seed
    tokenizer/                        word-level text tokenizer (AutoTokenizer loads it)
    text/{train,valid}.jsonl          {"text": "tom is in the barn . …"}
    speech/real/{train,valid}.jsonl   SlamKit rows: file_name, speaker, units, duration,
                                      aligned_text [[word, start_s, end_s], …], text
    speech/synthetic/{train,valid}.jsonl   the same, one synthetic voice
    eval/*.jsonl, eval/index.json     pair manifests (see :mod:`.evalsets`)

The text, real-speech and synthetic-speech corpora are different stories from the same world
(as a text corpus and a speech corpus are in practice). Real speech is read by the first
``num_real_speakers - held_out_speakers`` speakers; the held-out ones read the multi-speaker
evaluation sets. Every 50th story goes to ``valid``. Words are counted with "." included.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from slscale.errors import ConfigError
from slscale.models.data.units import FRAME_SECONDS
from slscale.models.world.evalsets import write_eval_sets
from slscale.models.world.lexicon import Lexicon, all_words
from slscale.models.world.speech import PseudoSpeech
from slscale.models.world.stories import Story, draw_stories
from slscale.models.world.tokenizer import save_tokenizer

log = logging.getLogger(__name__)

WORLD_FILE = "world.json"
RENDER_CHUNK = 2000
"""Documents rendered per vectorised call."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class WorldConfig:
    """What to generate."""

    seed: int = 0
    """Everything follows from this seed."""
    words: int = 1_000_000
    """Words of the text corpus."""
    speech_words: int | None = None
    """Words of the real (multi-speaker) speech corpus; None: as many as ``words``."""
    synthetic_words: int | None = None
    """Words of the synthetic (single-voice) speech corpus; None: half of ``words``."""
    eval_pairs: int = 1000
    """Pairs per evaluation set."""
    num_real_speakers: int = 20
    """Real voices, including the held-out ones."""
    held_out_speakers: int = 4
    """Real voices kept for the multi-speaker evaluation sets."""
    valid_every: int = 50
    """Every n-th story goes to the validation split."""
    topics: int = 10
    """Topics the stories draw from (of the lexicon's 10). Stands for the breadth of the
    training corpus's subject matter: tSC asks whether an ending stays on the prompt's topic,
    so fewer topics make the semantics a small model can learn at a given compute (the
    ``small`` demo uses 4)."""
    objects_per_topic: int = 6
    """Objects of each topic the stories use (of 6): the content-word vocabulary per topic,
    which sSC's causal endings hinge on."""
    names: int = 16
    """Characters the stories use (of 16): the proper-noun vocabulary."""
    speaker_spread: float = 1.0
    """Probability that a voice's unit of a phone is not the phone's typical unit (see
    :class:`~slscale.models.world.speech.PseudoSpeech`). Stands for how far speakers' audio
    lands from the majority's k-means clusters: mHuBERT-25Hz units follow phones more than
    voices, so real speakers share most units of a phone (a spread well below 1; the
    ``small`` demo uses 0.3); 1.0 gives every voice its own units, an upper bound on
    speaker variability."""

    def __post_init__(self) -> None:
        for name in ("words", "eval_pairs", "valid_every"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"field '{name}' = {getattr(self, name)}: must be positive")
        for name in ("speech_words", "synthetic_words"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ConfigError(f"field '{name}' = {value}: must be >= 0 (0: no such speech)")
        if not 0.0 <= self.speaker_spread <= 1.0:
            raise ConfigError(f"field 'speaker_spread' = {self.speaker_spread}: must be in [0, 1]")
        try:
            _ = self.lexicon  # checks the sizes
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        if not 0 < self.held_out_speakers < self.num_real_speakers:
            raise ConfigError(
                f"field 'held_out_speakers' = {self.held_out_speakers}: must be "
                f"in (0, num_real_speakers={self.num_real_speakers})"
            )

    @property
    def lexicon(self) -> Lexicon:
        return Lexicon.sized(self.topics, self.objects_per_topic, self.names)

    @property
    def real_words(self) -> int:
        return self.words if self.speech_words is None else self.speech_words

    @property
    def tts_words(self) -> int:
        return self.words // 2 if self.synthetic_words is None else self.synthetic_words


def sub_seed(seed: int, name: str) -> int:
    """An independent seed for one part of the world."""
    return zlib.crc32(f"{seed}/{name}".encode())


def generate_world(out_dir: Path, config: WorldConfig) -> dict[str, Any]:
    """Write the world (see the module docstring) and return what ``world.json`` records."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    save_tokenizer(all_words(), out_dir / "tokenizer")
    speech = PseudoSpeech(
        sub_seed(config.seed, "voices"), config.num_real_speakers, config.speaker_spread
    )
    train_speakers = config.num_real_speakers - config.held_out_speakers
    counts = {"text": _write_text(out_dir / "text", config)}
    if config.real_words > 0:
        counts["speech/real"] = _write_speech(
            out_dir / "speech" / "real", "real", config, speech, list(range(train_speakers))
        )
    if config.tts_words > 0:
        counts["speech/synthetic"] = _write_speech(
            out_dir / "speech" / "synthetic", "synthetic", config, speech, [speech.synthetic]
        )
    held_out = list(range(train_speakers, config.num_real_speakers))
    eval_started = time.perf_counter()
    index = write_eval_sets(
        out_dir / "eval",
        sub_seed(config.seed, "eval"),
        config.eval_pairs,
        speech,
        held_out,
        config.lexicon,
    )
    counts["eval"] = {"sets": len(index), "seconds": round(time.perf_counter() - eval_started, 2)}
    (out_dir / "eval" / "index.json").write_text(json.dumps(index, indent=2) + "\n")
    record = {
        "config": dataclasses.asdict(config),
        "counts": counts,
        "vocabulary_words": len(all_words()),
        "story_words": len(config.lexicon.words()),
        "eval_sets": [e["file"] for e in index],
        "seconds": round(time.perf_counter() - started, 2),
    }
    (out_dir / WORLD_FILE).write_text(json.dumps(record, indent=2) + "\n")
    return record


def _split(stories: list[Story], every: int) -> Iterator[tuple[str, int, Story]]:
    for i, story in enumerate(stories):
        yield ("valid" if i % every == every - 1 else "train"), i, story


def _write_text(folder: Path, config: WorldConfig) -> dict[str, float]:
    started = time.perf_counter()
    folder.mkdir(parents=True, exist_ok=True)
    stories = draw_stories(sub_seed(config.seed, "text"), config.words, config.lexicon)
    counts: dict[str, float] = {"documents": len(stories), "words": 0}
    with _open_splits(folder) as files:
        for split, _, story in _split(stories, config.valid_every):
            words = story.words
            counts["words"] += len(words)
            files[split].write(json.dumps({"text": " ".join(words)}) + "\n")
    counts["seconds"] = round(time.perf_counter() - started, 2)
    return counts


def _write_speech(
    folder: Path, kind: str, config: WorldConfig, speech: PseudoSpeech, speakers: list[int]
) -> dict[str, float]:
    started = time.perf_counter()
    folder.mkdir(parents=True, exist_ok=True)
    words = config.real_words if kind == "real" else config.tts_words
    stories = draw_stories(sub_seed(config.seed, f"speech/{kind}"), words, config.lexicon)
    rng = np.random.default_rng(sub_seed(config.seed, f"render/{kind}"))
    voices = np.asarray(speakers)[rng.integers(0, len(speakers), len(stories))]
    counts: dict[str, float] = {"documents": len(stories), "words": 0, "units": 0, "frames": 0}
    with _open_splits(folder) as files:
        for start in range(0, len(stories), RENDER_CHUNK):
            chunk = stories[start : start + RENDER_CHUNK]
            rendered = speech.render(
                [s.words for s in chunk], voices[start : start + len(chunk)], rng
            )
            for i, (story, r) in enumerate(zip(chunk, rendered, strict=True)):
                index, voice = start + i, int(voices[start + i])
                split = "valid" if index % config.valid_every == config.valid_every - 1 else "train"
                files[split].write(_speech_row(kind, index, voice, speech, story, r) + "\n")
                counts["words"] += len(story.words)
                counts["units"] += len(r.units)
                counts["frames"] += int(r.durations.sum())
    counts["seconds"] = round(time.perf_counter() - started, 2)
    return counts


def _speech_row(
    kind: str, index: int, voice: int, speech: PseudoSpeech, story: Story, rendered: Any
) -> str:
    seconds = np.round(rendered.word_frames * FRAME_SECONDS, 2).tolist()
    return json.dumps(
        {
            "file_name": f"{kind}/{index:07d}",
            "speaker": "tts" if voice == speech.synthetic else f"spk{voice:02d}",
            "units": rendered.units.tolist(),
            "duration": rendered.durations.tolist(),
            "aligned_text": [[w, s, e] for w, (s, e) in zip(story.words, seconds, strict=True)],
            "text": " ".join(story.words),
        },
        separators=(",", ":"),
    )


class _open_splits:
    """``train.jsonl`` and ``valid.jsonl`` of a folder, opened for writing together."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.files: dict[str, TextIO] = {}

    def __enter__(self) -> dict[str, TextIO]:
        self.files = {
            s: (self.folder / f"{s}.jsonl").open("w", encoding="utf-8") for s in ("train", "valid")
        }
        return self.files

    def __exit__(self, *exc: object) -> None:
        for handle in self.files.values():
            handle.close()
