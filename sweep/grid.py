"""Grid specs: a base run, cartesian axes and named cell generators, expanded to RunSpecs.

A grid is data (YAML) or a Python function returning a :class:`GridSpec`; both round-trip.

.. code-block:: yaml

    name: mini-cpu
    base: {family: llama, recipe: {context_length: 128}}
    axes:
      seed: [0, 1]                      # a field axis (dotted names allowed: recipe.lr)
      arm:                              # a bundle axis: each value is a dict of overrides
        - {modality: textless}
        - {modality: interleaved, init: textlm-mini, mix: {...}}
    generators:
      - isoflop_grid: {budgets: [1e12, 3e12], sizes: [mini-50k, mini-100k]}
      - wsd_ladder: {sizes: [mini-50k], tokens_per_param: [10, 20, 40]}
    resources: {max_hours_per_run: 168}  # how wide runs are (runtime, not in run ids)

A ``resources:`` block (:class:`~slscale.sweep.targets.ResourceTarget`) applies to the whole
grid; one inside a bundle axis value applies to that value's runs, over the grid's.

Expansion: for every combination of axis values the overrides are merged into ``base``; each
generator then turns that partial run into cells (size + tokens); every cell becomes a
:class:`~slscale.spec.RunSpec`. Duplicate cells (same run id) are kept once. String fields may
name other top-level fields in braces (``init: "textlm-{size}"``), filled in per run. A WSD
ladder's branch names its trunk by the trunk's run id, so it changes with the trunk's fields
and with its own branch point (:mod:`slscale.sweep.ladder`).
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from slscale.errors import ConfigError
from slscale.identity import run_id
from slscale.spec import RunSpec, spec_from_dict
from slscale.sweep import generators, ladder
from slscale.sweep.targets import ResourceTarget

FIELD_NAMES = {f.name for f in dataclasses.fields(RunSpec)}


@dataclasses.dataclass(frozen=True, kw_only=True)
class GridSpec:
    """A declared set of runs."""

    name: str
    """Grid name (used in reports; not part of run ids)."""
    base: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    """Partial RunSpec fields shared by every run."""
    axes: Mapping[str, Sequence[Any]] = dataclasses.field(default_factory=dict)
    """Cartesian axes: a RunSpec field (dotted for nested) -> values, or a named bundle axis
    whose values are dicts of overrides."""
    generators: Sequence[Mapping[str, Mapping[str, Any]]] = ()
    """Cell generators, each ``{name: kwargs}`` with name in :data:`generators.GENERATORS`."""
    description: str = ""
    """Free text shown by ``grid plan``."""
    resources: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    """``resources:`` block of every run (a :class:`ResourceTarget`'s fields): how wide runs
    are; runtime, never part of a run id."""
    source: str = dataclasses.field(default="", compare=False)
    """Where the grid was read from (named in errors); not serialised."""

    @property
    def label(self) -> str:
        return f"{self.source}: grid '{self.name}'" if self.source else f"grid '{self.name}'"

    def __post_init__(self) -> None:
        if not self.name:
            raise ConfigError("field 'name' is empty: give the grid a name")
        for axis, values in self.axes.items():
            if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values:
                raise ConfigError(f"axis '{axis}' must be a non-empty list of values")
            if axis.split(".")[0] not in FIELD_NAMES and not all(
                isinstance(v, Mapping) for v in values
            ):
                raise ConfigError(
                    f"axis '{axis}' is not a RunSpec field, so each of its values must be a "
                    "mapping of overrides (a bundle axis)"
                )
        ResourceTarget.from_dict(self.resources, self.label)  # a bad block fails here
        for gen in self.generators:
            if not isinstance(gen, Mapping) or len(gen) != 1:
                raise ConfigError(f"generator {gen!r} must be a mapping {{name: {{kwargs}}}}")
            (gen_name,) = gen
            if gen_name not in generators.GENERATORS:
                raise ConfigError(
                    f"unknown generator '{gen_name}'; choose one of "
                    f"{', '.join(sorted(generators.GENERATORS))}"
                )

    @property
    def target(self) -> ResourceTarget:
        """The grid's ``resources:`` block (ConfigError naming the grid if it is invalid)."""
        return ResourceTarget.from_dict(self.resources, self.label)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        if self.description:
            out["description"] = self.description
        out["base"] = _plain(self.base)
        if self.resources:
            out["resources"] = _plain(self.resources)
        if self.axes:
            out["axes"] = {k: _plain(list(v)) for k, v in self.axes.items()}
        if self.generators:
            out["generators"] = [_plain(dict(g)) for g in self.generators]
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "grid") -> GridSpec:
        if not isinstance(data, Mapping):
            raise ConfigError(f"{source}: the top level must be a mapping with 'name' and 'base'")
        unknown = sorted(set(data) - {*_TOP_KEYS})
        if unknown:
            raise ConfigError(
                f"{source}: unknown key '{unknown[0]}' (expected {', '.join(_TOP_KEYS)})"
            )
        return cls(
            name=str(data.get("name", "")),
            description=str(data.get("description", "")),
            base=dict(data.get("base") or {}),
            axes={
                k: list(v) if isinstance(v, list) else v
                for k, v in (data.get("axes") or {}).items()
            },
            generators=list(data.get("generators") or []),
            resources=data.get("resources") or {},
            source=source if source != "grid" else "",
        )


