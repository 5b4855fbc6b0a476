"""The fits of a study as one object, saved as FitResult JSON files and read back.

:class:`StudyFits` holds each arm's fits (Approaches 1-3, metric laws), the fits that could
not be made with the reason, and the shipped reference laws. :meth:`StudyFits.save` writes
``<name>.json`` per fit plus ``index.json`` (which file is which fit, and the skipped ones),
so ``slscale figures --fits DIR`` redraws every figure without fitting anything. This module
reads fitting's result types only (and the evaluation suite's benchmark names).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from slscale.errors import ConfigError
from slscale.fitting.reference import load_reference
from slscale.fitting.results import FitResult
from slscale.models.evaluate.suite import SSC, TSC

INDEX_SCHEMA = "slscale.figure-fits/1"
KINDS = ("approach3", "approach2", "approach1", "metric", "margin")
"""Fits made per arm: Approaches 3, 2, 1 on losses; metric laws on scores; margin laws on
the scores' log-likelihood margins."""
METRICS = (SSC, TSC)
"""Benchmarks with a metric law (SIMS Fig. 1)."""
REFERENCES = {
    "loss": ("textless_cuervo_marxer2024",),
    SSC: ("sims2025_textless_ssc", "sims2025_pythia_ssc", "sims2025_interleaved_ssc"),
    TSC: ("sims2025_textless_tsc", "sims2025_pythia_tsc", "sims2025_interleaved_tsc"),
}
"""Shipped reference laws drawn as baselines, by what they describe."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class FitEntry:
    """One fit of one arm."""

    kind: str
    """'approach3', 'approach2', 'approach1', 'metric' or 'margin'."""
    arm: str
    """The arm (modality) fitted."""
    result: FitResult
    """The fit."""
    benchmark: str = ""
    """Metric fits: the benchmark (sSC, tSC)."""

    @property
    def name(self) -> str:
        return fit_name(self.kind, self.arm, self.benchmark)


def fit_name(kind: str, arm: str, benchmark: str = "") -> str:
    """File stem of a fit: 'approach3-interleaved', 'metric-textless-sSC'."""
    return "-".join(p for p in (kind, arm, benchmark) if p)


@dataclasses.dataclass(frozen=True, kw_only=True)
class StudyFits:
    """The fits of a study, the fits that could not be made (with why), and references."""

    entries: tuple[FitEntry, ...] = ()
    """Fits made (or loaded)."""
    skipped: Mapping[str, str] = dataclasses.field(default_factory=dict)
    """Fit name -> why it could not be made."""
    references: Mapping[str, FitResult] = dataclasses.field(default_factory=dict)
    """Shipped reference laws by name."""

    def get(self, kind: str, arm: str, benchmark: str = "") -> FitResult | None:
        for entry in self.entries:
            if (entry.kind, entry.arm, entry.benchmark) == (kind, arm, benchmark):
                return entry.result
        return None

    def by_arm(self, kind: str, benchmark: str = "") -> dict[str, FitResult]:
        """Arm -> fit of one kind (and benchmark), in entry order."""
        return {
            e.arm: e.result for e in self.entries if e.kind == kind and e.benchmark == benchmark
        }

    def reasons(self, kind: str, benchmark: str = "") -> list[str]:
        """Why fits of ``kind`` were skipped, one line per arm."""
        prefix = f"{kind}-"
        return [
            f"{name}: {why}"
            for name, why in self.skipped.items()
            if name.startswith(prefix) and (not benchmark or name.endswith(f"-{benchmark}"))
        ]

    def summary(self) -> pd.DataFrame:
        """One row per fit: its exponents with their intervals and the extrapolation error."""
        rows = []
        for e in self.entries:
            row: dict[str, Any] = {
                "fit": e.name,
                "method": e.result.method,
                "arm": e.arm,
                "benchmark": e.benchmark,
                "n_points": e.result.n_points,
            }
            for name, value in e.result.exponents.items():
                low, high = e.result.ci.get(name, (np.nan, np.nan))
                row.update({name: value, f"{name}_low": low, f"{name}_high": high})
            held = e.result.extrapolation or {}
            row["held_out_error"] = held.get("mean_abs_rel_error", np.nan)
            rows.append(row)
        return pd.DataFrame(rows)

    def save(self, folder: Path) -> Path:
        """Write every fit as ``folder/<name>.json`` and ``folder/index.json``."""
        folder.mkdir(parents=True, exist_ok=True)
        _forget_previous(folder)
        index: dict[str, Any] = {"schema": INDEX_SCHEMA, "fits": [], "skipped": dict(self.skipped)}
        for entry in self.entries:
            entry.result.save(folder / f"{entry.name}.json")
            index["fits"].append(
                {
                    "file": f"{entry.name}.json",
                    "kind": entry.kind,
                    "arm": entry.arm,
                    "benchmark": entry.benchmark,
                }
            )
        path = folder / "index.json"
        path.write_text(json.dumps(index, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, folder: Path) -> StudyFits:
        """Read fits written by :meth:`save` (``folder`` or ``folder/fits``)."""
        if not (folder / "index.json").is_file() and (folder / "fits" / "index.json").is_file():
            folder = folder / "fits"
        index = _read_index(folder / "index.json")
        entries = tuple(
            FitEntry(
                kind=str(item["kind"]),
                arm=str(item["arm"]),
                benchmark=str(item.get("benchmark", "")),
                result=FitResult.load(folder / str(item["file"])),
            )
            for item in index["fits"]
        )
        skipped = {str(k): str(v) for k, v in index.get("skipped", {}).items()}
        return cls(entries=entries, skipped=skipped, references=load_references())


def _forget_previous(folder: Path) -> None:
    """Remove the fit files an earlier save listed, so no stale fit lingers in ``folder``."""
    path = folder / "index.json"
    if not path.is_file():
        return
    for item in _read_index(path).get("fits", []):
        (folder / Path(str(item["file"])).name).unlink(missing_ok=True)


def _read_index(path: Path) -> dict[str, Any]:
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except OSError:
        raise ConfigError(
            f"--fits: no {path}; give the fits folder written by an earlier 'slscale figures'"
        ) from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(index, dict) or index.get("schema") != INDEX_SCHEMA:
        raise ConfigError(f"{path}: not a figure-fits index (expected schema {INDEX_SCHEMA!r})")
    return index


def load_references() -> dict[str, FitResult]:
    """The shipped reference laws the figures draw."""
    names = dict.fromkeys(n for group in REFERENCES.values() for n in group)
    return {name: load_reference(name) for name in names}
