"""The ``slscale`` command line: the one place that knows every stage.

Each stage contributes its sub-commands through an ``add_commands(subparsers)`` function in its
``commands`` module; a sub-command sets ``func`` to a callable taking the parsed namespace and
returning an exit status. :class:`~slscale.errors.SlscaleError` is printed as one line.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

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


def _stage_commands() -> list:  # type: ignore[type-arg]
    from slscale.store import commands as store_commands

    return [store_commands.add_commands]


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
