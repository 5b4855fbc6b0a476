"""Writing figures and text so that the same data gives the same bytes.

PNG files carry no software tag, PDFs no creation date or producer and SVGs no date, and
SVG ids come from a fixed salt (see :data:`slscale.analysis.style.RC`), so re-drawing a study
changes no file unless the data or the fits changed — figures can live in a paper's
repository and be diffed.
"""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from slscale.analysis.style import paper_style
from slscale.errors import ConfigError

FORMATS = ("pdf", "png", "svg")
"""File formats a figure can be written in."""

_METADATA: dict[str, dict[str, Any]] = {
    "png": {"Software": None},
    "pdf": {"Creator": "slscale", "Producer": None, "CreationDate": None},
    "svg": {"Creator": None, "Date": None},
}


def parse_formats(text: str) -> tuple[str, ...]:
    """'pdf,png' -> ('pdf', 'png'); unknown or empty lists raise ConfigError."""
    formats = tuple(dict.fromkeys(f.strip().lower().lstrip(".") for f in text.split(",")))
    formats = tuple(f for f in formats if f)
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise ConfigError(
            f"--format {text!r}: use a comma-separated list of {', '.join(FORMATS)} (e.g. pdf,png)"
        )
    return formats


def save_figure(fig: Figure, out_dir: Path, name: str, formats: Sequence[str]) -> list[Path]:
    """Write ``fig`` as ``out_dir/name.<format>`` for each format; return the paths."""
    bad = [f for f in formats if f not in FORMATS]
    if bad:
        raise ConfigError(f"figure format {bad[0]!r}: use one of {', '.join(FORMATS)}")
    out_dir.mkdir(parents=True, exist_ok=True)
    # Layout (constrained, tight bbox) depends on the renderer that drew the figure last, so
    # every format is drawn from its own copy of the never-drawn figure: a PNG is the same
    # whether or not a PDF was written before it.
    pristine = pickle.dumps(fig)
    paths = []
    with paper_style():
        for fmt in formats:
            path = out_dir / f"{name}.{fmt}"
            pickle.loads(pristine).savefig(path, format=fmt, metadata=_METADATA[fmt])
            paths.append(path)
    return paths


def write_text(path: Path, text: str) -> Path:
    """Write UTF-8 text ending in one newline (tables, manifests)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text.rstrip("\n") + "\n", encoding="utf-8")
    return path
