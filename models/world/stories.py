"""Short stories of the miniature world, drawn from a seed.

A story (5–9 sentences, about 35 words) is::

    intro        tom is in the barn .
    0–1 filler   the hens near the cow eat .
    cause        tom loses the cart .
    1–2 fillers  it is muddy in the field .
    0–1 middle   tom looks for the cart .          (the event's next step, half of the time)
    0–1 filler   tom sees two goats .
    ending       tom finds the cart .              (the cause's effect, on the same object)

Fillers describe the topic (its creatures, places, adjectives) with number agreement, some
across an attractor ("the cow near the hens eats"). All choices are uniform, and the ending
depends on the story only through the cause and its object, several sentences back: a bigram
model cannot tell a true ending from the effect of another cause or on another object, but a
model that tracks the story can.
"""

from __future__ import annotations

import dataclasses
import random

from slscale.models.world.lexicon import EVENTS, FULL, Lexicon, Topic, plural, singular_verb

Sentence = tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Story:
    """One story and the facts its ending depends on."""

    topic: int
    """Index into the lexicon's topics."""
    name: str
    event: int
    """Index into EVENTS."""
    obj: str
    sentences: tuple[Sentence, ...]
    """All sentences; the last one is the ending."""

    @property
    def prompt(self) -> list[str]:
        return [w for s in self.sentences[:-1] for w in s]

    @property
    def ending(self) -> list[str]:
        return list(self.sentences[-1])

    @property
    def words(self) -> list[str]:
        return [w for s in self.sentences for w in s]


def ending_sentence(name: str, event: int, obj: str) -> Sentence:
    return (name, EVENTS[event].effect, "the", obj, ".")


def agreement_sentence(
    topic: Topic, creature: int, verb: int, plural_subject: bool, agree: bool = True
) -> Sentence:
    """ "the hens eat ." (``agree=False`` gives the ungrammatical number on the verb)."""
    noun = topic.creatures[creature]
    verb_plural = plural_subject == agree
    return (
        "the",
        plural(noun) if plural_subject else noun,
        topic.verbs[verb] if verb_plural else singular_verb(topic.verbs[verb]),
        ".",
    )


def attractor_sentence(
    topic: Topic, head: int, other: int, verb: int, plural_head: bool, agree: bool = True
) -> Sentence:
    """ "the cow near the hens eats ." — the verb agrees with the head, not the attractor."""
    noun, near = topic.creatures[head], topic.creatures[other]
    verb_plural = plural_head == agree
    return (
        "the",
        plural(noun) if plural_head else noun,
        "near",
        "the",
        near if plural_head else plural(near),
        topic.verbs[verb] if verb_plural else singular_verb(topic.verbs[verb]),
        ".",
    )


def determiner_sentence(
    name: str, topic: Topic, creature: int, two: bool, agree: bool = True
) -> Sentence:
    """ "tom sees a cow ." / "tom sees two cows ." (``agree=False`` swaps the noun's number)."""
    noun = topic.creatures[creature]
    noun_plural = two == agree
    return (name, "sees", "two" if two else "a", plural(noun) if noun_plural else noun, ".")


def filler(rng: random.Random, name: str, topic: Topic) -> Sentence:
    kind = rng.randrange(5)
    c, v = rng.randrange(len(topic.creatures)), rng.randrange(len(topic.verbs))
    if kind == 0:
        return agreement_sentence(topic, c, v, rng.random() < 0.5)
    if kind == 1:
        other = (c + 1 + rng.randrange(len(topic.creatures) - 1)) % len(topic.creatures)
        return attractor_sentence(topic, c, other, v, rng.random() < 0.5)
    if kind == 2:
        return determiner_sentence(name, topic, c, rng.random() < 0.5)
    if kind == 3:
        return (
            "it",
            "is",
            rng.choice(topic.adjectives),
            "in",
            "the",
            rng.choice(topic.places),
            ".",
        )
    return (name, "likes", "the", rng.choice(topic.places), ".")


def draw_story(rng: random.Random, lexicon: Lexicon = FULL) -> Story:
    """One story with uniformly drawn topic, character, event and object."""
    t = rng.randrange(len(lexicon.topics))
    topic, name = lexicon.topics[t], rng.choice(lexicon.names)
    e, obj = rng.randrange(len(EVENTS)), rng.choice(topic.objects)
    event = EVENTS[e]
    sentences: list[Sentence] = [(name, "is", "in", "the", rng.choice(topic.places), ".")]
    sentences += [filler(rng, name, topic) for _ in range(rng.randrange(2))]
    sentences.append((name, event.cause, "the", obj, "."))
    sentences += [filler(rng, name, topic) for _ in range(1 + rng.randrange(2))]
    if rng.random() < 0.5:
        sentences.append((name, *(obj if w == "{o}" else w for w in event.middle), "."))
    sentences += [filler(rng, name, topic) for _ in range(rng.randrange(2))]
    sentences.append(ending_sentence(name, e, obj))
    return Story(topic=t, name=name, event=e, obj=obj, sentences=tuple(sentences))


def draw_stories(seed: int, min_words: int, lexicon: Lexicon = FULL) -> list[Story]:
    """Stories from ``seed`` until they hold at least ``min_words`` words ("." included)."""
    rng = random.Random(seed)
    stories: list[Story] = []
    total = 0
    while total < min_words:
        story = draw_story(rng, lexicon)
        stories.append(story)
        total += sum(len(s) for s in story.sentences)
    return stories
