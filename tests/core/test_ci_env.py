"""A missing PostgreSQL or SLURM skips a developer's test but fails it under CI."""

from __future__ import annotations

import pytest
from ci_env import missing


@pytest.mark.parametrize("ci", ["true", "1", "yes"])
def test_a_missing_service_fails_under_ci(monkeypatch, ci):
    monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.fail.Exception, match="CI=true but no server here"):
        missing("no server here")


@pytest.mark.parametrize("ci", [None, "", "false"])
def test_a_missing_service_skips_elsewhere(monkeypatch, ci):
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.skip.Exception, match="no server here"):
        missing("no server here")
