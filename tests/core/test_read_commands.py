"""Commands that only read a study say there is none, and create nothing, when the workdir or
store they are given does not exist."""

from __future__ import annotations

from pathlib import Path

import pytest

from slscale.cli import main

READ_COMMANDS = [
    ["status"],
    ["export", "--out", "{out}"],
    ["fit", "approach3"],
    ["fit", "metric", "--benchmark", "sSC"],
    ["figures", "--out", "{out}"],
    ["plan-next", "--budget-flops", "1e15"],
    ["recommend", "--target-flops", "1e20"],
    ["sweep", "status"],
    ["sweep", "cancel"],
]


@pytest.mark.parametrize("command", READ_COMMANDS, ids=lambda c: " ".join(c[:2]))
@pytest.mark.parametrize("option", ["--workdir", "--store"])
def test_a_read_command_on_no_study_says_so_and_creates_nothing(
    tmp_path: Path, monkeypatch, capsys, command: list[str], option: str
) -> None:
    monkeypatch.delenv("SLSCALE_STORE", raising=False)
    missing = tmp_path / ("no_such_dir" if option == "--workdir" else "no_such.db")
    out = tmp_path / "out"
    argv = [a.format(out=out) for a in command] + [option, str(missing)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"no study at {missing}: " in err, err
    assert "Traceback" not in err
    assert list(tmp_path.iterdir()) == []
