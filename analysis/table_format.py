"""A small table type rendered as Markdown and as LaTeX (booktabs) for a paper.

Cells are already formatted strings; a header may group columns (``sSC`` over S, S→T, T→S,
T) and a rule may separate row groups. LaTeX output needs ``\\usepackage{booktabs}``.
"""

from __future__ import annotations

import dataclasses
import math
import re

from slscale.analysis.style import format_count

_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "→": r"$\rightarrow$",
    "≈": r"$\approx$",
    "×": r"$\times$",
    "—": "---",
    "–": "--",
}
_QUOTED = re.compile(r'"([^"]*)"')
BOLD = "**"
"""Cells wrapped in ``**`` are emphasised (bold in both renderings)."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class Table:
    """A captioned table of formatted cells."""

    name: str
    """File stem (``published_comparison``) and LaTeX label suffix."""
    caption: str
    """What the table shows."""
    columns: tuple[str, ...]
    """Column headers."""
    rows: tuple[tuple[str, ...], ...]
    """Cells, one tuple per row, as many as columns."""
    column_groups: tuple[tuple[str, int], ...] = ()
    """Optional header row above ``columns``: (label, how many columns it spans)."""
    rules_after: tuple[int, ...] = ()
    """Row indices after which a rule separates groups."""
    notes: tuple[str, ...] = ()
    """Lines under the table: sources, conventions."""

    def __post_init__(self) -> None:
        for i, row in enumerate(self.rows):
            if len(row) != len(self.columns):
                raise ValueError(
                    f"table {self.name}: row {i} has {len(row)} cells, expected {len(self.columns)}"
                )

    def to_markdown(self) -> str:
        headers = [self._flat_header(i) for i in range(len(self.columns))]
        lines = [
            f"**{self.caption}**",
            "",
            _md_row(headers),
            "|" + "|".join(":--" if i == 0 else "--:" for i in range(len(headers))) + "|",
        ]
        lines += [_md_row(row) for row in self.rows]
        lines += [""] + [f"{note}  " for note in self.notes] if self.notes else []
        return "\n".join(lines)

    def _flat_header(self, index: int) -> str:
        start = 0
        for label, span in self.column_groups:
            if start <= index < start + span and label:
                return f"{label} {self.columns[index]}"
            start += span
        return self.columns[index]

    def to_latex(self) -> str:
        spec = "l" + "r" * (len(self.columns) - 1)
        lines = [
            r"\begin{table}[t]",
            r"\centering",
            r"\small",
            rf"\caption{{{latex_escape(self.caption)}}}",
            rf"\label{{tab:{self.name}}}",
            rf"\begin{{tabular}}{{{spec}}}",
            r"\toprule",
        ]
        lines += self._latex_groups()
        lines.append(" & ".join(latex_escape(c) for c in self.columns) + r" \\")
        lines.append(r"\midrule")
        for i, row in enumerate(self.rows):
            lines.append(" & ".join(_latex_cell(c) for c in row) + r" \\")
            if i in self.rules_after and i != len(self.rows) - 1:
                lines.append(r"\midrule")
        lines += [r"\bottomrule", r"\end{tabular}"]
        if self.notes:
            notes = r" \\ ".join(latex_escape(n) for n in self.notes)
            lines.append(rf"\par\smallskip{{\footnotesize {notes}\par}}")
        lines.append(r"\end{table}")
        return "\n".join(lines)

    def _latex_groups(self) -> list[str]:
        if not self.column_groups:
            return []
        cells, rules, start = [], [], 1
        for label, span in self.column_groups:
            cells.append(
                rf"\multicolumn{{{span}}}{{c}}{{{latex_escape(label)}}}"
                if span > 1
                else latex_escape(label)
            )
            if label and span > 1:
                rules.append(rf"\cmidrule(lr){{{start}-{start + span - 1}}}")
            start += span
        return [" & ".join(cells) + r" \\", " ".join(rules)]


def _md_row(cells: tuple[str, ...] | list[str]) -> str:
    return "| " + " | ".join(c.replace("|", r"\|") for c in cells) + " |"


def _latex_cell(cell: str) -> str:
    if cell.startswith(BOLD) and cell.endswith(BOLD) and len(cell) > 2 * len(BOLD):
        return rf"\textbf{{{latex_escape(cell[len(BOLD) : -len(BOLD)])}}}"
    return latex_escape(cell)


def latex_escape(text: str) -> str:
    """Escape LaTeX's special characters; arrows, dashes and "quotes" get their LaTeX forms."""
    escaped = "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)
    return _QUOTED.sub(r"``\1''", escaped)


# -- cell formats ---------------------------------------------------------------------------
def percent(value: float | None) -> str:
    """A fraction as a percentage with one decimal (0.667 -> '66.7'); '—' when missing."""
    return "—" if value is None or not math.isfinite(value) else f"{100 * value:.1f}"


def count(value: float | None) -> str:
    """7.6e9 -> '7.6B'; '—' when missing."""
    return "—" if value is None or not math.isfinite(value) else format_count(value)


def flops(value: float | None) -> str:
    """6.86e20 -> '6.86e20'; '—' when missing."""
    if value is None or not math.isfinite(value):
        return "—"
    mantissa, exponent = (
        f"{value:.3g}".split("e") if "e" in f"{value:.3g}" else (f"{value:.3g}", "0")
    )
    return f"{mantissa}e{int(exponent)}"


def bold(cell: str) -> str:
    return f"{BOLD}{cell}{BOLD}"
