"""An evaluation suite: which manifests to score, scoring a checkpoint on them, storing results.

Benchmarks are named as in the papers (``sSC``, ``tSC``, ``sBLIMP``, ``sWUGGY``; ``MS-sSC`` for
a multi-speaker set) and variants by prompt→continuation modality (``S``, ``S2T``, ``T2S``,
``T``; prompt-free tasks have ``S`` and ``T`` only). In a manifest folder a set is found by file
name, case-insensitively: ``[ms_]<task>_<code>.jsonl`` with code ``ss``/``st``/``ts``/``tt``
(or ``s``/``t`` for prompt-free tasks), as ``slscale world generate`` writes them, or
``[ms_]<task>.jsonl`` for the ``S`` variant (e.g. an imported ``sSC.jsonl``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

from slscale.errors import ConfigError

BENCHMARKS = {"ssc": "sSC", "tsc": "tSC", "sblimp": "sBLIMP", "swuggy": "sWUGGY"}
VARIANT_CODES = {"S": ("ss", "s"), "S2T": ("st",), "T2S": ("ts",), "T": ("tt", "t")}
_MS = ("ms-", "ms_")


@dataclasses.dataclass(frozen=True)
class ManifestRef:
    """One evaluation set: benchmark, variant, and its file."""

    benchmark: str
    """Canonical name, e.g. ``sSC`` or ``MS-sSC``."""
    variant: str
    """S | S2T | T2S | T."""
    path: Path


def parse_benchmark(name: str) -> tuple[str, bool]:
    """'MS-sSC' -> ('ssc', True); raises for an unknown benchmark."""
    text = name.strip().lower()
    multi = text.startswith(_MS)
    task = text[3:] if multi else text
    if task not in BENCHMARKS:
        known = ", ".join([*BENCHMARKS.values(), *(f"MS-{b}" for b in BENCHMARKS.values())])
        raise ConfigError(f"--suite: unknown benchmark {name!r}; known: {known}")
    return task, multi


def parse_variant(name: str) -> str:
    text = name.strip().upper().replace("→", "2")
    if text not in VARIANT_CODES:
        raise ConfigError(f"--variants: unknown variant {name!r}; use S, S2T, T2S, T")
    return text


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
        canonical = ("MS-" if multi else "") + BENCHMARKS[task]
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
    if variant == "S":
        names += [f"{prefix}{task}.jsonl", f"{prefix.replace('_', '-')}{task}.jsonl"]
    return next((files[n] for n in names if n in files), None)
