"""Readers for speech-unit and text documents in the formats users already have.

Speech rows (JSONL or ``save_to_disk``), as SlamKit's ``extract_features`` writes them:
``{"file_name": ..., "units": [...], "duration": [...]}`` where ``duration[i]`` is the number
of 40 ms frames unit ``i`` lasts (optional: all ones). Word alignments are either in the row,
``"aligned_text": [[word, start_s, end_s], ...]`` (or ``{"word", "start", "end"}`` objects,
as Arrow stores them), or in a sidecar ``<meta_dir>/<stem>.json``
holding the same key (SlamKit's ``parse_transcriptions`` layout). Plain unit sequences are read
too: a row with only ``units``; SlamKit's tokenised ``"audio_repr": "<Un3><Un49>..."``; or a
``.txt`` file of whitespace-separated unit ids, one utterance per line.

Text rows: ``{"text": ...}`` (SlamKit's text files use ``audio_repr`` for the text; accepted).

Bad input raises :class:`~slscale.errors.DataError` naming the file and line. Documents
with no units or no text are skipped and counted in a logged warning (the one documented fix).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from slscale.errors import DataError
from slscale.models.data import units as U
from slscale.models.data.records import Row, iter_rows

log = logging.getLogger(__name__)

_UNIT_TOKEN = re.compile(r"<Un(\d+)>")


@dataclasses.dataclass(frozen=True, kw_only=True, eq=False)
class SpeechDoc:
    """One utterance as units, with its word alignment when it has one."""

    name: str
    """The row's ``file_name`` (or its place in the file)."""
    units: np.ndarray
    """int16 unit ids in ``[0, num_units)``."""
    durations: np.ndarray
    """int32 frames per unit (after de-duplication: the length of each run)."""
    words: tuple[str, ...] | None = None
    """Aligned words (stripped of surrounding spaces), or None without an alignment."""
    word_spans: np.ndarray | None = None
    """int64 [num_words, 2]: each word's half-open unit range (see ``units.word_unit_spans``)."""
    speaker: str | None = None
    """Speaker label when the row carries one."""

    @property
    def seconds(self) -> float:
        return float(self.durations.sum()) * U.FRAME_SECONDS


@dataclasses.dataclass(frozen=True, kw_only=True)
class SpeechReadOptions:
    """How speech rows are read."""

    num_units: int = U.NUM_UNITS
    """Units must lie in [0, num_units)."""
    dedup: bool = True
    """Collapse consecutive duplicate units (the mHuBERT-25Hz convention of TWIST and SIMS)."""
    meta_dir: Path | None = None
    """Folder of SlamKit ``<stem>.json`` alignment sidecars, if alignments are not inline."""
    require_alignment: bool = False
    """Raise on rows without an alignment (for interleaving) instead of reading them bare."""


def read_speech(
    path: Path, options: SpeechReadOptions | None = None, split: str | None = None
) -> Iterator[SpeechDoc]:
    """Yield the speech documents of ``path``; empty ones are skipped with a warning."""
    options = options or SpeechReadOptions()
    skipped: list[str] = []
    for row, where in iter_rows(Path(path), split):
        doc = parse_speech_row(row, where, options)
        if doc is None:
            skipped.append(where)
            continue
        yield doc
    _warn_skipped(path, skipped, "no units")


def read_text(path: Path, split: str | None = None) -> Iterator[str]:
    """Yield the text documents of ``path``; empty ones are skipped with a warning."""
    skipped: list[str] = []
    for row, where in iter_rows(Path(path), split):
        text = _text_field(row, where)
        if not text.strip():
            skipped.append(where)
            continue
        yield text
    _warn_skipped(path, skipped, "empty text")


def _warn_skipped(path: Path, skipped: list[str], why: str) -> None:
    if skipped:
        log.warning(
            "%s: skipped %d document(s) with %s (first: %s)", path, len(skipped), why, skipped[0]
        )


def _text_field(row: Row, where: str) -> str:
    for key in ("text", "audio_repr", "line"):
        if key in row:
            if not isinstance(row[key], str):
                raise DataError(f"{where}: field '{key}' must be a string")
            return str(row[key])
    raise DataError(f"{where}: missing field 'text'")


