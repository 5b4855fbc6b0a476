"""The dependency rules between the stages (docs/architecture.md), read from every import.

Every module of the package is parsed with ``ast``, and every import in it counts: at module
level, inside functions, under ``if TYPE_CHECKING:``, relative ones, and
``importlib.import_module`` of a literal name. A module belongs to the layer its path names:
``slscale.sweep.*`` to ``sweep``, …, ``slscale.workflows.*`` to ``workflows``,
``slscale.cli`` to ``cli``, the rest of ``slscale`` to ``core``. The rules are the data below;
``cli`` and ``workflows``, the floor above the stages, may import anything.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import os
from collections.abc import Iterator
from pathlib import Path

import slscale

STAGES = ("sweep", "models", "fitting", "analysis")
ABOVE = ("workflows", "cli")
SCHEDULER = (
    "slscale.sweep.scheduler",
    "slscale.sweep.launch",
    "slscale.sweep.tune",
    "slscale.sweep.slurm",
)
"""What runs many runs: the Ray scheduler, launches, LR searches, SLURM scripts."""
TRAINER = ("slscale.models.train", "slscale.models.run_commands")
"""What trains one run (``slscale train``)."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class Rule:
    """Modules of ``layers`` import nothing under ``forbidden`` (module prefixes)."""

    name: str
    layers: tuple[str, ...]
    forbidden: tuple[str, ...]
    why: str


RULES = (
    Rule(
        name="nothing imports the floor above the stages",
        layers=("core", *STAGES),
        forbidden=("slscale.workflows", "slscale.cli"),
        why="the CLI and the workflows chain the stages; the stages never call back up",
    ),
    Rule(
        name="core imports no stage",
        layers=("core",),
        forbidden=tuple(f"slscale.{stage}" for stage in STAGES),
        why="core (specs, identity, store, config, compute facts) is what every stage shares",
    ),
    Rule(
        name="models imports neither sweep, fitting nor analysis",
        layers=("models",),
        forbidden=("slscale.sweep", "slscale.fitting", "slscale.analysis"),
        why="one run knows nothing of many runs or of what is made of their results; the "
        "sweep calls the trainer",
    ),
    Rule(
        name="sweep imports neither fitting nor analysis",
        layers=("sweep",),
        forbidden=("slscale.fitting", "slscale.analysis"),
        why="the sweep runs runs; fitting and analysis read their results from the store",
    ),
    Rule(
        name="fitting imports neither the sweep, the trainer, nor plotting",
        layers=("fitting",),
        forbidden=("slscale.sweep", *TRAINER, "slscale.analysis", "matplotlib"),
        why="fitting is maths on tables of runs; figures are analysis's, drawn from its results",
    ),
    Rule(
        name="analysis imports neither the scheduler nor the trainer",
        layers=("analysis",),
        forbidden=(*SCHEDULER, *TRAINER),
        why="analysis draws from fit results and stored runs; it never runs or trains",
    ),
)

EXCEPTIONS: dict[tuple[str, str], str] = {}
"""(module, imported name as a failure names it) -> why it may break a rule until it is
refactored. Keep it short: every entry must still be needed (a test checks)."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class Import:
    module: str
    """The importing module."""
    path: Path
    """Its file, relative to the repository."""
    line: int
    names: tuple[str, ...]
    """Every module or attribute the statement names (``from a import b``: ``a``, ``a.b``)."""


def layer_of(module: str) -> str:
    parts = module.split(".")
    if len(parts) > 1 and parts[1] in (*STAGES, "workflows"):
        return parts[1]
    return "cli" if module == "slscale.cli" else "core"


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def imports_of(source: str, module: str, path: Path, is_package: bool = False) -> Iterator[Import]:
    """Every import of a module's source, wherever it stands."""
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source, filename=str(path))):
        if isinstance(node, ast.Import | ast.ImportFrom | ast.Call):
            names = _imported_names(node, package)
            if names:
                yield Import(module=module, path=path, line=node.lineno, names=names)


