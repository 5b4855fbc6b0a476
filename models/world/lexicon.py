"""The words of the miniature world: topics, characters, and cause → effect event pairs.

Every topic owns its places, objects, creatures, creature verbs and adjectives; no content word
is shared between topics, so the topic of a story is visible in its words (what the tSC-like
task tests). Events are cause → effect verb pairs ("loses" → "finds") acting on one of the
topic's objects; the ending of a story is the effect of its cause on the same object (what the
sSC-like task tests). Nouns and verbs take a regular "-s" (plural nouns, third-person verbs),
so number agreement is a simple, learnable rule (what the sBLIMP-like task tests).
"""

from __future__ import annotations

import dataclasses

NAMES = (
    "tom",
    "ann",
    "sam",
    "lily",
    "max",
    "emma",
    "ben",
    "mia",
    "leo",
    "zoe",
    "jack",
    "ella",
    "noah",
    "ruby",
    "finn",
    "nora",
)
"""Characters; any character can live in any topic."""


@dataclasses.dataclass(frozen=True)
class Event:
    """A cause, the step a character may take next, and the effect that must end the story."""

    cause: str
    middle: tuple[str, ...]
    """Words after the name; ``{o}`` stands for the object."""
    effect: str


EVENTS = (
    Event("loses", ("looks", "for", "the", "{o}"), "finds"),
    Event("breaks", ("gets", "the", "tools"), "fixes"),
    Event("drops", ("bends", "down"), "lifts"),
    Event("wants", ("counts", "the", "coins"), "buys"),
    Event("hides", ("waits", "a", "while"), "shows"),
    Event("dirties", ("gets", "some", "water"), "cleans"),
)


@dataclasses.dataclass(frozen=True)
class Topic:
    """One topic's own words."""

    name: str
    places: tuple[str, ...]
    objects: tuple[str, ...]
    creatures: tuple[str, ...]
    """Singular nouns; the plural adds "s"."""
    verbs: tuple[str, ...]
    """Intransitive verbs in the plural form; the singular adds "s"."""
    adjectives: tuple[str, ...]


TOPICS = (
    Topic(
        "farm",
        ("barn", "field"),
        ("cart", "bucket", "rope", "fence", "basket", "shovel"),
        ("cow", "hen", "goat"),
        ("eat", "sleep", "walk"),
        ("muddy", "quiet"),
    ),
    Topic(
        "kitchen",
        ("kitchen", "pantry"),
        ("pot", "spoon", "cup", "plate", "kettle", "bowl"),
        ("cook", "cat", "bug"),
        ("stir", "nap", "crawl"),
        ("warm", "tidy"),
    ),
    Topic(
        "school",
        ("classroom", "library"),
        ("book", "pencil", "chair", "desk", "map", "bag"),
        ("teacher", "pupil", "parrot"),
        ("read", "talk", "write"),
        ("busy", "bright"),
    ),
    Topic(
        "sea",
        ("beach", "boat"),
        ("net", "oar", "sail", "anchor", "shell", "flag"),
        ("crab", "seal", "gull"),
        ("swim", "float", "dive"),
        ("windy", "calm"),
    ),
    Topic(
        "forest",
        ("forest", "cabin"),
        ("axe", "lamp", "log", "tent", "stick", "torch"),
        ("owl", "bear", "squirrel"),
        ("climb", "hunt", "growl"),
        ("dark", "green"),
    ),
    Topic(
        "city",
        ("street", "park"),
        ("bike", "ticket", "key", "umbrella", "wallet", "scarf"),
        ("driver", "dog", "pigeon"),
        ("honk", "bark", "race"),
        ("loud", "rainy"),
    ),
    Topic(
        "garden",
        ("garden", "shed"),
        ("rake", "hose", "ladder", "jar", "bench", "glove"),
        ("bee", "worm", "frog"),
        ("hum", "dig", "jump"),
        ("sunny", "fresh"),
    ),
    Topic(
        "castle",
        ("castle", "tower"),
        ("crown", "sword", "shield", "ring", "cloak", "drum"),
        ("king", "knight", "guard"),
        ("bow", "parade", "rest"),
        ("old", "cold"),
    ),
    Topic(
        "space",
        ("station", "moon"),
        ("helmet", "rocket", "radio", "badge", "screen", "cable"),
        ("alien", "robot", "pilot"),
        ("glow", "beep", "drift"),
        ("silent", "vast"),
    ),
    Topic(
        "market",
        ("market", "shop"),
        ("apple", "melon", "box", "bell", "jug", "basin"),
        ("seller", "buyer", "donkey"),
        ("shout", "haggle", "trot"),
        ("crowded", "noisy"),
    ),
)

FUNCTION_WORDS = ("the", "a", "two", "is", "in", "it", "near", "likes", "sees", ".")


@dataclasses.dataclass(frozen=True)
class Lexicon:
    """The part of the world's words that its stories use: the first ``topics`` topics with
    their first ``objects_per_topic`` objects, and the first ``names`` characters (the events
    are always all six). A smaller lexicon is a narrower corpus: fewer associations to learn
    per token, so a smaller model learns them within a smaller budget."""

    topics: tuple[Topic, ...] = TOPICS
    names: tuple[str, ...] = NAMES

    @classmethod
    def sized(cls, topics: int, objects_per_topic: int, names: int) -> Lexicon:
        # a tSC/sSC negative needs another topic and another object; one name is enough
        for field, value, low, most in (
            ("topics", topics, 2, len(TOPICS)),
            ("objects_per_topic", objects_per_topic, 2, len(TOPICS[0].objects)),
            ("names", names, 1, len(NAMES)),
        ):
            if not low <= value <= most:
                raise ValueError(f"field '{field}' = {value}: must be in [{low}, {most}]")
        chosen = tuple(
            dataclasses.replace(t, objects=t.objects[:objects_per_topic]) for t in TOPICS[:topics]
        )
        return cls(topics=chosen, names=NAMES[:names])

    def words(self) -> list[str]:
        """Every word this lexicon's stories can contain, sorted."""
        words = set(self.names) | set(FUNCTION_WORDS)
        for event in EVENTS:
            words |= {event.cause, event.effect, *event.middle}
        for topic in self.topics:
            words |= {*topic.places, *topic.objects, *topic.adjectives}
            words |= {*topic.creatures, *map(plural, topic.creatures)}
            words |= {*topic.verbs, *map(singular_verb, topic.verbs)}
        words.discard("{o}")
        return sorted(words)


FULL = Lexicon()


def plural(noun: str) -> str:
    return noun + "s"


def singular_verb(verb: str) -> str:
    return verb + "s"


def all_words() -> list[str]:
    """Every word of the full lexicon, sorted (the text tokenizer's vocabulary, whatever part
    of it a world's stories use)."""
    return FULL.words()


def check_lexicon() -> None:
    """Internal invariant: topics share no content word; event verbs appear nowhere else."""
    seen: dict[str, str] = {}
    for topic in TOPICS:
        for word in (
            *topic.places,
            *topic.objects,
            *topic.creatures,
            *topic.verbs,
            *topic.adjectives,
        ):
            assert word not in seen, f"{word!r} in {topic.name} and {seen[word]}"
            seen[word] = topic.name
    event_verbs = {e.cause for e in EVENTS} | {e.effect for e in EVENTS}
    assert not event_verbs & (set(seen) | set(FUNCTION_WORDS) | set(NAMES))
