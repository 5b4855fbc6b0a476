"""An evaluation suite: which manifests to score, scoring a checkpoint on them, storing results.

Benchmarks are named as in the papers (``sSC``, ``tSC``, ``sBLIMP``, ``sWUGGY``; ``MS-sSC`` for
a multi-speaker set) and variants by prompt→continuation modality (``S``, ``S2T``, ``T2S``,
``T``; prompt-free tasks have ``S`` and ``T`` only). These spellings are the ones the store
holds; readers of scores written by other evaluators map theirs onto them with
:func:`split_multi_speaker` and :func:`read_variant`. In a manifest folder a set is found by file
name, case-insensitively: ``[ms_]<task>_<code>.jsonl`` with code ``ss``/``st``/``ts``/``tt``
(or ``s``/``t`` for prompt-free tasks), as ``slscale world generate`` writes them, or
``[ms_]<task>.jsonl`` for the ``S`` variant (e.g. an imported ``sSC.jsonl``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

from slscale.errors import ConfigError

SSC, TSC, SBLIMP, SWUGGY = "sSC", "tSC", "sBLIMP", "sWUGGY"
"""Benchmark names: spoken and topic StoryCloze, ZeroSpeech 2021's sBLIMP and sWUGGY."""
BENCHMARKS = {name.lower(): name for name in (SSC, TSC, SBLIMP, SWUGGY)}
"""Benchmark names by task code (the lower-case name, as manifest files spell it)."""
MULTI_SPEAKER = "MS-"
"""Prefix of a multi-speaker set's name (``MS-sSC``); files spell it ``ms_`` or ``ms-``."""
VARIANT_CODES = {"S": ("ss", "s"), "S2T": ("st",), "T2S": ("ts",), "T": ("tt", "t")}
"""Variants, prompt→continuation modality in SIMS Table 2's order, and their file codes."""
VARIANTS = tuple(VARIANT_CODES)
"""S, S2T, T2S, T."""
SPEECH_ONLY = VARIANTS[0]
"""S: speech prompt and continuation, the variant of every benchmark (prompt-free ones too)."""
_MS = ("ms-", "ms_")
_SAME_MODALITY = {"S": ("s2s", "speech"), "T": ("t2t", "text")}
"""Other evaluators' spellings of the single-modality variants."""


@dataclasses.dataclass(frozen=True)
class ManifestRef:
    """One evaluation set: benchmark, variant, and its file."""

    benchmark: str
    """Canonical name, e.g. ``sSC`` or ``MS-sSC``."""
    variant: str
    """S | S2T | T2S | T."""
    path: Path


def multi_speaker(benchmark: str) -> str:
    """'sSC' -> 'MS-sSC': the name of the benchmark's multi-speaker set."""
    return MULTI_SPEAKER + benchmark


def split_multi_speaker(name: str) -> tuple[str, bool]:
    """'MS-sSC' -> ('sSC', True), 'ms_ssc' -> ('ssc', True), ' tSC' -> ('tSC', False)."""
    text = name.strip()
    multi = text.lower().startswith(_MS)
    return (text[len(MULTI_SPEAKER) :] if multi else text), multi


def parse_benchmark(name: str) -> tuple[str, bool]:
    """'MS-sSC' -> ('ssc', True); raises for an unknown benchmark."""
    base, multi = split_multi_speaker(name)
    task = base.lower()
    if task not in BENCHMARKS:
        known = ", ".join([*BENCHMARKS.values(), *map(multi_speaker, BENCHMARKS.values())])
        raise ConfigError(f"--suite: unknown benchmark {name!r}; known: {known}")
    return task, multi


def parse_variant(name: str) -> str:
    text = name.strip().upper().replace("→", "2")
    if text not in VARIANT_CODES:
        raise ConfigError(f"--variants: unknown variant {name!r}; use S, S2T, T2S, T")
    return text


def read_variant(name: str) -> str | None:
    """The variant ``name`` spells however an evaluator wrote it ('S2T', 'S→T', 's-t', 'st',
    'ss', 'speech', ...) as :data:`VARIANTS` spells it; None for anything else."""
    text = name.strip().lower().replace("→", "2").replace("-", "2")
    for variant, codes in VARIANT_CODES.items():
        if text in (variant.lower(), *codes, *_SAME_MODALITY.get(variant, ())):
            return variant
    return None


def find_manifests(
    manifest_dir: Path, benchmarks: Sequence[str], variants: Sequence[str]
) -> list[ManifestRef]:
    """The manifests of each benchmark × variant present in ``manifest_dir``.

    A variant a benchmark does not have is skipped; a benchmark with none of the variants is an
    error naming what the folder holds."""
    folder = Path(manifest_dir)
    if not folder.is_dir():
        raise ConfigError(f"--manifest-dir {folder}: no such folder")
    files = {p.name.lower(): p for p in folder.glob("*.jsonl")}
    found: list[ManifestRef] = []
    for name in benchmarks:
        task, multi = parse_benchmark(name)
        canonical = multi_speaker(BENCHMARKS[task]) if multi else BENCHMARKS[task]
        prefix = "ms_" if multi else ""
        refs = [
            ManifestRef(canonical, variant, path)
            for variant in map(parse_variant, variants)
            if (path := _lookup(files, prefix, task, variant)) is not None
        ]
        if not refs:
            raise ConfigError(
                f"--suite {name}: no manifest for variants {', '.join(variants)} in {folder} "
                f"(looked for {prefix}{task}_<ss|st|ts|tt|s|t>.jsonl); it holds: "
                f"{', '.join(sorted(files)) or 'no .jsonl files'}"
            )
        found += refs
    return found


def _lookup(files: dict[str, Path], prefix: str, task: str, variant: str) -> Path | None:
    names = [f"{prefix}{task}_{code}.jsonl" for code in VARIANT_CODES[variant]]
    if variant == SPEECH_ONLY:
        names += [f"{prefix}{task}.jsonl", f"{prefix.replace('_', '-')}{task}.jsonl"]
    return next((files[n] for n in names if n in files), None)
