"""Evaluation sets of the miniature world, written as pair manifests.

* ``ssc`` (spoken StoryCloze-like): a story without its ending; the positive is the true
  ending, the negative breaks the causal chain on the same character — the effect of another
  cause on the right object ("wrong_effect": *tom loses the cart … tom fixes the cart*) or the
  right effect on another object of the topic ("wrong_object"). Both negatives are endings of
  other stories of the same topic, so their word statistics match the positives': a bigram
  model scores about 0.5, a model that tracks the cause and its object near 1.
* ``tsc`` (topic StoryCloze-like): the negative is an ending from a story of another topic
  (the character's name kept).
* ``sblimp``: grammatical vs ungrammatical sentences: subject-verb agreement, agreement across
  an attractor, determiner-noun number, word order.
* ``swuggy``: a word of the world vs a non-word one letter away that is pronounced differently
  from every word (speech only: a word-level text tokenizer cannot spell a non-word).

Variants: prompt→continuation modality ``ss``, ``st``, ``ts``, ``tt`` (``s``/``t`` without a
prompt), spoken by the synthetic voice (as the spoken StoryCloze TTS sets are), and ``ms_``
variants spoken by held-out real speakers, one per pair.
"""

from __future__ import annotations

import dataclasses
import random
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from slscale.models.data.manifest import SPEECH, TEXT, EvalItem, EvalPair, write_manifest
from slscale.models.world.lexicon import EVENTS, FULL, FUNCTION_WORDS, Lexicon, all_words
from slscale.models.world.speech import PseudoSpeech
from slscale.models.world.stories import (
    agreement_sentence,
    attractor_sentence,
    determiner_sentence,
    draw_story,
    ending_sentence,
)

Words = list[str]


@dataclasses.dataclass(frozen=True)
class TextPair:
    id: str
    task: str
    prompt: Words | None
    positive: Words
    negative: Words
    kind: str


def ssc_pairs(seed: int, count: int, lexicon: Lexicon = FULL) -> Iterator[TextPair]:
    rng = random.Random(seed)
    for i in range(count):
        story = draw_story(rng, lexicon)
        if i % 2 == 0:
            others = [o for o in lexicon.topics[story.topic].objects if o != story.obj]
            negative, kind = (
                ending_sentence(story.name, story.event, rng.choice(others)),
                "wrong_object",
            )
        else:
            event = rng.choice([e for e in range(len(EVENTS)) if e != story.event])
            negative, kind = ending_sentence(story.name, event, story.obj), "wrong_effect"
        yield TextPair(f"ssc-{i:05d}", "ssc", story.prompt, story.ending, list(negative), kind)


def tsc_pairs(seed: int, count: int, lexicon: Lexicon = FULL) -> Iterator[TextPair]:
    rng = random.Random(seed)
    topics = lexicon.topics
    for i in range(count):
        story = draw_story(rng, lexicon)
        topic = rng.choice([t for t in range(len(topics)) if t != story.topic])
        negative = ending_sentence(
            story.name, rng.randrange(len(EVENTS)), rng.choice(topics[topic].objects)
        )
        yield TextPair(
            f"tsc-{i:05d}", "tsc", story.prompt, story.ending, list(negative), "other_topic"
        )


def sblimp_pairs(seed: int, count: int, lexicon: Lexicon = FULL) -> Iterator[TextPair]:
    rng = random.Random(seed)
    kinds = ("agreement", "attractor", "determiner", "word_order")
    for i in range(count):
        kind, topic = kinds[i % len(kinds)], rng.choice(lexicon.topics)
        c, v, flag = rng.randrange(3), rng.randrange(3), rng.random() < 0.5
        if kind == "agreement":
            good, bad = (agreement_sentence(topic, c, v, flag, agree) for agree in (True, False))
        elif kind == "attractor":
            other = (c + 1 + rng.randrange(2)) % 3
            good, bad = (attractor_sentence(topic, c, other, v, flag, a) for a in (True, False))
        elif kind == "determiner":
            name = rng.choice(lexicon.names)
            good, bad = (determiner_sentence(name, topic, c, flag, a) for a in (True, False))
        else:
            good = (
                rng.choice(lexicon.names),
                rng.choice(EVENTS).cause,
                "the",
                rng.choice(topic.objects),
                ".",
            )
            bad = (good[0], good[2], good[1], good[3], good[4])
        yield TextPair(f"sblimp-{i:05d}", "sblimp", None, list(good), list(bad), kind)


def swuggy_pairs(
    seed: int, count: int, speech: PseudoSpeech, lexicon: Lexicon = FULL
) -> Iterator[TextPair]:
    rng = random.Random(seed)
    vocab = all_words()  # a non-word is no word of the full lexicon, used or not
    content = [w for w in lexicon.words() if len(w) >= 3 and w not in FUNCTION_WORDS]
    spoken = {tuple(speech.pronunciation(w)) for w in vocab}
    for i in range(count):
        word = rng.choice(content)
        nonword = _nonword(rng, word, set(vocab), spoken, speech)
        yield TextPair(f"swuggy-{i:05d}", "swuggy", None, [word], [nonword], "nonword")


