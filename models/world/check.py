"""Check a generated world: count-based accuracies on its text evaluation sets.

A bigram model should sit near 0.5 on ``ssc_tt``/``tsc_tt`` and the trigger model far above
(see :mod:`.baselines`); this is what makes the sets learnable but not trivial.
"""

from __future__ import annotations

from pathlib import Path

from slscale.models.data.manifest import read_manifest
from slscale.models.data.readers import read_text
from slscale.models.world.baselines import NGramScorer, TriggerScorer, pair_accuracy


def split_ending(words: list[str]) -> tuple[list[str], list[str]]:
    """A story's words → (prompt, last sentence)."""
    stops = [i for i, w in enumerate(words) if w == "."]
    cut = stops[-2] + 1 if len(stops) > 1 else 0
    return words[:cut], words[cut:]


def baseline_report(world_dir: Path) -> dict[str, float]:
    """Accuracies of a bigram, a trigram and the trigger scorer on the text eval sets."""
    world_dir = Path(world_dir)
    stories = [t.split() for t in read_text(world_dir / "text" / "train.jsonl")]
    scorers: dict[str, NGramScorer | TriggerScorer] = {
        "bigram": NGramScorer(2).fit(stories),
        "trigram": NGramScorer(3).fit(stories),
        "trigger": TriggerScorer().fit(split_ending(s) for s in stories),
    }
    report = {}
    for task in ("ssc_tt", "tsc_tt", "sblimp_t"):
        pairs = list(read_manifest(world_dir / "eval" / f"{task}.jsonl"))
        for name, scorer in scorers.items():
            if task == "sblimp_t" and name == "trigger":
                continue
            report[f"{task}/{name}"] = round(pair_accuracy(scorer, pairs), 4)
    return report
