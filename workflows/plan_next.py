"""The grid side of planning the next runs: what an arm's new runs look like, which sizes its
family can build, what each candidate cell costs, and the grid that launches the chosen ones.

The maths (which cells shrink an interval most) is :mod:`slscale.fitting.design`; this module
turns its numbers into runs. Conventions: a cell's ``n_fit`` is N in the fit's convention
(total parameters, as SIMS and Chinchilla count, unless the fit used non-embedding N); its
cost in FLOPs is 6·N_total·D, the store's ``flops_6nd``; D is rounded to whole optimizer steps.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from slscale.compute import flops_6nd, tokens_6nd
from slscale.errors import ConfigError, SlscaleError
from slscale.identity import flatten, human_count
from slscale.models import families
from slscale.spec import Recipe, RunSpec, from_dict, spec_from_dict, spec_to_dict
from slscale.sweep.grid import GridSpec, expand
from slscale.sweep.io import load_grid, save_grid
from slscale.sweep.plan import PlanRow, architecture, param_counts, plan_run

SPEC_FIELDS = {f.name for f in dataclasses.fields(RunSpec)}
CELL_FIELDS = ("size", "tokens", "arch", "branch", "branch_tokens")
"""Spec fields each new cell sets itself (never taken from the arm's runs): its shape, its
budget, and its place in a WSD ladder (new cells are independent runs)."""
SAME_CELL_DEX = 0.005
"""Candidates within this many decades of a done run in both N and D count as done."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class Arm:
    """What the new runs of one arm share."""

    base: Mapping[str, Any]
    """Partial RunSpec fields (no size or tokens); ``init`` may be a ``{size}`` template."""
    source: str
    """Where the base came from (named in messages)."""
    notes: tuple[str, ...] = ()
    """Choices made while reading it (e.g. the seed picked)."""

    @property
    def family(self) -> str:
        return str(self.base["family"])

    @property
    def tokens_per_step(self) -> int:
        return from_dict(Recipe, self.base.get("recipe") or {}, "recipe").tokens_per_step

    def spec(self, size: str, tokens: int) -> RunSpec:
        """The run of one cell (templates such as ``init: textlm-{size}`` filled)."""
        data = {**self.base, "size": size, "tokens": int(tokens)}
        if isinstance(data.get("init"), str):
            data["init"] = data["init"].replace("{size}", size)
        try:
            return spec_from_dict(data)
        except ConfigError as exc:
            raise ConfigError(f"{self.source}: {exc}") from None


def arm_from_runs(frame: pd.DataFrame, source: str) -> Arm:
    """The base shared by the runs of ``frame`` (a runs frame: flattened spec columns).

    A column whose values differ raises, except ``init`` when it is one ``{size}`` template
    (TextLM inits named after the size) and ``seed`` (the most common one is kept).
    """
    cols = [c for c in frame.columns if c.split(".")[0] in SPEC_FIELDS]
    flat: dict[str, Any] = {}
    notes: list[str] = []
    for col in cols:
        if col.split(".")[0] in CELL_FIELDS:
            continue
        values = [_plain(v) for v in frame[col] if not _missing(v)]
        distinct = list(dict.fromkeys(values))
        if not distinct:
            continue
        if len(distinct) == 1:
            flat[col] = distinct[0]
        elif col == "seed":
            flat[col] = max(distinct, key=values.count)
            notes.append(f"the runs used seeds {sorted(distinct)}; new runs use seed {flat[col]}")
        elif col == "init" and (template := _init_template(frame)) is not None:
            flat[col] = template
        else:
            shown = ", ".join(map(repr, distinct[:3]))
            raise ConfigError(
                f"{source}: the selected runs differ in '{col}' ({shown}); select one arm "
                f"with --where {col}=VALUE or give --base-grid GRID"
            )
    if "family" not in flat:
        raise ConfigError(f"{source}: the runs name no model family; give --base-grid GRID")
    return Arm(base=_unflatten(flat), source=source, notes=tuple(notes))


def arm_from_grid(ref: str, filters: Sequence[str]) -> Arm:
    """The base of the grid's runs that match ``KEY=VALUE`` filters (one arm)."""
    grid = load_grid(ref)
    frame = pd.DataFrame([flatten(spec_to_dict(s)) for s in expand(grid, param_counts)])
    for text in filters:
        key, _, value = text.partition("=")
        if key in frame.columns:
            frame = frame[frame[key].astype(str) == value]
    if frame.empty:
        raise ConfigError(f"grid {ref}: no run matches --where {' '.join(filters)}")
    return arm_from_runs(frame, f"grid {ref}")


def arm_from_family(family: str, modality: str) -> Arm:
    """A bare base (family, modality, default recipe) for rows that come without specs."""
    families.list_presets(family)  # checks the family name
    return Arm(base={"family": family, "modality": modality}, source=f"--family {family}")


def _init_template(frame: pd.DataFrame) -> str | None:
    """``textlm-{size}`` when every run's init is one pattern with its own size in it."""
    if "size" not in frame.columns or frame["size"].map(_missing).any():
        return None
    pairs = [(str(i), str(s)) for i, s in zip(frame["init"], frame["size"], strict=True)]
    if not all(size in init for init, size in pairs):
        return None
    templates = {init.replace(size, "{size}") for init, size in pairs}
    return templates.pop() if len(templates) == 1 else None


def _missing(value: Any) -> bool:
    """None, NaN or pandas' NA (a spec field a run did not set)."""
    return value is None or (np.ndim(value) == 0 and bool(pd.isna(value)))


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _unflatten(flat: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in flat.items():
        *parents, leaf = key.split(".")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out


# ----------------------------------------------------------------------------- sizes and cells


def size_label(n_params: float) -> str:
    """A non-embedding target the family sizes: 85.2M, 1.23B (three significant digits)."""
    return human_count(float(f"{n_params:.3g}"))


def default_ladder(
    arm: Arm,
    low: float,
    high: float,
    per_decade: int = 4,
    convention: str = "total",
    also: Sequence[str] = (),
) -> pd.DataFrame:
    """Sizes whose N (in the fit's ``convention``) lies in [``low``, ``high``] — or the
    smallest one above ``low`` when none does: non-embedding targets at ``per_decade``
    log-spaced steps, the family's presets and the sizes in ``also`` (those already run)."""
    lo = max(low, families.MIN_TARGET)
    hi = min(high * 10 ** (2 / per_decade), families.MAX_TARGET)  # a rung or two to spare
    sizes = [size_label(n) for n in ladder(lo, hi, per_decade)] if lo <= hi else []
    sizes += [p.name for p in families.list_presets(arm.family)] + list(also)
    table = size_table(arm, sizes, convention, skip_unbuildable=True)
    table = _near_runs_dropped(table, list(also), 0.5 / per_decade)
    above = table[table["n_fit"] >= low].sort_values("n_fit")
    inside = above[above["n_fit"] <= high]
    inside = inside if len(inside) or above.empty else above.iloc[:1]
    if inside.empty:
        raise ConfigError(
            f"family {arm.family} builds no size between {low:.3g} and {high:.3g} parameters "
            "(the range the data and the budget allow); pass --sizes"
        )
    return inside.sort_values("n_fit").reset_index(drop=True)


def _near_runs_dropped(table: pd.DataFrame, kept: list[str], dex: float) -> pd.DataFrame:
    """Drop rungs within ``dex`` decades of a size in ``kept`` (the sizes already run)."""
    ran = np.log10(table.loc[table["size"].isin(kept), "n_fit"].to_numpy(float))
    if ran.size == 0:
        return table
    gap = np.abs(np.log10(table["n_fit"].to_numpy(float))[:, None] - ran[None]).min(axis=1)
    return table[table["size"].isin(kept) | (gap >= dex)]


def size_table(
    arm: Arm, sizes: Iterable[str], convention: str, *, skip_unbuildable: bool = False
) -> pd.DataFrame:
    """size, n_params, n_params_non_embedding and n_fit (N in the fit's ``convention``)."""
    rows = []
    for size in dict.fromkeys(sizes):
        try:
            counts = param_counts({**arm.base, "size": size})
        except SlscaleError as exc:
            if skip_unbuildable:
                continue
            raise ConfigError(f"--sizes {size}: {arm.family} cannot build it ({exc})") from None
        rows.append({"size": size, **counts})
    table = pd.DataFrame(rows, columns=["size", "n_params", "n_params_non_embedding"])
    key = "n_params_non_embedding" if convention == "non_embedding" else "n_params"
    table["n_fit"] = table[key].astype(float)
    return table.drop_duplicates("n_fit")


def ladder(low: float, high: float, per_decade: int) -> np.ndarray:
    """Parameter counts 10^(k/per_decade) from the first ≥ ``low`` to the first ≥ ``high``."""
    k = np.arange(
        math.ceil(math.log10(low) * per_decade - 1e-9),
        math.ceil(math.log10(max(high, low)) * per_decade - 1e-9) + 1,
    )
    return np.asarray(10.0 ** (k / per_decade))


def cheapest_flops(n_params: float, min_tokens: float, min_tokens_per_param: float) -> float:
    """6·N·D of the cheapest cell of a size-N model: D at its floor or at the smallest D/N."""
    return flops_6nd(n_params, max(min_tokens, min_tokens_per_param * n_params))


def abstract_sizes(values: Iterable[float]) -> pd.DataFrame:
    """Sizes given as plain parameter counts (rows without a family): no grid can be written."""
    table = pd.DataFrame({"n_fit": sorted({float(v) for v in values})})
    table["size"] = [size_label(n) for n in table["n_fit"]]
    table["n_params"] = table["n_fit"]
    return table


def flops_levels(low: float, high: float, per_decade: int = 4) -> np.ndarray:
    """Compute levels 10^(k/per_decade) between ``low`` and ``high``, plus ``high`` itself."""
    ks = np.arange(
        math.ceil(math.log10(low) * per_decade), math.floor(math.log10(high) * per_decade) + 1
    )
    return np.unique(np.append(10.0 ** (ks / per_decade), high))


def candidate_cells(
    sizes: pd.DataFrame,
    levels: np.ndarray,
    *,
    tokens_per_step: int = 1,
    tokens_per_param: tuple[float, float] = (1.0, 500.0),
    min_tokens: float = 0.0,
    done: tuple[np.ndarray, np.ndarray] | None = None,
) -> pd.DataFrame:
    """Every size × compute level with D = C/(6·N_total) rounded to whole steps, kept when
    D/N_fit lies in ``tokens_per_param``, D ≥ ``min_tokens`` (to within a step) and the cell
    is not already done."""
    n_total = np.repeat(sizes["n_params"].to_numpy(float), levels.size)
    exact_tokens = tokens_6nd(np.tile(levels, len(sizes)), n_total)
    steps = np.maximum(1, np.round(exact_tokens / tokens_per_step))
    cells = sizes.loc[sizes.index.repeat(levels.size)].reset_index(drop=True)
    cells["level"] = np.tile(levels, len(sizes))
    cells["tokens"] = (steps * tokens_per_step).astype(np.int64)
    cells["flops_6nd"] = flops_6nd(n_total, cells["tokens"])
    tokens, n_fit = cells["tokens"], cells["n_fit"]  # ranges hold to within one step
    keep = (tokens + tokens_per_step >= tokens_per_param[0] * n_fit) & (
        tokens - tokens_per_step <= tokens_per_param[1] * n_fit
    )
    keep &= tokens + tokens_per_step >= min_tokens
    if done is not None:
        keep &= ~_is_done(cells, *done)
    return cells[keep].drop_duplicates(["size", "tokens"]).reset_index(drop=True)


def _is_done(cells: pd.DataFrame, n_done: np.ndarray, d_done: np.ndarray) -> np.ndarray:
    ln = np.log10(cells["n_fit"].to_numpy(float))[:, None] - np.log10(n_done)[None]
    ld = np.log10(cells["tokens"].to_numpy(float))[:, None] - np.log10(d_done)[None]
    return ((np.abs(ln) < SAME_CELL_DEX) & (np.abs(ld) < SAME_CELL_DEX)).any(axis=1)


def gpu_hours(arm: Arm, cells: pd.DataFrame, gpu: str, mfu: float) -> np.ndarray:
    """Estimated GPU-hours of each cell on ``gpu`` (:func:`slscale.sweep.plan.plan_run`)."""
    return np.array([plan(arm, s, t, gpu, mfu).gpu_hours for s, t in _pairs(cells)])


def plan(arm: Arm, size: str, tokens: int, gpu: str, mfu: float) -> PlanRow:
    """The resource plan of one new run."""
    return plan_run(arm.spec(size, tokens), gpu, mfu, None)


def _pairs(cells: pd.DataFrame) -> list[tuple[str, int]]:
    return [(str(s), int(t)) for s, t in zip(cells["size"], cells["tokens"], strict=True)]


# ----------------------------------------------------------------------------- outputs


def next_grid(arm: Arm, cells: pd.DataFrame, name: str, description: str = "") -> GridSpec:
    """A grid of the chosen cells (the ``cells`` generator) that ``sweep launch`` accepts."""
    listed = [{"size": s, "tokens": t} for s, t in _pairs(cells)]
    grid = GridSpec(
        name=name,
        description=description,
        base=dict(arm.base),
        generators=[{"cells": {"cells": listed}}],
    )
    expand(grid, param_counts)  # fails here, not at launch, if a cell is not a valid run
    return grid


def write_grid(grid: GridSpec, path: str) -> int:
    """Save ``grid`` and read it back; the number of runs it expands to."""
    save_grid(grid, path)
    return len(expand(load_grid(path), param_counts))


def nearest_architecture(arm: Arm, n_target: float, convention: str) -> dict[str, Any]:
    """The buildable size whose N (in the fit's ``convention``) is nearest ``n_target``.

    Non-embedding targets are refined until the built model's N matches (total N adds the
    embeddings, which depend on the width the sizing picks); presets of the family compete.
    """
    key = "n_params_non_embedding" if convention == "non_embedding" else "n_params"
    target, tried = n_target, []
    for _ in range(6):
        target = min(max(target, families.MIN_TARGET), families.MAX_TARGET)
        label = size_label(target)
        tried.append(label)
        try:
            built = param_counts({**arm.base, "size": label})[key]
        except SlscaleError:
            break
        target *= n_target / built
    candidates = size_table(
        arm,
        [*tried, *(p.name for p in families.list_presets(arm.family))],
        convention,
        skip_unbuildable=True,
    )
    miss = np.abs(np.log(candidates["n_fit"].to_numpy(float) / n_target))
    best = candidates.iloc[int(np.argmin(miss))].to_dict()
    best["arch"] = architecture({**arm.base, "size": str(best["size"])})
    return best
