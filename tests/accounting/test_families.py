"""Model families: hf_config, presets, and sizing parameter targets."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
from transformers import LlamaConfig, Qwen2Config

from slscale.errors import ConfigError
from slscale.models.families import (
    FAMILIES,
    LLAMA,
    QWEN2,
    Family,
    config_fields,
    get_preset,
    hf_config,
    list_presets,
    non_embedding_params,
    parse_size,
    resolve_architecture,
    standard_mlp_width,
    target_aspect_ratio,
)
from slscale.spec import Architecture
from slscale.sweep.accounting import count_params


def test_family_records_are_frozen_and_hold_the_published_defaults() -> None:
    assert FAMILIES == {"llama": LLAMA, "qwen2": QWEN2}
    with pytest.raises(dataclasses.FrozenInstanceError):
        LLAMA.rope_theta = 10_000.0  # type: ignore[misc]
    # Llama 3 (Dubey et al. 2024, Table 3) and the Qwen2.5 config.json files
    assert (LLAMA.rope_theta, LLAMA.rms_norm_eps, LLAMA.qkv_bias) == (500_000.0, 1e-5, False)
    assert (QWEN2.rope_theta, QWEN2.rms_norm_eps, QWEN2.qkv_bias) == (1_000_000.0, 1e-6, True)


@pytest.mark.parametrize("family", FAMILIES.values(), ids=list(FAMILIES))
def test_config_and_both_counts_follow_the_family_record(family: Family) -> None:
    arch = resolve_architecture(family.name, "mini-100k")
    config = hf_config(family.name, arch)
    assert type(config).__name__ == family.config_class and config.model_type == family.name
    assert config.rope_parameters["rope_theta"] == family.rope_theta
    assert config.rms_norm_eps == family.rms_norm_eps
    fields = config_fields(family.name, arch)
    assert ("head_dim" in fields and "attention_bias" in fields) is family.explicit_head_dim
    # The sweep's accounting (from the config) and the sizing rule (from the record) agree,
    # and differ from a bias-free block by exactly the q/k/v biases the record declares.
    counted = count_params(config).n_params_non_embedding
    assert counted == non_embedding_params(family.name, arch)
    hd = arch.resolved_head_dim
    qkv_biases = arch.num_layers * (arch.num_heads * hd + 2 * arch.num_kv_heads * hd)
    assert counted - non_embedding_params("llama", arch) == qkv_biases * family.qkv_bias


def test_published_presets_name_their_family_and_hub_model() -> None:
    preset = get_preset(" Qwen2.5-7B ")
    assert (preset.family, preset.hub_id) == (QWEN2, "Qwen/Qwen2.5-7B")
    assert get_preset("llama-3.2-1b").family is LLAMA
    assert (get_preset("cm-85m").family, get_preset("cm-85m").hub_id) == (None, None)
    with pytest.raises(ConfigError, match=r"unknown preset 'gpt2'; presets: qwen2\.5-0\.5b"):
        get_preset("gpt2")


def test_hf_config_carries_the_architecture_and_family_defaults() -> None:
    arch = resolve_architecture("llama", "llama-3.2-1b")
    config = hf_config("llama", arch, vocab_size=128256 + 502, max_position_embeddings=4096)
    assert isinstance(config, LlamaConfig)
    assert (config.num_hidden_layers, config.hidden_size, config.num_attention_heads) == (
        16,
        2048,
        32,
    )
    assert (config.num_key_value_heads, config.intermediate_size, config.head_dim) == (
        8,
        8192,
        64,
    )
    assert config.vocab_size == 128758 and config.tie_word_embeddings
    assert not config.attention_bias and not config.mlp_bias
    assert config.rope_parameters["rope_theta"] == 500_000.0
    assert config.max_position_embeddings == 4096
    qwen = hf_config("qwen2", resolve_architecture("qwen2", "qwen2.5-7b"))
    assert isinstance(qwen, Qwen2Config)
    assert qwen.vocab_size == 152064 and not qwen.tie_word_embeddings


def test_hf_config_round_trips_through_save_pretrained(tmp_path: Path) -> None:
    config = hf_config("qwen2", resolve_architecture("qwen2", "mini-100k"), vocab_size=600)
    config.save_pretrained(tmp_path)
    loaded = Qwen2Config.from_pretrained(tmp_path)
    assert loaded.to_dict() == config.to_dict()


def test_hf_config_rejects_unknown_family_and_bad_values() -> None:
    arch = resolve_architecture("llama", "mini-25k")
    with pytest.raises(ConfigError, match=r"unknown model family 'gpt2'; choose one of llama"):
        hf_config("gpt2", arch)
    with pytest.raises(ConfigError, match="vocab_size = 0"):
        hf_config("llama", arch, vocab_size=0)
    wide_heads = Architecture(
        num_layers=2,
        hidden_size=64,
        num_heads=4,
        num_kv_heads=2,
        intermediate_size=128,
        vocab_size=50,
        head_dim=32,
    )
    assert hf_config("llama", wide_heads).head_dim == 32
    with pytest.raises(ConfigError, match=r"arch\.head_dim = 32: the qwen2 family"):
        hf_config("qwen2", wide_heads)


def test_presets_are_listed_per_family() -> None:
    llama = {p.name for p in list_presets("llama")}
    qwen = {p.name for p in list_presets("qwen2")}
    assert {"llama-3.2-1b", "cm-85m", "mini-100k"} <= llama
    assert "qwen2.5-0.5b" not in llama and "qwen2.5-0.5b" in qwen
    assert len(list_presets()) == len(llama | qwen)
    assert all(p.source for p in list_presets())


def test_preset_of_another_family_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"'qwen2\.5-0\.5b' is a qwen2 preset, not a llama one"):
        resolve_architecture("llama", "qwen2.5-0.5b")


def test_preset_names_are_case_insensitive_and_vocab_overridable() -> None:
    arch = resolve_architecture("qwen2", "Qwen2.5-0.5B", vocab_size=1000)
    assert arch.vocab_size == 1000 and arch.hidden_size == 896


CM_SIZES = {"cm-20m": 20e6, "cm-85m": 85e6, "cm-155m": 155e6, "cm-309m": 309e6, "cm-823m": 823e6}


@pytest.mark.parametrize("name", sorted(CM_SIZES))
def test_cuervo_marxer_sizes_match_non_embedding_n(name: str) -> None:
    """The paper's sizes match N *without* embeddings (Kaplan's convention): all five within
    3%, while N with the (untied) units-only embedding and LM head misses 20M by 3.5%."""
    arch = resolve_architecture("llama", name)
    assert non_embedding_params("llama", arch) == pytest.approx(CM_SIZES[name], rel=0.03)
    expected_layers_width = {
        "cm-20m": (6, 512),
        "cm-85m": (12, 768),
        "cm-155m": (12, 1024),
        "cm-309m": (24, 1024),
        "cm-823m": (16, 2048),
    }[name]
    assert (arch.num_layers, arch.hidden_size) == expected_layers_width


def test_total_n_convention_does_not_match_cuervo_marxer_20m() -> None:
    arch = resolve_architecture("llama", "cm-20m")
    total = non_embedding_params("llama", arch) + 2 * arch.vocab_size * arch.hidden_size
    assert abs(total / 20e6 - 1) > 0.03


MINI4 = ["mini4-25k", "mini4-50k", "mini4-80k", "mini4-100k", "mini4-150k", "mini4-200k"]


@pytest.mark.parametrize(
    "name", ["mini-25k", "mini-50k", "mini-100k", "mini-200k", "mini-400k", *MINI4]
)
def test_mini_presets_have_the_size_in_their_name(name: str) -> None:
    target = parse_size(name.split("-")[1])
    arch = resolve_architecture("llama", name)
    assert non_embedding_params("llama", arch) == pytest.approx(target, rel=0.03)
    if name.startswith("mini4-"):
        assert arch.num_layers == 4 and arch.num_kv_heads == arch.num_heads
    elif target >= 50e3:  # sized by the rule and frozen
        assert resolve_architecture("llama", f"{target:.0f}", vocab_size=arch.vocab_size) == arch


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize(
    "size", ["100k", "350k", "1.2M", "7M", "30M", "85M", "300M", "1.5B", "7B", "10B"]
)
def test_sizing_hits_the_target_with_a_sensible_shape(family: str, size: str) -> None:
    target = parse_size(size)
    arch = resolve_architecture(family, size)
    assert non_embedding_params(family, arch) == pytest.approx(target, rel=0.03)
    assert arch.hidden_size % arch.resolved_head_dim == 0
    assert arch.num_heads % arch.num_kv_heads == 0 and arch.num_heads >= arch.num_kv_heads
    assert 2 * arch.hidden_size <= arch.intermediate_size <= 4 * arch.hidden_size
    aspect = arch.hidden_size / arch.num_layers
    assert abs(math.log(aspect / target_aspect_ratio(target))) < math.log(2.5)


def test_sizing_lands_on_cuervo_marxer_85m_shape() -> None:
    """12 x 768 as in the paper; with GQA (3 KV heads) the attention is smaller than their
    multi-head one, so the MLP is wider than the standard 8/3·d to keep N at 85M."""
    arch = resolve_architecture("llama", "85M")
    assert (arch.num_layers, arch.hidden_size, arch.num_heads, arch.num_kv_heads) == (
        12,
        768,
        12,
        3,
    )
    assert arch.intermediate_size > standard_mlp_width(768) == 2048


@pytest.mark.parametrize(
    ("text", "value"),
    [("85M", 85e6), ("1.5B", 1.5e9), ("300k", 3e5), ("2e6", 2e6), (" 7 b ", 7e9), ("1T", 1e12)],
)
def test_parse_size(text: str, value: float) -> None:
    assert parse_size(text) == value


@pytest.mark.parametrize(
    ("size", "message"),
    [
        ("big", r"size 'big' is neither a preset nor a parameter count.*presets: qwen2.5-0.5b"),
        ("10k", r"outside the range 5e\+04\.\.2e\+11"),
        ("1T", r"outside the range"),
    ],
)
def test_unfittable_sizes_raise(size: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        resolve_architecture("llama", size)
    with pytest.raises(ConfigError, match="unknown model family 'mamba'"):
        resolve_architecture("mamba", "85M")