def _imported_names(node: ast.Import | ast.ImportFrom | ast.Call, package: str) -> tuple[str, ...]:
    """What an import statement, or ``import_module("literal")``, names (absolute)."""
    if isinstance(node, ast.Import):
        return tuple(alias.name for alias in node.names)
    if isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:  # from ..x import y: up level - 1 packages from the module's own
            parts = package.split(".")
            base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
        return (base, *(f"{base}.{alias.name}" for alias in node.names))
    func = node.func
    called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    first = node.args[0] if node.args else None
    if called != "import_module" or not isinstance(first, ast.Constant):
        return ()
    return (first.value,) if isinstance(first.value, str) else ()


def violations(
    imp: Import, exceptions: dict[tuple[str, str], str] = EXCEPTIONS
) -> Iterator[tuple[tuple[str, str], str]]:
    """(module, imported name), message for each rule the import breaks; the message names
    file, line and rule."""
    layer = layer_of(imp.module)
    for rule in RULES:
        if layer not in rule.layers:
            continue
        hit = next((n for n in imp.names for p in rule.forbidden if _within(n, p)), None)
        if hit is not None and (imp.module, hit) not in exceptions:
            message = (
                f"{imp.path}:{imp.line}: {imp.module} ({layer}) imports {hit} — "
                f"breaks '{rule.name}': {rule.why}"
            )
            yield (imp.module, hit), message


@functools.cache
def package_imports() -> tuple[Import, ...]:
    """Every import of every module of the installed package (stage links followed)."""
    root = Path(slscale.__file__).parent
    repo = root.resolve().parent
    found: list[Import] = []
    for folder, dirs, files in os.walk(root, followlinks=True):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for file in sorted(f for f in files if f.endswith(".py")):
            path = Path(folder) / file
            parts = path.relative_to(root.parent).with_suffix("").parts
            is_package = parts[-1] == "__init__"
            module = ".".join(parts[:-1] if is_package else parts)
            real = path.resolve()
            shown = real.relative_to(repo) if real.is_relative_to(repo) else real
            found += imports_of(real.read_text(encoding="utf-8"), module, shown, is_package)
    return tuple(found)


def test_every_module_keeps_the_dependency_rules():
    broken = [message for imp in package_imports() for _, message in violations(imp)]
    assert not broken, "the dependency rules of docs/architecture.md are broken:\n" + "\n".join(
        broken
    )


def test_the_walk_sees_every_layer():
    layers = {layer_of(imp.module) for imp in package_imports()}
    assert layers == {"core", *STAGES, *ABOVE}


def test_every_exception_is_still_needed():
    needed = {key for imp in package_imports() for key, _ in violations(imp, exceptions={})}
    stale = sorted(set(EXCEPTIONS) - needed)
    assert not stale, f"no longer needed, remove from EXCEPTIONS: {stale}"


def test_imports_inside_functions_type_checking_and_relative_ones_count():
    source = """
from typing import TYPE_CHECKING
if TYPE_CHECKING:
    from slscale.sweep.grid import GridSpec
def f():
    import slscale.analysis.figures
    from ...fitting import laws
    importlib.import_module("slscale.workflows.demo")
"""
    imps = list(imports_of(source, "slscale.models.train.loop", Path("models/train/loop.py")))
    broken = [m for imp in imps for _, m in violations(imp)]
    assert [m.split(":")[1] for m in broken] == ["4", "6", "7", "8"]
    assert broken[2].startswith(
        "models/train/loop.py:7: slscale.models.train.loop (models) imports slscale.fitting — "
    )
    assert "'models imports neither sweep, fitting nor analysis'" in broken[0]
    assert "'nothing imports the floor above the stages'" in broken[3]


def test_a_rule_applies_to_its_layers_only():
    source = "import matplotlib.pyplot\nfrom slscale.sweep.launch import launch\n"
    for module, expected in (
        ("slscale.analysis.plot_loss", ["2"]),
        ("slscale.fitting.approach3", ["1", "2"]),
        ("slscale.workflows.demo", []),
        ("slscale.cli", []),
    ):
        imps = imports_of(source, module, Path("x.py"))
        assert [m.split(":")[1] for imp in imps for _, m in violations(imp)] == expected, module
