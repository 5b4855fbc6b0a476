"""FLOP accounting: the per-token formula against torch's FLOP counter and by hand."""

from __future__ import annotations

import math

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode
from transformers import AutoModelForCausalLM, GPTNeoXConfig, OPTConfig, PretrainedConfig

from slscale.compute import flops_6nd
from slscale.errors import ConfigError
from slscale.models.families import hf_config, resolve_architecture
from slscale.spec import Architecture
from slscale.sweep.accounting import (
    count_params,
    extended_vocab_size,
    flops_exact,
    flops_per_token,
)

_GQA = Architecture(
    num_layers=2,
    hidden_size=64,
    num_heads=4,
    num_kv_heads=2,
    intermediate_size=176,
    vocab_size=97,
    tie_embeddings=False,
)
CONFIGS = {
    "llama-mini-100k": hf_config("llama", resolve_architecture("llama", "mini-100k")),
    "qwen2-gqa-untied": hf_config("qwen2", _GQA),
    "llama-head_dim-32": hf_config(
        "llama",
        Architecture(
            num_layers=3,
            hidden_size=48,
            num_heads=2,
            num_kv_heads=1,
            intermediate_size=128,
            vocab_size=61,
            head_dim=32,
        ),
    ),
    "gpt-neox": GPTNeoXConfig(
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=256,
        vocab_size=89,
    ),
    "opt-projected": OPTConfig(
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        ffn_dim=256,
        vocab_size=89,
        word_embed_proj_dim=32,
        max_position_embeddings=128,
    ),
}


def _counted_training_flops(config: PretrainedConfig, batch: int, context: int) -> int:
    """Matmul FLOPs torch counts for one forward + backward (eager attention, whose QKᵀ and
    A·V are bmm calls the counter sees; the CPU SDPA kernel is not counted)."""
    config._attn_implementation = "eager"
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config)
    ids = torch.randint(0, config.vocab_size, (batch, context))
    with FlopCounterMode(display=False) as counter:
        model(input_ids=ids, labels=ids).loss.backward()
    return counter.get_total_flops()


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_formula_equals_torch_flop_counter(name: str) -> None:
    config, batch, context = CONFIGS[name], 2, 32
    expected = flops_per_token(config, context) * batch * context
    # Exact: every matmul is counted forward once and backward twice (input and weight grads).
    assert _counted_training_flops(config, batch, context) == pytest.approx(expected, rel=1e-12)


def test_hand_count_for_qwen2_5_7b() -> None:
    config = hf_config("qwen2", resolve_architecture("qwen2", "qwen2.5-7b"))
    d, f, kv, layers, vocab, context = 3584, 18944, 512, 28, 152064, 2048
    matmul = layers * (2 * d * d + 2 * d * kv + 3 * d * f) + vocab * d  # + LM head
    expected = 6 * matmul + 12 * layers * d * context
    assert flops_per_token(config, context) == expected
    # Against 6·N_total: the input embedding (V·d = 7.2% of N) and the biases and norms cost
    # no matmul, attention at 2048 tokens adds 2·L·d·T / N = 5.4%: 1.8% below 6N in all.
    n = count_params(config).n_params
    biases_and_norms = layers * ((d + 2 * kv) + 2 * d) + d
    assert n == 7_615_616_512
    assert flops_per_token(config, context) / (6 * n) == pytest.approx(
        1 - (vocab * d + biases_and_norms) / n + 2 * layers * d * context / n, rel=1e-12
    )
    assert flops_per_token(config, context) / (6 * n) == pytest.approx(0.9824, abs=1e-4)


def test_sims_7b_compute() -> None:
    assert flops_6nd(7.6e9, 15e9) == pytest.approx(6.84e20, rel=1e-12)
    # Qwen2.5-7B with 500 units + 2 modality tokens, as SIMS-7B, gives the reported 6.86e20.
    arch = resolve_architecture("qwen2", "qwen2.5-7b")
    config = hf_config("qwen2", arch, vocab_size=extended_vocab_size(arch.vocab_size))
    assert flops_6nd(count_params(config).n_params, 15e9) == pytest.approx(6.86e20, rel=1e-3)


def test_flops_exact_scales_with_tokens_and_context() -> None:
    config = CONFIGS["qwen2-gqa-untied"]
    assert flops_exact(config, 1000, 64) == 1000 * flops_per_token(config, 64)
    slope = flops_per_token(config, 65) - flops_per_token(config, 64)
    assert slope == 12 * 2 * 64  # 12·L·d_attn per extra context token
    assert math.isclose(flops_6nd(10, 3), 180.0)


def test_bad_context_length_raises() -> None:
    with pytest.raises(ConfigError, match="context_length = 0"):
        flops_per_token(CONFIGS["gpt-neox"], 0)
