"""Turn the evaluation sets people already have into pair manifests (see :mod:`.manifest`).

* SlamKit-style StoryCloze folders (spoken/topic StoryCloze and their cross-modal and
  multi-speaker versions): ``<id>_correct.{wav,txt}``, ``<id>_incorrect.{wav,txt}`` and, when
  the prompt is separate, ``<id>_mutual.{wav,txt}``, possibly in one sub-folder per speaker.
  Without ``_mutual`` files each item is a whole story and the prompt is null.
* ZeroSpeech 2021 ``gold.csv`` files: lexical (sWUGGY: ``id, filename, voice, frequency,
  word, phones, length, correct``) and syntactic (sBLIMP: ``id, filename, voice, type,
  subtype, correct, transcription``); rows sharing ``id`` and ``voice`` form a pair
  (``correct`` 1 vs 0).

Speech items take their units from a units JSONL of the audio files (SlamKit's
``extract_features`` output), matched by file name; text items read the ``.txt`` files or the
gold file's ``word``/``transcription`` column.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

import numpy as np

from slscale.errors import SlscaleError
from slscale.models.data.manifest import SPEECH, TEXT, EvalItem, EvalPair
from slscale.models.data.readers import SpeechReadOptions, read_speech


class UnitIndex:
    """Units of audio files by name: ``(parent folder, stem)`` first, then the stem alone."""

    def __init__(self, path: Path, options: SpeechReadOptions | None = None) -> None:
        self.path = Path(path)
        self._by_key: dict[tuple[str, str], np.ndarray] = {}
        self._by_stem: dict[str, np.ndarray | None] = {}
        for doc in read_speech(self.path, options):
            name = Path(doc.name)
            self._by_key[(name.parent.name, name.stem)] = doc.units
            self._by_stem[name.stem] = None if name.stem in self._by_stem else doc.units

    def units(self, audio: Path) -> np.ndarray:
        found = self._by_key.get((audio.parent.name, audio.stem))
        if found is None:
            found = self._by_stem.get(audio.stem)
        if found is None:
            raise SlscaleError(
                f"{self.path}: no units for {audio.name} (or its name is "
                "ambiguous); extract units for every audio file of the set"
            )
        return found


def import_storycloze(
    folder: Path,
    *,
    prompt_modality: str,
    continuation_modality: str,
    units: UnitIndex | None = None,
    task: str = "storycloze",
) -> list[EvalPair]:
    """Pairs of a SlamKit-style StoryCloze folder (see the module docstring)."""
    folder = Path(folder)
    bases = sorted(
        {p.with_name(p.name[: -len("_correct" + p.suffix)]) for p in folder.rglob("*_correct.*")}
    )
    if not bases:
        raise SlscaleError(f"{folder}: no '<id>_correct.wav' or '<id>_correct.txt' files")
    pairs = []
    for base in bases:
        has_prompt = any(base.parent.glob(f"{base.name}_mutual.*"))
        prompt = _story_item(base, "mutual", prompt_modality, units) if has_prompt else None
        pairs.append(
            EvalPair(
                id=str(base.relative_to(folder)),
                task=task,
                prompt=prompt,
                positive=_story_item(base, "correct", continuation_modality, units),
                negative=_story_item(base, "incorrect", continuation_modality, units),
                meta={"speaker": base.parent.name} if base.parent != folder else {},
            )
        )
    return pairs


def _story_item(base: Path, part: str, modality: str, units: UnitIndex | None) -> EvalItem:
    if modality == TEXT:
        path = base.with_name(f"{base.name}_{part}.txt")
        if not path.exists():
            raise SlscaleError(f"{path} is missing (text modality needs the .txt files)")
        return EvalItem(modality=TEXT, text=path.read_text(encoding="utf-8").strip())
    if units is None:
        raise SlscaleError("speech items need a units JSONL of the audio files (--units)")
    return EvalItem(modality=SPEECH, units=units.units(base.with_name(f"{base.name}_{part}.wav")))


def import_zerospeech(
    gold: Path, *, modality: str, units: UnitIndex | None = None, task: str | None = None
) -> list[EvalPair]:
    """Pairs of a ZeroSpeech 2021 lexical or syntactic ``gold.csv``."""
    gold = Path(gold)
    with gold.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        columns = set(reader.fieldnames or ())
        text_column = "word" if "word" in columns else "transcription"
        missing = {"id", "filename", "correct", text_column} - columns
        if missing:
            raise SlscaleError(
                f"{gold}: missing column {sorted(missing)[0]!r}; expected a "
                "ZeroSpeech 2021 lexical or syntactic gold.csv"
            )
        groups: dict[tuple[str, str], dict[str, tuple[dict[str, str], int]]] = defaultdict(dict)
        for line, row in enumerate(reader, start=2):
            label = {"1": "positive", "0": "negative"}.get(row["correct"].strip())
            key = (row["id"], row.get("voice", ""))
            if label is None or label in groups[key]:
                raise SlscaleError(
                    f"{gold}:{line}: 'correct' must be 1 or 0, once each per "
                    f"id and voice (id {row['id']})"
                )
            groups[key][label] = (row, line)
    task = task or ("swuggy" if text_column == "word" else "sblimp")
    return [
        _zerospeech_pair(gold, key, rows, text_column, modality, units, task)
        for key, rows in groups.items()
    ]


def _zerospeech_pair(
    gold: Path,
    key: tuple[str, str],
    rows: dict[str, tuple[dict[str, str], int]],
    text_column: str,
    modality: str,
    units: UnitIndex | None,
    task: str,
) -> EvalPair:
    if set(rows) != {"positive", "negative"}:
        line = next(iter(rows.values()))[1]
        raise SlscaleError(
            f"{gold}:{line}: id {key[0]} (voice {key[1]!r}) has no "
            f"{'negative' if 'positive' in rows else 'positive'} row"
        )
    items = {}
    for label, (row, _) in rows.items():
        if modality == TEXT:
            items[label] = EvalItem(modality=TEXT, text=row[text_column])
        elif units is None:
            raise SlscaleError("speech items need a units JSONL of the audio files (--units)")
        else:
            items[label] = EvalItem(
                modality=SPEECH, units=units.units(Path(row["filename"])), speaker=row.get("voice")
            )
    meta = {
        k: v
        for k, v in rows["positive"][0].items()
        if k in ("voice", "type", "subtype", "frequency")
    }
    return EvalPair(
        id=f"{key[0]}/{key[1]}" if key[1] else key[0],
        task=task,
        prompt=None,
        positive=items["positive"],
        negative=items["negative"],
        meta=meta,
    )
