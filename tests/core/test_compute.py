"""Shared compute facts: C = 6·N·D both ways."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from slscale.compute import flops_6nd, tokens_6nd


def test_sims_7b_compute_by_6nd() -> None:
    # 6 × 7.6e9 parameters × 15e9 tokens (SIMS-7B, arXiv 2504.02398)
    assert flops_6nd(7.6e9, 15e9) == pytest.approx(6.84e20, rel=1e-12)
    assert tokens_6nd(6.84e20, 7.6e9) == pytest.approx(15e9, rel=1e-12)
    assert flops_6nd(10, 3) == 180.0 and tokens_6nd(180, 10) == 3.0


def test_6nd_is_element_wise_on_arrays_and_columns() -> None:
    n, d = np.array([1e6, 2e6]), np.array([3e7, 5e7])
    assert flops_6nd(n, d).tolist() == [1.8e14, 6e14]
    assert tokens_6nd(np.array([1.8e14, 6e14]), n).tolist() == pytest.approx([3e7, 5e7])
    column = flops_6nd(pd.Series([1.0, 2.0]), pd.Series([10.0, 20.0]))
    assert isinstance(column, pd.Series) and column.tolist() == [60.0, 240.0]
