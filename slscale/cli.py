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

from slscale.errors import SlscaleError


def build_parser() -> argparse.ArgumentParser:
    """Return the top-level parser with every stage's sub-commands."""
    parser = argparse.ArgumentParser(
        prog="slscale",
        description="Scaling-law studies of speech language models.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add_commands in _stage_commands():
        add_commands(sub)
    return parser


# Command modules import only argparse-level code at start-up; each command imports its
# stage's heavy dependencies (torch, ray, ...) when it runs, so `slscale --help` stays fast.
COMMAND_MODULES = (
    "slscale.sweep.commands",
    "slscale.store.commands",
)


def _stage_commands() -> list[Callable[[argparse._SubParsersAction], None]]:  # type: ignore[type-arg]
    return [importlib.import_module(name).add_commands for name in COMMAND_MODULES]


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
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
