"""The evaluation suite's names: benchmarks, multi-speaker sets and variants, as the store holds
them and as other evaluators spell them."""

from __future__ import annotations

import subprocess
import sys

import pytest

from slscale.errors import ConfigError
from slscale.models.evaluate.suite import (
    BENCHMARKS,
    SPEECH_ONLY,
    VARIANTS,
    multi_speaker,
    parse_benchmark,
    parse_variant,
    read_variant,
    split_multi_speaker,
)


def test_benchmark_and_variant_names() -> None:
    assert list(BENCHMARKS.items()) == [
        ("ssc", "sSC"), ("tsc", "tSC"), ("sblimp", "sBLIMP"), ("swuggy", "sWUGGY")
    ]  # fmt: skip
    assert VARIANTS == ("S", "S2T", "T2S", "T") and SPEECH_ONLY == "S"
    assert multi_speaker("sSC") == "MS-sSC"


@pytest.mark.parametrize(
    ("name", "split"),
    [("MS-sSC", ("sSC", True)), ("ms_ssc", ("ssc", True)), (" ms-tSC ", ("tSC", True)),
     ("sBLIMP", ("sBLIMP", False)), ("msx", ("msx", False))],
)  # fmt: skip
def test_multi_speaker_prefix_is_split_off(name: str, split: tuple[str, bool]) -> None:
    assert split_multi_speaker(name) == split


def test_command_line_names_are_parsed_strictly() -> None:
    assert parse_benchmark("MS-sSC") == ("ssc", True)
    assert parse_benchmark("swuggy") == ("swuggy", False)
    assert parse_variant("s→t") == "S2T" and parse_variant("T2S") == "T2S"
    known = "known: sSC, tSC, sBLIMP, sWUGGY, MS-sSC, MS-tSC, MS-sBLIMP, MS-sWUGGY"
    with pytest.raises(ConfigError, match=known):
        parse_benchmark("xSC")
    with pytest.raises(ConfigError, match="unknown variant 'ss'"):
        parse_variant("ss")  # a file code, not a variant name on the command line


@pytest.mark.parametrize(
    ("spelling", "variant"),
    [("S", "S"), ("ss", "S"), ("s2s", "S"), ("s→s", "S"), ("S-S", "S"), ("speech", "S"),
     ("S2T", "S2T"), ("st", "S2T"), ("S→T", "S2T"), ("s-t", "S2T"),
     ("T2S", "T2S"), ("ts", "T2S"), ("t→s", "T2S"), ("t-s", "T2S"),
     ("T", "T"), ("tt", "T"), ("t2t", "T"), ("t→t", "T"), ("text", "T"),
     ("prosody", None), ("s2", None)],
)  # fmt: skip
def test_other_evaluators_variant_spellings_are_read(spelling: str, variant: str | None) -> None:
    assert read_variant(spelling) == variant


def test_the_names_load_without_torch() -> None:
    # Figures and tables read these names; they must not pay for torch.
    code = (
        "import sys, slscale.models.evaluate.suite, slscale.analysis.study, "
        "slscale.analysis.tables; print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