_TOP_KEYS = ("name", "description", "base", "resources", "axes", "generators")


ParamCounter = Callable[[Mapping[str, Any]], Mapping[str, float]]
"""Given a partial run dict with family + size (or arch), its n_params and
n_params_non_embedding."""


def expand(grid: GridSpec, n_params_of: ParamCounter) -> list[RunSpec]:
    """All runs of ``grid`` in a stable order, duplicates (same run id) removed."""
    return [spec for spec, _ in expand_with_targets(grid, n_params_of)]


def expand_with_targets(
    grid: GridSpec, n_params_of: ParamCounter
) -> list[tuple[RunSpec, ResourceTarget]]:
    """:func:`expand`, each run with the ``resources:`` that apply to it (its axis values'
    blocks over the grid's; the first run of duplicates keeps its own)."""
    runs: dict[str, tuple[RunSpec, ResourceTarget]] = {}
    top = grid.target
    for partial, target in _axis_points(grid):
        for cell in _cells(grid, partial, n_params_of):
            spec = _spec_of(partial, cell, grid.label)
            runs.setdefault(run_id(spec), (spec, target.over(top)))
    if not runs:
        raise ConfigError(f"{grid.label} expands to no runs: check its generators")
    return list(runs.values())


def _axis_points(grid: GridSpec) -> list[tuple[dict[str, Any], ResourceTarget]]:
    """Every combination of axis values: the merged partial run, and the resources of its
    bundle values (a later axis over an earlier one)."""
    names = list(grid.axes)
    points = []
    for values in itertools.product(*(grid.axes[n] for n in names)):
        partial, target = copy.deepcopy(dict(grid.base)), ResourceTarget()
        for name, value in zip(names, values, strict=True):
            if name.split(".")[0] in FIELD_NAMES:
                partial = _merge(partial, _dotted(name, value))
                continue
            override = dict(value)
            if "resources" in override:
                where = f"{grid.label}, axis '{name}'"
                target = ResourceTarget.from_dict(override.pop("resources"), where).over(target)
            partial = _merge(partial, override)
        points.append((partial, target))
    return points


def _cells(grid: GridSpec, partial: dict[str, Any], n_params_of: ParamCounter) -> list[dict]:
    if not grid.generators:
        return [{}]
    cells: list[dict[str, Any]] = []
    for gen in grid.generators:
        ((gen_name, kwargs),) = gen.items()
        where = f"{grid.label}, generator '{gen_name}'"
        try:
            cells += generators.GENERATORS[gen_name](
                partial, dict(kwargs or {}), n_params_of, where
            )
        except ConfigError as exc:  # e.g. an unknown family or unsizable size, from accounting
            message = str(exc)
            raise ConfigError(
                message if message.startswith(where) else f"{where}: {message}"
            ) from None
    return cells


def _spec_of(partial: dict[str, Any], cell: Mapping[str, Any], label: str) -> RunSpec:
    """The run of one cell; a WSD branch's cell names its trunk by the trunk's run id."""
    cell = dict(cell)
    parent = cell.pop(ladder.PARENT_CELL, None)
    if parent is not None:
        branch = {**cell["branch"], "parent": run_id(_spec_of(partial, parent, label))}
        cell["branch"] = branch
    data = _fill_templates(_merge(partial, cell))
    return _to_spec(_init_architecture(data, label), label)


def _init_architecture(data: dict[str, Any], label: str) -> dict[str, Any]:
    """``data`` with the ``arch`` of its init checkpoint when it names neither size nor arch
    (transformers is imported only then)."""
    if data.get("size") is not None or data.get("arch") is not None:
        return data
    from slscale.models.build import with_init_architecture

    try:
        return with_init_architecture(data)
    except ConfigError as exc:
        raise ConfigError(f"{label}: {exc}") from None


def _to_spec(data: dict[str, Any], label: str) -> RunSpec:
    try:
        return spec_from_dict(data)
    except ConfigError as exc:
        raise ConfigError(f"{label}: {exc}") from None


def _fill_templates(data: dict[str, Any]) -> dict[str, Any]:
    """Format top-level string fields containing '{...}' with the run's scalar fields."""
    scalars = {k: v for k, v in data.items() if isinstance(v, (str, int, float))}
    out = dict(data)
    for key, value in data.items():
        if isinstance(value, str) and "{" in value:
            try:
                out[key] = value.format_map(scalars)
            except (KeyError, ValueError, IndexError) as exc:
                raise ConfigError(
                    f"field '{key}' = {value!r}: cannot fill template ({exc})"
                ) from None
    return out


def _dotted(name: str, value: Any) -> dict[str, Any]:
    head, _, rest = name.partition(".")
    return {head: _dotted(rest, value) if rest else value}


def _merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Deep merge: nested mappings merge key by key, anything else replaces."""
    out = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
