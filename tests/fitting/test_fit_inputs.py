"""Rows to fit inputs: the one path `slscale fit`, `plan-next` and `recommend` read runs by."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from slscale.errors import ConfigError
from slscale.fitting import inputs


def _csv(tmp_path, **columns):
    path = tmp_path / "runs.csv"
    pd.DataFrame(columns).to_csv(path, index=False)
    return str(path)


def test_tokens_come_from_their_column_or_from_flops_over_6n(tmp_path):
    n, d = np.array([1e6, 2e6, 4e6]), np.array([2e7, 4e7, np.nan])
    path = _csv(tmp_path, params=n, tokens=d, flops=6 * n * 2e7, loss=[3.0, 2.9, 2.8])
    rows = inputs.select_rows(csv=path, workdir=None, store=None, where=[])
    points = inputs.loss_points(rows, params_col="params", loss_col="loss")
    assert list(points.n) == [1e6, 2e6]  # the row without tokens is skipped, with a note
    assert list(points.tokens) == [2e7, 4e7]
    assert points.notes == ["skipped 1 rows without params/loss/tokens/flops: 2"]
    assert points.conventions["tokens"] == "column 'tokens'"
    from_flops = inputs.loss_points(rows, params_col="params", loss_col="loss", tokens_col="d")
    assert from_flops.tokens == pytest.approx([2e7, 2e7, 2e7], rel=1e-12)
    assert from_flops.conventions["tokens"] == "C/(6N) from column 'flops'"


def test_scores_from_a_csv_column_and_where_filters(tmp_path):
    path = _csv(tmp_path, flops=[1e12, 2e12, 4e12], tsc=[0.5, 0.6, 0.7], arm=["a", "b", "a"])
    rows = inputs.select_rows(csv=path, workdir=None, store=None, where=["arm=a"])
    points = inputs.score_points(rows, metric_col="tsc")
    assert list(points.flops) == [1e12, 4e12] and list(points.value) == [0.5, 0.7]
    assert points.conventions["metric"] == "column 'tsc'"


def test_bad_sources_are_named(tmp_path, monkeypatch):
    monkeypatch.delenv("SLSCALE_STORE", raising=False)
    with pytest.raises(ConfigError, match="not both"):
        inputs.select_rows(csv="x.csv", workdir="w", store=None, where=[])
    with pytest.raises(ConfigError, match="no rows to fit"):
        inputs.select_rows(csv=None, workdir=None, store=None, where=[])
    path = _csv(tmp_path, params=[1e6], loss=[3.0])
    rows = inputs.select_rows(csv=path, workdir=None, store=None, where=[])
    with pytest.raises(ConfigError, match="no tokens column 'tokens' and no FLOPs column"):
        inputs.loss_points(rows, params_col="params", loss_col="loss")
