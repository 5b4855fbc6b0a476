"""The command line: every stage's commands are reachable, errors are one line."""

import subprocess
import sys

import pytest

from slscale.cli import COMMANDS, build_parser, main


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_each_command_is_registered_by_its_module(command):
    parser = build_parser([command])
    choices = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert command in choices


def test_help_lists_every_command():
    out = subprocess.run(
        [sys.executable, "-m", "slscale.cli", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for command in COMMANDS:
        assert command in out


def test_user_errors_are_one_line_with_exit_2(capsys):
    assert main(["grid", "plan", "no-such-grid"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("slscale: error: grid 'no-such-grid'")
    assert "Traceback" not in err
