"""Loading and saving grids: YAML files, shipped grid names, and Python grid functions.

``load_grid`` accepts a path to a YAML file, the name of a shipped grid (``mini-cpu``,
``sims-paper``: see ``slscale/sweep/grids/``), or ``package.module:function`` naming a Python
function that returns a :class:`~slscale.sweep.grid.GridSpec`.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import yaml

from slscale.errors import ConfigError
from slscale.sweep.grid import GridSpec

GRIDS_DIR = Path(__file__).parent / "grids"


def shipped_grids() -> dict[str, Path]:
    """Shipped grid name -> YAML path."""
    return {p.stem: p for p in sorted(GRIDS_DIR.glob("*.yaml"))}


def load_grid(ref: str | Path) -> GridSpec:
    """A grid from a YAML path, a shipped grid name, or ``module:function``."""
    text = str(ref)
    path = Path(text)
    if path.suffix in (".yaml", ".yml") or path.exists():
        return _load_yaml(path)
    if text in shipped_grids():
        return _load_yaml(shipped_grids()[text])
    if ":" in text:
        return _load_function(text)
    raise ConfigError(
        f"grid '{text}' is not a file, a shipped grid ({', '.join(shipped_grids())}) "
        "or module:function"
    )


def _load_yaml(path: Path) -> GridSpec:
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such grid file") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"{path}:{where}: {problem}; fix the YAML syntax") from None
    try:
        return GridSpec.from_dict(data or {}, source=str(path))
    except ConfigError as exc:
        message = str(exc)
        raise ConfigError(
            message if message.startswith(str(path)) else f"{path}: {message}"
        ) from None


def _load_function(ref: str) -> GridSpec:
    module_name, _, func_name = ref.partition(":")
    try:
        func = getattr(importlib.import_module(module_name), func_name)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"grid function '{ref}' cannot be imported: {exc}") from None
    grid = func()
    if not isinstance(grid, GridSpec):
        raise ConfigError(f"grid function '{ref}' returned {type(grid).__name__}, not GridSpec")
    return grid


class _Dumper(yaml.SafeDumper):
    """Writes large and small floats as 3.0e+11 (YAML 1.1 floats need the dot and sign)."""


def _float(dumper: yaml.SafeDumper, value: float) -> yaml.ScalarNode:
    if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3) and value == value:
        mantissa, exponent = f"{value:.15e}".split("e")
        mantissa = mantissa.rstrip("0")
        mantissa += "0" if mantissa.endswith(".") else ""
        return dumper.represent_scalar("tag:yaml.org,2002:float", f"{mantissa}e{int(exponent):+d}")
    return dumper.represent_float(value)


_Dumper.add_representer(float, _float)


def grid_to_yaml(grid: GridSpec) -> str:
    """YAML text that :func:`load_grid` reads back to an equal grid."""
    return yaml.dump(
        grid.to_dict(), Dumper=_Dumper, sort_keys=False, default_flow_style=None, width=100
    )


def save_grid(grid: GridSpec, path: str | Path) -> None:
    Path(path).write_text(grid_to_yaml(grid))


def dump_yaml(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, width=100)
