"""Evaluation sets as explicit pair manifests (JSON Lines), whatever benchmark they come from.

One line per pair; the model should prefer ``positive`` to ``negative`` after ``prompt``::

    {"id": "ssc-00012", "task": "ssc",
     "prompt":   {"modality": "speech", "units": [3, 49, ...], "speaker": "tts"},
     "positive": {"modality": "text", "text": "tom finds the cart ."},
     "negative": {"modality": "text", "text": "tom finds the rope ."},
     "meta": {"negative": "wrong_object"}}

``prompt`` may be null for prompt-free tasks (sBLIMP, sWUGGY); ``task`` and ``meta`` are
optional. A speech item holds units (already de-duplicated if the run's data is); a text item
holds text. Scoring conventions (mean NLL of the whole sequence, or of the continuation only)
belong to the evaluator, not to the file. :mod:`.importers` writes this format from SlamKit
StoryCloze folders and ZeroSpeech ``gold.csv`` files.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from slscale.errors import SlscaleError
from slscale.models.data.records import iter_rows
from slscale.models.data.units import NUM_UNITS, check_units

SPEECH, TEXT = "speech", "text"


@dataclasses.dataclass(frozen=True, kw_only=True, eq=False)
class EvalItem:
    """A prompt or a continuation, in one modality."""

    modality: str
    """speech | text."""
    units: np.ndarray | None = None
    """Unit ids (speech items)."""
    text: str | None = None
    """Text (text items)."""
    speaker: str | None = None
    """Who spoke it (speech items, when known)."""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"modality": self.modality}
        if self.modality == SPEECH:
            assert self.units is not None
            out["units"] = self.units.tolist()
            if self.speaker is not None:
                out["speaker"] = self.speaker
        else:
            out["text"] = self.text
        return out


@dataclasses.dataclass(frozen=True, kw_only=True, eq=False)
class EvalPair:
    """One minimal pair."""

    id: str
    prompt: EvalItem | None
    positive: EvalItem
    negative: EvalItem
    task: str = ""
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "task": self.task,
            "prompt": None if self.prompt is None else self.prompt.to_dict(),
            "positive": self.positive.to_dict(),
            "negative": self.negative.to_dict(),
            "meta": self.meta,
        }


def write_manifest(pairs: Iterable[EvalPair], path: Path) -> int:
    """Write pairs as JSON Lines; return how many."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with path.open("w", encoding="utf-8") as out:
        for pair in pairs:
            out.write(json.dumps(pair.to_dict(), separators=(",", ":")) + "\n")
            count += 1
    return count


def read_manifest(path: Path, num_units: int = NUM_UNITS) -> Iterator[EvalPair]:
    """Read and validate a pair manifest; errors name the file, line and field."""
    seen: set[str] = set()
    for row, where in iter_rows(Path(path)):
        pair = _parse_pair(row, where, num_units)
        if pair.id in seen:
            raise SlscaleError(f"{where}: duplicate id {pair.id!r}")
        seen.add(pair.id)
        yield pair


def _parse_pair(row: dict[str, Any], where: str, num_units: int) -> EvalPair:
    for field in ("id", "prompt", "positive", "negative"):
        if field not in row:
            raise SlscaleError(
                f"{where}: missing field '{field}' (a pair needs id, prompt, "
                "positive, negative; prompt may be null)"
            )
    prompt = row["prompt"]
    return EvalPair(
        id=str(row["id"]),
        task=str(row.get("task", "")),
        meta=dict(row.get("meta") or {}),
        prompt=None if prompt is None else _parse_item(prompt, f"{where}: prompt", num_units),
        positive=_parse_item(row["positive"], f"{where}: positive", num_units),
        negative=_parse_item(row["negative"], f"{where}: negative", num_units),
    )


def _parse_item(item: Any, where: str, num_units: int) -> EvalItem:
    if not isinstance(item, dict) or item.get("modality") not in (SPEECH, TEXT):
        raise SlscaleError(f"{where}: must be an object with modality 'speech' or 'text'")
    if item["modality"] == TEXT:
        if not isinstance(item.get("text"), str) or not item["text"].strip():
            raise SlscaleError(f"{where}: a text item needs a non-empty field 'text'")
        return EvalItem(modality=TEXT, text=item["text"])
    units = item.get("units")
    if not isinstance(units, list) or not units or not all(isinstance(u, int) for u in units):
        raise SlscaleError(f"{where}: a speech item needs a non-empty list of integer 'units'")
    array = np.asarray(units, dtype=np.int64)
    check_units(array, num_units, where)
    speaker = item.get("speaker")
    return EvalItem(
        modality=SPEECH,
        units=array.astype(np.int16),
        speaker=None if speaker is None else str(speaker),
    )
