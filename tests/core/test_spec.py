"""RunSpec validation and dict round-trips."""

import dataclasses
import re

import pytest

from slscale.errors import ConfigError
from slscale.spec import (
    TEXTLESS_RECIPE,
    Architecture,
    Branch,
    DataMix,
    Modality,
    Recipe,
    RunSpec,
    spec_from_dict,
    spec_to_dict,
)


def _interleaved() -> RunSpec:
    return RunSpec(
        family="qwen2",
        size="qwen2.5-0.5b",
        init="/ckpt/Qwen2.5-0.5B",
        modality=Modality.INTERLEAVED,
        tokens=2_000_000_000,
        mix=DataMix(text_share=0.2, interleaved_share=0.55, speech_share=0.25, synthetic_share=0.5),
        recipe=dataclasses.replace(Recipe(), lr=3e-4),
        seed=3,
    )


def test_round_trip_through_plain_dict():
    spec = _interleaved()
    assert spec_from_dict(spec_to_dict(spec)) == spec
    arch = Architecture(
        num_layers=2,
        hidden_size=64,
        num_heads=4,
        num_kv_heads=2,
        intermediate_size=128,
        vocab_size=300,
        tie_embeddings=False,
    )
    textless = RunSpec(
        family="llama",
        arch=arch,
        modality="textless",
        tokens=10,
        recipe=TEXTLESS_RECIPE,
        units_only_vocab=True,
    )
    assert textless.modality is Modality.TEXTLESS
    assert spec_from_dict(spec_to_dict(textless)) == textless


def test_yaml_style_numbers_are_accepted():
    spec = spec_from_dict(
        {
            "family": "llama",
            "size": "85M",
            "modality": "textless",
            "tokens": "2e9",
            "recipe": {"lr": "1e-3"},
        }
    )
    assert spec.tokens == 2_000_000_000 and spec.recipe.lr == 1e-3


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"family": "llama", "size": "85M", "modality": "textless", "tokens": 0},
            "field 'tokens' = 0",
        ),
        (
            {"family": "llama", "size": "85M", "modality": "textless", "tokens": -5},
            "field 'tokens' = -5",
        ),
        (
            {"family": "llama", "size": "85M", "modality": "textless", "tokens": 1.5},
            "field 'tokens' = 1.5",
        ),
        (
            {"family": "llama", "size": "85M", "modality": "speechy", "tokens": 10},
            "field 'modality' = 'speechy'",
        ),
        ({"family": "llama", "modality": "textless", "tokens": 10}, "exactly one of 'size'"),
        (
            {
                "family": "llama",
                "size": "85M",
                "modality": "textless",
                "tokens": 10,
                "recipe": {"lr": -1},
            },
            "field 'recipe.lr' = -1",
        ),
        (
            {
                "family": "llama",
                "size": "85M",
                "modality": "textless",
                "tokens": 10,
                "recipe": {"learning_rate": 1},
            },
            "unknown field 'recipe.learning_rate'",
        ),
        (
            {
                "family": "llama",
                "size": "85M",
                "modality": "interleaved",
                "tokens": 10,
                "mix": {"text_share": 0.5, "speech_share": 0.6},
            },
            "must sum to 1",
        ),
        (
            {
                "family": "llama",
                "size": "85M",
                "modality": "textless",
                "tokens": 10,
                "mix": {"text_share": 0.5, "speech_share": 0.5},
            },
            "speech only",
        ),
        ({"size": "85M", "modality": "textless", "tokens": 10}, "missing field 'family'"),
    ],
)
def test_bad_fields_name_the_field_and_value(data, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(".", r"\.")):
        spec_from_dict(data)


def test_architecture_checks_heads():
    with pytest.raises(ConfigError, match=r"arch\.num_kv_heads"):
        Architecture(
            num_layers=2,
            hidden_size=64,
            num_heads=4,
            num_kv_heads=3,
            intermediate_size=128,
            vocab_size=10,
        )


LADDER_RECIPE = {"schedule": "wsd", "global_batch_size": 1, "context_length": 100}
"""100 tokens per step; no warm-up; the default decay fraction 0.2."""


def _ladder_run() -> dict:
    return {"family": "llama", "size": "85M", "modality": "textless", "recipe": LADDER_RECIPE}


def test_ladder_runs_round_trip_through_yaml_style_dicts():
    trunk = spec_from_dict({**_ladder_run(), "tokens": 800, "branch_tokens": [400, "8e2"]})
    assert trunk.branch_tokens == (400, 800) and trunk.is_trunk
    branch = spec_from_dict(
        {**_ladder_run(), "tokens": 1000, "branch": {"parent": "t-1", "from_tokens": 800}}
    )
    assert branch.branch == Branch(parent="t-1", from_tokens=800)
    assert (branch.tokens_trained, trunk.tokens_trained) == (200, 800)
    for spec in (trunk, branch):
        assert spec_from_dict(spec_to_dict(spec)) == spec


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"tokens": 1000, "branch": {"parent": "t", "from_tokens": 700}},
            "field 'branch.from_tokens' = 700: a wsd run of 1000 tokens decays from token 800 "
            "(step 8 of 10): branch there",
        ),
        (
            {"tokens": 1000, "branch": {"parent": "a/b", "from_tokens": 800}},
            "field 'branch.parent' = 'a/b': must be the trunk's run id",
        ),
        (
            {"tokens": 800, "branch_tokens": [800, 400]},
            "field 'branch_tokens' = (800, 400): must increase and end at the trunk's tokens",
        ),
        (
            {"tokens": 800, "branch_tokens": [400, 750]},
            "branch points must be positive whole optimizer steps (100 tokens each)",
        ),
        (
            {"tokens": 800, "branch_tokens": [400, 800], "recipe": {"schedule": "cosine"}},
            "WSD ladders need recipe.schedule: wsd (this run's is cosine)",
        ),
        (
            {
                "tokens": 800,
                "branch_tokens": [800],
                "branch": {"parent": "t", "from_tokens": 600},
            },
            "a run is a trunk or a branch, not both",
        ),
        ({"tokens": 800, "branch_tokens": 800}, "field 'branch_tokens' = 800: must be a list"),
    ],
)
def test_bad_ladder_fields_name_the_field_and_value(fields, message):
    data = {**_ladder_run(), **fields}
    with pytest.raises(ConfigError, match=re.escape(message)):
        spec_from_dict(data)
