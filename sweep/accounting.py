"""Parameter and FLOP accounting from a ``transformers`` config, without building weights.

Two parameter conventions are always recorded: N including embeddings (SIMS, Hoffmann et al.
2022) and N excluding them (Kaplan et al. 2020). "Embedding" parameters are the token
embedding matrix, the LM head when it is not tied to it, and learned position embeddings;
everything else (attention, MLP, norms, biases, projections) is "non-embedding".

Two compute conventions as well: C = 6·N·D (Hoffmann et al. 2022;
:func:`slscale.compute.flops_6nd`) and an exact per-token count of the training matmuls with
attention included (:func:`flops_per_token`).

The speech extension adds 500 unit tokens and <speech>/<text> to a vocabulary
(:func:`extended_vocab_size`); those rows are parameters and are counted like any other.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from slscale.errors import ConfigError
from slscale.models.families import FAMILIES

NUM_UNITS = 500
"""mHuBERT-25Hz units of the speech tokenizer (layer 11, 500 k-means clusters)."""
NUM_MODALITY_TOKENS = 2
"""<speech> and <text>, placed at the start of a sequence and at every modality switch."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class ParamCount:
    """Parameter counts of one model."""

    n_params: int
    """All parameters (a tied LM head counted once)."""
    n_params_non_embedding: int
    """Parameters outside the embedding matrices (Kaplan et al. 2020's N)."""
    n_params_embedding: int
    """Token embedding + untied LM head + learned position embeddings."""
    tied_embeddings: bool
    """Whether the LM head shares the token embedding matrix."""
    vocab_size: int
    """Rows of the token embedding matrix (after any vocabulary extension)."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class _Shape:
    """What counting needs to know about a decoder-only model (internal)."""

    num_layers: int
    attention_width: int  # query heads x head width (d_attn)
    matmul_per_layer: int  # weights of the layer's linear maps
    other_per_layer: int  # biases and norm parameters of one layer
    matmul_extra: int  # linear maps outside the layers (e.g. OPT's project_in/out)
    other_extra: int  # e.g. the final norm
    vocab_size: int
    embedding_dim: int  # width of the token embedding and LM head rows
    position_params: int  # learned position embeddings
    tied: bool


def _llama_like(c: Any) -> _Shape:
    """Llama, Mistral and Qwen2: RMSNorm (weight only), gated MLP, GQA; q/k/v biases where the
    model's family record says so (Qwen2), Llama's optional attention (q/k/v/o) and MLP biases
    where its config switches them on."""
    d, f = c.hidden_size, c.intermediate_size
    head_dim = getattr(c, "head_dim", None) or d // c.num_attention_heads
    q, kv = c.num_attention_heads * head_dim, c.num_key_value_heads * head_dim
    biases = 0
    family = FAMILIES.get(c.model_type)
    if family is not None and family.qkv_bias:
        biases += q + 2 * kv
    if getattr(c, "attention_bias", False):
        biases += q + 2 * kv + d
    if getattr(c, "mlp_bias", False):
        biases += 2 * f + d
    return _Shape(
        num_layers=c.num_hidden_layers,
        attention_width=q,
        matmul_per_layer=2 * d * q + 2 * d * kv + 3 * d * f,
        other_per_layer=biases + 2 * d,
        matmul_extra=0,
        other_extra=d,
        vocab_size=c.vocab_size,
        embedding_dim=d,
        position_params=0,
        tied=bool(c.tie_word_embeddings),
    )


def _gpt_neox(c: Any) -> _Shape:
    """GPT-NeoX / Pythia: fused QKV, LayerNorm with bias, biased 4d MLP, rotary positions."""
    d, f = c.hidden_size, c.intermediate_size
    attention_biases = 4 * d if getattr(c, "attention_bias", True) else 0
    return _Shape(
        num_layers=c.num_hidden_layers,
        attention_width=d,
        matmul_per_layer=4 * d * d + 2 * d * f,
        other_per_layer=attention_biases + f + d + 4 * d,
        matmul_extra=0,
        other_extra=2 * d,
        vocab_size=c.vocab_size,
        embedding_dim=d,
        position_params=0,
        tied=bool(c.tie_word_embeddings),
    )


def _opt(c: Any) -> _Shape:
    """OPT: biased projections, LayerNorm, learned positions (+2 offset rows), optional
    project_in/out when the embedding width differs from the model width."""
    d, f, p = c.hidden_size, c.ffn_dim, c.word_embed_proj_dim
    norm = 2 * d if c.layer_norm_elementwise_affine else 0
    biases = 5 * d + f if c.enable_bias else 0
    final_norm = norm if c.do_layer_norm_before and not c._remove_final_layer_norm else 0
    return _Shape(
        num_layers=c.num_hidden_layers,
        attention_width=d,
        matmul_per_layer=4 * d * d + 2 * d * f,
        other_per_layer=biases + 2 * norm,
        matmul_extra=2 * p * d if p != d else 0,
        other_extra=final_norm,
        vocab_size=c.vocab_size,
        embedding_dim=p,
        position_params=(c.max_position_embeddings + 2) * d,
        tied=bool(c.tie_word_embeddings),
    )


_SHAPES = {
    **dict.fromkeys(FAMILIES, _llama_like),  # every family's block design is Llama-like
    "mistral": _llama_like,
    "gpt_neox": _gpt_neox,
    "opt": _opt,
}


def _shape(config: Any) -> _Shape:
    model_type = getattr(config, "model_type", None)
    if model_type not in _SHAPES:
        raise ConfigError(
            f"cannot count parameters of model_type {model_type!r}; supported: "
            f"{', '.join(sorted(_SHAPES))}"
        )
    return _SHAPES[model_type](config)


def count_params(config: Any) -> ParamCount:
    """Parameter counts of the model ``config`` describes (a ``PretrainedConfig``)."""
    s = _shape(config)
    non_embedding = (
        s.num_layers * (s.matmul_per_layer + s.other_per_layer) + s.matmul_extra + s.other_extra
    )
    token_rows = s.vocab_size * s.embedding_dim
    embedding = token_rows * (1 if s.tied else 2) + s.position_params
    return ParamCount(
        n_params=non_embedding + embedding,
        n_params_non_embedding=non_embedding,
        n_params_embedding=embedding,
        tied_embeddings=s.tied,
        vocab_size=s.vocab_size,
    )


def flops_per_token(config: Any, context_length: int) -> float:
    """Training FLOPs per token (forward + backward) of the matmuls, attention included.

    C_token = 6·(N_matmul + V·d_emb) + 12·L·d_attn·T, where N_matmul counts the weights of
    every linear map in the layers (biases and norms excluded), V·d_emb is the LM head's
    logits matmul (the input embedding is a lookup and costs nothing), L the layers, d_attn
    = query heads × head width and T = ``context_length``. The factor 6 is 2 FLOPs per
    multiply-add forward and twice that backward; 12·L·d_attn·T is QKᵀ and A·V over the full
    T×T score matrix (PaLM, Chowdhery et al. 2022, App. B; Chinchilla, Hoffmann et al. 2022,
    App. F, which also counts the embedding lookup and softmax, <1% at our sizes). A causal
    kernel skips about half of the attention term; like PaLM's MFU we count it in full.
    """
    if context_length <= 0:
        raise ConfigError(f"context_length = {context_length!r}: must be positive")
    s = _shape(config)
    matmul = s.num_layers * s.matmul_per_layer + s.matmul_extra + s.vocab_size * s.embedding_dim
    return float(6 * matmul + 12 * s.num_layers * s.attention_width * context_length)


def flops_exact(config: Any, tokens: int, context_length: int) -> float:
    """Training FLOPs of ``tokens`` tokens by :func:`flops_per_token`."""
    return flops_per_token(config, context_length) * tokens


def extended_vocab_size(
    base: int, units: int = NUM_UNITS, modality_tokens: int = NUM_MODALITY_TOKENS
) -> int:
    """Vocabulary after adding ``units`` speech units and ``modality_tokens`` to ``base``.

    ``base=0`` is a units-only textless vocabulary (units + <speech>/<text>), which removes the
    text rows and so changes N: record the count from the extended config, not the TextLM's.
    """
    for name, value in (("base", base), ("units", units), ("modality_tokens", modality_tokens)):
        if value < 0:
            raise ConfigError(f"vocabulary {name} = {value!r}: must be >= 0")
    if base + units + modality_tokens == 0:
        raise ConfigError("the extended vocabulary is empty: give base or units > 0")
    return base + units + modality_tokens
