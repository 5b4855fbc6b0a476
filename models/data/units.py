"""Speech units: validation, de-duplication and word alignment on the unit grid.

Units are mHuBERT-25Hz cluster ids in ``[0, num_units)``; one frame lasts 40 ms. A unit
sequence comes with ``duration``, the number of frames each unit lasts (SlamKit's
``extract_features`` writes it; all ones when consecutive duplicates were kept). Collapsing
consecutive duplicates merges their durations, so times stay exact after de-duplication.
"""

from __future__ import annotations

import numpy as np

from slscale.errors import DataError

FRAME_SECONDS = 0.04
"""Frame length of mHuBERT-25Hz units (25 Hz)."""

NUM_UNITS = 500
"""Clusters of the mHuBERT-25Hz layer-11 k-means (Hassid et al. 2023, TWIST)."""

ALIGNMENT_TOLERANCE_SECONDS = FRAME_SECONDS
"""Alignments may overrun the audio end by one frame (rounding in aligners); more is an error."""


def check_units(units: np.ndarray, num_units: int, where: str) -> None:
    """Raise if any unit is outside ``[0, num_units)``; ``where`` names the file and line."""
    if units.size and (int(units.min()) < 0 or int(units.max()) >= num_units):
        bad = int(units[(units < 0) | (units >= num_units)][0])
        raise DataError(
            f"{where}: unit {bad} is outside [0, {num_units}); the units must come from a "
            f"{num_units}-cluster tokenizer (set num_units to match it)"
        )


def dedup_units(units: np.ndarray, durations: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Collapse runs of equal consecutive units, summing their frame counts.

    >>> dedup_units(np.array([3, 3, 7, 3]), np.array([1, 2, 1, 1]))
    (array([3, 7, 3]), array([3, 1, 1]))
    """
    if units.size == 0:
        return units, durations
    starts = np.flatnonzero(np.concatenate(([True], units[1:] != units[:-1])))
    return units[starts], np.add.reduceat(durations, starts)


def unit_end_frames(durations: np.ndarray) -> np.ndarray:
    """Frame index at which each unit ends (exclusive)."""
    return np.cumsum(durations, dtype=np.int64)


def word_unit_spans(
    durations: np.ndarray, starts_s: np.ndarray, ends_s: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """For each aligned word, the half-open range of units whose centre lies in [start, end).

    A unit covering frames [a, b) has its centre at (a + b) / 2 frames; assigning units by their
    centre partitions them among non-overlapping words, and units in pauses belong to no word.
    """
    ends = unit_end_frames(durations)
    centres_s = (ends - durations / 2.0) * FRAME_SECONDS
    first = np.searchsorted(centres_s, starts_s, side="left")
    last = np.searchsorted(centres_s, ends_s, side="left")
    return first.astype(np.int64), np.maximum(last, first).astype(np.int64)


def check_alignment(starts_s: np.ndarray, ends_s: np.ndarray, audio_s: float, where: str) -> None:
    """Raise on times that are negative, reversed, overlapping or past the audio end."""
    tol = ALIGNMENT_TOLERANCE_SECONDS
    if starts_s.size == 0:
        return
    for name, bad in (
        ("a negative start time", starts_s < 0),
        ("an end before its start", ends_s < starts_s),
        (f"an end past the audio end ({audio_s:.2f} s)", ends_s > audio_s + tol),
    ):
        if bad.any():
            raise DataError(
                f"{where}: aligned word {int(np.argmax(bad))} has {name}; "
                "the alignment does not match these units"
            )
    overlap = starts_s[1:] < ends_s[:-1] - tol
    if overlap.any():
        i = int(np.argmax(overlap)) + 1
        raise DataError(
            f"{where}: aligned word {i} starts before word {i - 1} ends; "
            "words must be in time order"
        )
