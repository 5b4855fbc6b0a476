"""The ``slscale`` command line: the one place that knows every stage.

Each stage contributes its sub-commands through an ``add_commands(subparsers)`` function in its
``commands`` module; a sub-command sets ``func`` to a callable taking the parsed namespace and
returning an exit status. :class:`~slscale.errors.SlscaleError` is printed as one line.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from typing import Any

from slscale.errors import SlscaleError


def build_parser(argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    """The top-level parser, with the sub-commands of the stage that ``argv`` names (or all)."""
    parser = argparse.ArgumentParser(
        prog="slscale",
        description="Scaling-law studies of speech language models.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add_commands in _stage_commands(argv):
        add_commands(sub)
    return parser


# Top-level command -> the stage module whose ``add_commands`` registers it. Only the module
# of the command being run is imported, so start-up never pays for torch, ray or scipy that
# another stage needs; ``slscale --help`` imports them all.
COMMANDS = {
    "grid": "slscale.sweep.grid_commands",
    "status": "slscale.store.commands",
    "export": "slscale.store.commands",
    "fit": "slscale.fitting.commands",
    "world": "slscale.models.world.commands",
    "data": "slscale.models.data.commands",
    "sweep": "slscale.sweep.sweep_commands",
    "tune": "slscale.sweep.sweep_commands",
    "train": "slscale.models.run_commands",
    "eval": "slscale.models.run_commands",
    "generate": "slscale.models.generate_commands",
    "figures": "slscale.analysis.commands",
    "demo": "slscale.workflows.demo",
    "plan-next": "slscale.workflows.plan_next_commands",
    "recommend": "slscale.workflows.plan_next_commands",
}


def _stage_commands(argv: Sequence[str] = ()) -> list[Callable[[Any], None]]:
    first = next((a for a in argv if not a.startswith("-")), None)
    modules = [COMMANDS[first]] if first in COMMANDS else list(dict.fromkeys(COMMANDS.values()))
    return [importlib.import_module(name).add_commands for name in modules]


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(argv).parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except SlscaleError as exc:
        print(f"slscale: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("slscale: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
