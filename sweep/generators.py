"""Named cell generators: they turn one partial run into (size, tokens) cells.

* ``ratio_grid``: every size × every tokens-per-parameter ratio D/N (Cuervo & Marxer 2024
  train each size at D/N ∈ {2, 4, 8, 10, 20, 32, 64, 100}).
* ``isoflop_grid``: for every compute budget C and size N, D = C / (6N) rounded to whole
  optimizer steps; a cell is kept only if its realised 6ND is within ``tolerance`` of C and
  its D/N lies within [min_tokens_per_param, max_tokens_per_param] (Hoffmann et al. 2022,
  Approach 2: IsoFLOP profiles).
* ``cells``: an explicit list of {size, tokens} (what ``plan-next`` writes).
* ``wsd_ladder``: per size one warmup–stable–decay trunk and one decay branch per budget D
  (D/N ratios or token counts), branched off the trunk at (1 − f)·D in whole optimizer steps
  (Hägele et al. 2024, arXiv 2405.18392): the cells of a size cost about the longest budget
  instead of their sum (:mod:`slscale.sweep.ladder`). Give the budgets as
  ``tokens_per_param`` or ``tokens``; ``decay_fraction`` and ``decay_shape`` default to the
  recipe's (0.2, 1-sqrt).

Without ``sizes`` a generator uses the run's own ``size`` (set by the base or an axis).

Budgets count C = 6·N·D with N the *total* parameter count by default (as SIMS and
Chinchilla do); ``count: non_embedding`` switches the convention.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from slscale.compute import flops_6nd, tokens_6nd
from slscale.errors import ConfigError
from slscale.spec import Recipe, from_dict
from slscale.sweep import ladder

Cell = dict[str, Any]
Counter = Callable[[Mapping[str, Any]], Mapping[str, float]]

CM_TOKENS_PER_PARAM = (2, 4, 8, 10, 20, 32, 64, 100)
"""Cuervo & Marxer (EMNLP 2024) token-to-parameter ratios."""


def ratio_grid(
    sizes: Sequence[str] = (),
    tokens_per_param: Sequence[float] = CM_TOKENS_PER_PARAM,
    count: str = "total",
) -> dict[str, dict[str, Any]]:
    """Generator entry for a :class:`~slscale.sweep.grid.GridSpec`: sizes × D/N ratios
    (no sizes: the run's own size)."""
    kwargs: dict[str, Any] = {"sizes": list(sizes)} if sizes else {}
    kwargs |= {"tokens_per_param": list(tokens_per_param), "count": count}
    return {"ratio_grid": kwargs}


def isoflop_grid(
    budgets: Sequence[float],
    sizes: Sequence[str] = (),
    tolerance: float = 0.05,
    min_tokens_per_param: float = 1.0,
    max_tokens_per_param: float = 1e4,
    count: str = "total",
) -> dict[str, dict[str, Any]]:
    """Generator entry for a :class:`~slscale.sweep.grid.GridSpec`: budgets × sizes
    (no sizes: the run's own size)."""
    kwargs: dict[str, Any] = {"budgets": [float(b) for b in budgets]}
    kwargs |= {"sizes": list(sizes)} if sizes else {}
    kwargs |= {
        "tolerance": tolerance,
        "min_tokens_per_param": min_tokens_per_param,
        "max_tokens_per_param": max_tokens_per_param,
        "count": count,
    }
    return {"isoflop_grid": kwargs}


def wsd_ladder(
    sizes: Sequence[str] = (),
    tokens_per_param: Sequence[float] = (),
    tokens: Sequence[float] = (),
    decay_fraction: float | None = None,
    decay_shape: str | None = None,
    count: str = "total",
) -> dict[str, dict[str, Any]]:
    """Generator entry for a :class:`~slscale.sweep.grid.GridSpec`: per size a WSD trunk and a
    branch per budget, the budgets as D/N ratios or as token counts (no sizes: the run's own
    size; no decay_fraction or decay_shape: the recipe's)."""
    kwargs: dict[str, Any] = {"sizes": list(sizes)} if sizes else {}
    if tokens_per_param:
        kwargs["tokens_per_param"] = list(tokens_per_param)
    if tokens:
        kwargs["tokens"] = [float(t) for t in tokens]
    if decay_fraction is not None:
        kwargs["decay_fraction"] = decay_fraction
    if decay_shape is not None:
        kwargs["decay_shape"] = decay_shape
    return {"wsd_ladder": kwargs | {"count": count}}


def _ratio_cells(
    partial: Mapping[str, Any], kw: dict[str, Any], n_of: Counter, where: str
) -> list[Cell]:
    sizes = _sizes(partial, kw, where)
    ratios = [
        _positive(r, f"{where}: tokens_per_param", r)
        for r in _list(kw, "tokens_per_param", where, default=list(CM_TOKENS_PER_PARAM))
    ]
    step = _tokens_per_step(partial, where)
    cells = []
    for size in sizes:
        n = _n_params(partial, size, kw, n_of)
        cells += [{"size": size, "tokens": _round_tokens(n * r, step)} for r in ratios]
    return cells


def _isoflop_cells(
    partial: Mapping[str, Any], kw: dict[str, Any], n_of: Counter, where: str
) -> list[Cell]:
    budgets = [_positive(b, f"{where}: budgets", b) for b in _list(kw, "budgets", where)]
    sizes = _sizes(partial, kw, where)
    tol = float(kw.get("tolerance", 0.05))
    lo, hi = float(kw.get("min_tokens_per_param", 1.0)), float(kw.get("max_tokens_per_param", 1e4))
    step = _tokens_per_step(partial, where)
    cells = []
    for budget in budgets:
        for size in sizes:
            n = _n_params(partial, size, kw, n_of)
            tokens = _round_tokens(tokens_6nd(budget, n), step)
            if abs(flops_6nd(n, tokens) - budget) <= tol * budget and lo <= tokens / n <= hi:
                cells.append({"size": size, "tokens": tokens})
    return cells


def _explicit_cells(
    partial: Mapping[str, Any], kw: dict[str, Any], n_of: Counter, where: str
) -> list[Cell]:
    cells = []
    for i, cell in enumerate(_list(kw, "cells", where)):
        if not isinstance(cell, Mapping) or "tokens" not in cell:
            raise ConfigError(f"{where}: cells[{i}] must be a mapping with 'tokens' (and 'size')")
        cells.append(dict(cell))
    return cells


def _ladder_cells(
    partial: Mapping[str, Any], kw: dict[str, Any], n_of: Counter, where: str
) -> list[Cell]:
    recipe = ladder.ladder_recipe(_recipe(partial, where), kw, where)
    step = recipe.tokens_per_step
    if ("tokens_per_param" in kw) == ("tokens" in kw):
        raise ConfigError(f"{where}: give the budgets as one of 'tokens_per_param' and 'tokens'")
    cells = []
    for size in _sizes(partial, kw, where):
        if "tokens" in kw:
            budgets = [_positive(t, f"{where}: tokens", t) for t in _list(kw, "tokens", where)]
        else:
            n = _n_params(partial, size, kw, n_of)
            ratios = _list(kw, "tokens_per_param", where)
            budgets = [n * _positive(r, f"{where}: tokens_per_param", r) for r in ratios]
        steps = sorted({_round_tokens(d, step) // step for d in budgets})
        cells += ladder.cells(size, recipe, steps, f"{where}, size {size}")
    return cells


GENERATORS: dict[str, Callable[[Mapping[str, Any], dict[str, Any], Counter, str], list[Cell]]] = {
    "ratio_grid": _ratio_cells,
    "isoflop_grid": _isoflop_cells,
    "cells": _explicit_cells,
    "wsd_ladder": _ladder_cells,
}


def _n_params(partial: Mapping[str, Any], size: str, kw: dict[str, Any], n_of: Counter) -> float:
    counts = n_of({**partial, "size": size})
    key = {"total": "n_params", "non_embedding": "n_params_non_embedding"}.get(
        kw.get("count", "total")
    )
    if key is None:
        raise ConfigError(f"count = {kw.get('count')!r}: use 'total' or 'non_embedding'")
    return float(counts[key])


def _tokens_per_step(partial: Mapping[str, Any], where: str) -> int:
    return _recipe(partial, where).tokens_per_step


def _recipe(partial: Mapping[str, Any], where: str) -> Recipe:
    try:
        return from_dict(Recipe, partial.get("recipe") or {}, "recipe")
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _round_tokens(tokens: float, step: int) -> int:
    """Round to whole optimizer steps (at least one step)."""
    return max(1, round(tokens / step)) * step


def _sizes(partial: Mapping[str, Any], kw: dict[str, Any], where: str) -> list:
    """The generator's ``sizes``, or the run's own ``size`` when the axes fix it."""
    if "sizes" not in kw and partial.get("size") is not None:
        return [partial["size"]]
    return _list(kw, "sizes", where)


def _list(kw: dict[str, Any], key: str, where: str, default: list | None = None) -> list:
    value = kw.get(key, default)
    if not isinstance(value, (list, tuple)) or not value:
        raise ConfigError(f"{where}: '{key}' must be a non-empty list, got {value!r}")
    return list(value)


def _positive(value: Any, where: str, shown: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where} = {shown!r}: must be a number") from None
    if not math.isfinite(number) or number <= 0:
        raise ConfigError(f"{where} = {shown!r}: must be a positive number")
    return number
