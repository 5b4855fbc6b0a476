"""`--where KEY=VALUE`: one meaning for `slscale fit`, `figures` and `plan-next`."""

from __future__ import annotations

import pandas as pd
import pytest

from slscale.analysis import study
from slscale.errors import ConfigError
from slscale.fitting.sources import Table, select, where

FRAME = pd.DataFrame(
    {
        "share": [0.1 + 0.2, 0.5, 0.3],  # 0.30000000000000004 as read back from arithmetic
        "ladder": [True, False, True],
        "family": ["llama", "llama", "Llama"],
        "tokens": [1000, 2000, 3000],
    }
)


def _kept(*filters: str) -> list[int]:
    return list(select(FRAME, filters, source="t.csv", rows="rows of t.csv").index)


def test_numbers_match_within_rounding_booleans_in_any_case_text_exactly():
    assert _kept("share=0.3") == [0, 2]
    assert _kept("share=3e-1", "tokens=1e3") == [0]
    assert _kept("ladder=true") == _kept("ladder=TRUE") == _kept("ladder=True") == [0, 2]
    assert _kept("ladder=false") == [1]
    assert _kept("family=llama") == [0, 1]  # text is exact: 'Llama' is another value
    assert _kept("tokens=2000", "ladder=False") == [1]


def test_the_fit_and_the_figures_read_where_alike():
    table = Table(frame=FRAME, source="t.csv")
    for filters in (["ladder=true"], ["share=0.3", "family=llama"], ["tokens=3000.0"]):
        assert list(where(table, filters).frame.index) == list(study._where(FRAME, filters).index)


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        (["share"], "--where 'share': expected KEY=VALUE"),
        (["colour=red"], "--where 'colour=red': no column 'colour' in t.csv; columns: share,"),
        (["share=x"], "no rows of t.csv match --where share=x"),
        (["ladder=yes", "share=0.3"], "no rows of t.csv match --where ladder=yes share=0.3"),
    ],
)
def test_bad_filters_name_the_filter_and_the_source(filters, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        where(Table(frame=FRAME, source="t.csv"), filters)