def _nonword(
    rng: random.Random,
    word: str,
    vocab: set[str],
    spoken: set[tuple[int, ...]],
    speech: PseudoSpeech,
) -> str:
    vowels, consonants = "aeiou", "bdfgklmnprstvz"
    for _ in range(1000):
        i = rng.randrange(len(word))
        pool = vowels if word[i] in vowels else consonants
        candidate = word[:i] + rng.choice(pool) + word[i + 1 :]
        if candidate not in vocab and tuple(speech.pronunciation(candidate)) not in spoken:
            return candidate
    raise AssertionError(f"no non-word found for {word!r}")


# ----------------------------------------------------------------------------- rendering


@dataclasses.dataclass(frozen=True)
class Variant:
    name: str
    """File stem suffix: ss, st, ts, tt, s, t."""
    prompt: str | None
    continuation: str
    multi_speaker: bool = False


VARIANTS = {
    "story": [
        Variant("ss", SPEECH, SPEECH),
        Variant("st", SPEECH, TEXT),
        Variant("ts", TEXT, SPEECH),
        Variant("tt", TEXT, TEXT),
        Variant("ss", SPEECH, SPEECH, True),
        Variant("st", SPEECH, TEXT, True),
        Variant("ts", TEXT, SPEECH, True),
    ],
    "sblimp": [
        Variant("s", None, SPEECH),
        Variant("t", None, TEXT),
        Variant("s", None, SPEECH, True),
    ],
    "swuggy": [Variant("s", None, SPEECH), Variant("s", None, SPEECH, True)],
}


def render_variant(
    pairs: list[TextPair],
    variant: Variant,
    speech: PseudoSpeech,
    speakers: list[int],
    rng: np.random.Generator,
) -> list[EvalPair]:
    """Render ``pairs`` in ``variant``'s modalities (multi-speaker variants: one of
    ``speakers`` per pair; otherwise the synthetic voice)."""
    voices = (
        [speakers[int(k)] for k in rng.integers(0, len(speakers), len(pairs))]
        if variant.multi_speaker
        else [speech.synthetic] * len(pairs)
    )
    slots = [
        (i, role, words)
        for i, p in enumerate(pairs)
        for role, words, modality in (
            ("prompt", p.prompt, variant.prompt),
            ("positive", p.positive, variant.continuation),
            ("negative", p.negative, variant.continuation),
        )
        if words is not None and modality == SPEECH
    ]
    rendered = (
        speech.render([w for _, _, w in slots], [voices[i] for i, _, _ in slots], rng)
        if slots
        else []
    )
    units = {(i, role): r.units for (i, role, _), r in zip(slots, rendered, strict=True)}
    out = []
    for i, pair in enumerate(pairs):
        name = "tts" if voices[i] == speech.synthetic else f"spk{voices[i]:02d}"
        items = {
            role: _item(words, modality, units.get((i, role)), name)
            for role, words, modality in (
                ("prompt", pair.prompt, variant.prompt),
                ("positive", pair.positive, variant.continuation),
                ("negative", pair.negative, variant.continuation),
            )
        }
        positive, negative = items["positive"], items["negative"]
        assert positive is not None and negative is not None
        out.append(
            EvalPair(
                id=pair.id,
                task=pair.task,
                prompt=items["prompt"],
                positive=positive,
                negative=negative,
                meta={"negative": pair.kind, "speaker": name},
            )
        )
    return out


def _item(
    words: Words | None, modality: str | None, units: np.ndarray | None, speaker: str
) -> EvalItem | None:
    if words is None or modality is None:
        return None
    if modality == TEXT:
        return EvalItem(modality=TEXT, text=" ".join(words))
    return EvalItem(modality=SPEECH, units=units, speaker=speaker)


def write_eval_sets(
    out_dir: Path,
    seed: int,
    count: int,
    speech: PseudoSpeech,
    held_out_speakers: list[int],
    lexicon: Lexicon = FULL,
) -> list[dict[str, object]]:
    """Write every task × variant manifest under ``out_dir``; return the index entries."""
    tasks = {
        "ssc": (list(ssc_pairs(seed + 1, count, lexicon)), "story"),
        "tsc": (list(tsc_pairs(seed + 2, count, lexicon)), "story"),
        "sblimp": (list(sblimp_pairs(seed + 3, count, lexicon)), "sblimp"),
        "swuggy": (list(swuggy_pairs(seed + 4, count, speech, lexicon)), "swuggy"),
    }
    index: list[dict[str, object]] = []
    for task, (pairs, family) in tasks.items():
        for k, variant in enumerate(VARIANTS[family]):
            rng = np.random.default_rng([seed, 0xE7A1, zlib.crc32(f"{task}/{k}".encode())])
            stem = f"{'ms_' if variant.multi_speaker else ''}{task}_{variant.name}"
            count_written = write_manifest(
                render_variant(pairs, variant, speech, held_out_speakers, rng),
                out_dir / f"{stem}.jsonl",
            )
            index.append(
                {
                    "file": f"{stem}.jsonl",
                    "task": task,
                    "variant": variant.name,
                    "prompt_modality": variant.prompt,
                    "continuation_modality": variant.continuation,
                    "speakers": "held-out real" if variant.multi_speaker else "tts",
                    "pairs": count_written,
                }
            )
    return index