def parse_speech_row(row: Row, where: str, options: SpeechReadOptions) -> SpeechDoc | None:
    """One row → a :class:`SpeechDoc`, or None when it has no units."""
    units = _row_units(row, where)
    if units.size == 0:
        return None
    U.check_units(units, options.num_units, where)
    durations = _row_durations(row, units.size, where)
    if options.dedup:
        units, durations = U.dedup_units(units, durations)
    name = str(row.get("file_name", where))
    aligned = _row_alignment(row, name, where, options)
    speaker = row.get("speaker")
    doc = SpeechDoc(
        name=name,
        units=units.astype(np.int16),
        durations=durations.astype(np.int32),
        speaker=None if speaker is None else str(speaker),
    )
    return doc if aligned is None else _with_alignment(doc, aligned, where)


def _row_units(row: Row, where: str) -> np.ndarray:
    if "units" in row:
        value = row["units"]
        array = np.asarray(value) if isinstance(value, list) else None
        if array is None or (array.size and (array.dtype.kind != "i" or array.ndim != 1)):
            raise DataError(f"{where}: field 'units' must be a list of integers")
        return array.astype(np.int64)
    if "audio_repr" in row:
        return np.asarray([int(u) for u in _UNIT_TOKEN.findall(row["audio_repr"])], np.int64)
    if "line" in row:
        try:
            return np.asarray([int(u) for u in row["line"].split()], dtype=np.int64)
        except ValueError:
            raise DataError(f"{where}: a unit line must hold integers only") from None
    raise DataError(f"{where}: missing field 'units'")


def _row_durations(row: Row, length: int, where: str) -> np.ndarray:
    value = row.get("duration")
    if value is None:
        return np.ones(length, dtype=np.int64)
    if not isinstance(value, list) or len(value) != length:
        raise DataError(
            f"{where}: field 'duration' must be a list of {length} frame counts (one per unit)"
        )
    durations = np.asarray(value, dtype=np.int64)
    if (durations < 1).any():
        raise DataError(f"{where}: field 'duration' holds a count below 1 frame")
    return durations


def _row_alignment(row: Row, name: str, where: str, options: SpeechReadOptions) -> Any:
    aligned = row.get("aligned_text")
    if aligned is None and options.meta_dir is not None:
        sidecar = Path(options.meta_dir) / f"{Path(name).stem}.json"
        if sidecar.exists():
            aligned = json.loads(sidecar.read_text()).get("aligned_text")
            where = str(sidecar)
    if aligned is None and options.require_alignment:
        raise DataError(f"{where}: no 'aligned_text' (word alignment) for {name}")
    return aligned


def _with_alignment(doc: SpeechDoc, aligned: Any, where: str) -> SpeechDoc:
    words, starts, ends = _alignment_columns(aligned, where)
    U.check_alignment(starts, ends, doc.seconds, where)
    first, last = U.word_unit_spans(doc.durations, starts, ends)
    return dataclasses.replace(doc, words=words, word_spans=np.stack([first, last], axis=1))


def _alignment_columns(aligned: Any, where: str) -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
    """Words and times of ``[[word, start, end], ...]`` or of ``[{"word", "start", "end"}]``
    (Arrow stores the triples as structs)."""
    shape_error = f"{where}: field 'aligned_text' must be a list of [word, start, end]"
    if not isinstance(aligned, list):
        raise DataError(shape_error)
    if aligned and isinstance(aligned[0], dict):
        if not all(isinstance(w, dict) and {"word", "start", "end"} <= w.keys() for w in aligned):
            raise DataError(shape_error)
        aligned = [(w["word"], w["start"], w["end"]) for w in aligned]
    if any(not isinstance(w, (list, tuple)) or len(w) != 3 for w in aligned):
        raise DataError(shape_error)
    if not aligned:
        return (), np.zeros(0), np.zeros(0)
    words, starts, ends = zip(*aligned, strict=True)
    try:
        times = np.asarray([starts, ends], dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError(f"{where}: aligned_text times must be numbers (seconds)") from None
    return tuple(str(w).strip() for w in words), times[0], times[1]
