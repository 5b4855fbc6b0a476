"""Parameter counts: published totals, a model built on the meta device, vocabulary extension."""

from __future__ import annotations

import pytest
import torch
from transformers import (
    AutoModelForCausalLM,
    BertConfig,
    GPTNeoXConfig,
    LlamaConfig,
    MistralConfig,
    OPTConfig,
    PretrainedConfig,
    Qwen2Config,
)

from slscale.errors import ConfigError
from slscale.models.families import hf_config, non_embedding_params, resolve_architecture
from slscale.sweep.accounting import count_params, extended_vocab_size

# Parameter totals of the released checkpoints (their safetensors metadata on the Hugging Face
# Hub; a tied LM head is stored, and counted, once).
PUBLISHED = {
    ("qwen2", "qwen2.5-0.5b"): 494_032_768,
    ("qwen2", "qwen2.5-1.5b"): 1_543_714_304,
    ("qwen2", "qwen2.5-3b"): 3_085_938_688,
    ("qwen2", "qwen2.5-7b"): 7_615_616_512,
    ("llama", "llama-3.2-1b"): 1_235_814_400,
    ("llama", "llama-3.2-3b"): 3_212_749_824,
}


@pytest.mark.parametrize(("family", "size"), sorted(PUBLISHED))
def test_published_totals_are_reproduced_exactly(family: str, size: str) -> None:
    config = hf_config(family, resolve_architecture(family, size))
    assert count_params(config).n_params == PUBLISHED[family, size]


def test_embedding_split_of_qwen2_5_7b() -> None:
    count = count_params(hf_config("qwen2", resolve_architecture("qwen2", "qwen2.5-7b")))
    assert not count.tied_embeddings
    assert count.n_params_embedding == 2 * 152064 * 3584  # untied: embedding + LM head
    assert count.n_params_non_embedding == 7_615_616_512 - 2 * 152064 * 3584


def _meta_numel(config: PretrainedConfig) -> tuple[int, int]:
    """(all parameters, embedding parameters) of the model built on the meta device."""
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    total = sum(p.numel() for p in model.parameters())  # shared tensors are yielded once
    embedding_ids = {id(model.get_input_embeddings().weight)}
    embedding_ids.add(id(model.get_output_embeddings().weight))
    embedding = sum(p.numel() for p in model.parameters() if id(p) in embedding_ids)
    for name, p in model.named_parameters():
        embedding += p.numel() if "embed_positions" in name else 0
    return total, embedding


_SMALL = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, vocab_size=101)
META_CONFIGS = {
    "qwen2.5-0.5b": hf_config("qwen2", resolve_architecture("qwen2", "qwen2.5-0.5b")),
    "llama-3.2-1b": hf_config("llama", resolve_architecture("llama", "llama-3.2-1b")),
    "llama-gqa-untied-head_dim": LlamaConfig(
        **_SMALL, intermediate_size=160, num_key_value_heads=2, head_dim=32
    ),
    "llama-biases-tied": LlamaConfig(
        **_SMALL,
        intermediate_size=160,
        num_key_value_heads=1,
        attention_bias=True,
        mlp_bias=True,
        tie_word_embeddings=True,
    ),
    "qwen2-gqa-untied": Qwen2Config(**_SMALL, intermediate_size=96, num_key_value_heads=2),
    "mistral": MistralConfig(**_SMALL, intermediate_size=160, num_key_value_heads=2),
    "gpt-neox-untied": GPTNeoXConfig(**_SMALL, intermediate_size=256),
    "gpt-neox-tied-nobias": GPTNeoXConfig(
        **_SMALL, intermediate_size=256, attention_bias=False, tie_word_embeddings=True
    ),
    "opt-projected": OPTConfig(
        **_SMALL, ffn_dim=256, max_position_embeddings=128, word_embed_proj_dim=32
    ),
    "opt-nobias-noaffine-untied": OPTConfig(
        **_SMALL,
        ffn_dim=256,
        max_position_embeddings=128,
        enable_bias=False,
        layer_norm_elementwise_affine=False,
        tie_word_embeddings=False,
    ),
}


@pytest.mark.parametrize("name", sorted(META_CONFIGS))
def test_count_matches_model_built_on_meta_device(name: str) -> None:
    config = META_CONFIGS[name]
    total, embedding = _meta_numel(config)
    count = count_params(config)
    assert (count.n_params, count.n_params_embedding) == (total, embedding)
    assert count.n_params_non_embedding == total - embedding


@pytest.mark.parametrize(
    ("family", "size"),
    [("llama", "cm-85m"), ("qwen2", "qwen2.5-3b"), ("qwen2", "7M"), ("llama", "llama-3.2-3b")],
)
def test_family_formula_agrees_with_config_count(family: str, size: str) -> None:
    arch = resolve_architecture(family, size)
    assert (
        non_embedding_params(family, arch)
        == count_params(hf_config(family, arch)).n_params_non_embedding
    )


def test_vocabulary_extension_rows_are_counted() -> None:
    assert extended_vocab_size(151936) == 151936 + 502
    for family, size in (("qwen2", "qwen2.5-0.5b"), ("qwen2", "qwen2.5-7b")):
        arch = resolve_architecture(family, size)
        base = count_params(hf_config(family, arch))
        extended = count_params(
            hf_config(family, arch, vocab_size=extended_vocab_size(arch.vocab_size))
        )
        copies = 1 if arch.tie_embeddings else 2  # an untied LM head grows too
        assert extended.n_params - base.n_params == copies * 502 * arch.hidden_size
        assert extended.n_params_non_embedding == base.n_params_non_embedding
        assert extended.vocab_size == arch.vocab_size + 502


def test_units_only_vocabulary_changes_n() -> None:
    arch = resolve_architecture("qwen2", "qwen2.5-0.5b")
    text = count_params(hf_config("qwen2", arch, vocab_size=extended_vocab_size(arch.vocab_size)))
    units = count_params(hf_config("qwen2", arch, vocab_size=extended_vocab_size(0)))
    assert units.vocab_size == 502
    assert units.n_params_embedding == 502 * 896
    assert text.n_params - units.n_params == arch.vocab_size * 896


def test_bad_vocabulary_and_unknown_model_type_raise() -> None:
    with pytest.raises(ConfigError, match="units = -1"):
        extended_vocab_size(10, units=-1)
    with pytest.raises(ConfigError, match="empty"):
        extended_vocab_size(0, units=0, modality_tokens=0)
    with pytest.raises(ConfigError, match=r"model_type 'bert'.*supported: gpt_neox, llama"):
        count_params(BertConfig())
