"""A transformers Llama that is exactly a bigram model with a chosen table, and its vocabulary.

With every block's output projections at zero the residual stream is the token's embedding; the
embeddings are one-hot, so after the final RMSNorm the hidden state is ``e_i / rms(e_i)`` and an
LM head of ``table.T · rms`` gives logits ``log P(· | i)``. Likelihoods of any sequence are then
known in closed form, which is what the evaluation tests compare against.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from slscale.models.vocab import SpeechTextVocab, extend_tokenizer
from slscale.models.world.tokenizer import build_tokenizer

WORDS = ("a", "b", "c", "d")
NUM_UNITS = 6


def bigram_vocab() -> SpeechTextVocab:
    """Text ids: <pad> 0, <unk> 1, <bos> 2, <eos> 3, a..d 4..7; units 8..13; <speech> 14,
    <text> 15 (16 rows)."""
    return extend_tokenizer(build_tokenizer(list(WORDS)), num_units=NUM_UNITS)


def ids(vocab: SpeechTextVocab) -> dict[str, int]:
    """Names of the 16 tokens: bos, S, T, a..d, u0..u5."""
    out = {"bos": 2, "S": vocab.speech_token_id, "T": vocab.text_token_id}
    out.update({w: 4 + k for k, w in enumerate(WORDS)})
    out.update({f"u{k}": vocab.unit_offset + k for k in range(NUM_UNITS)})
    return out


def bigram_table(vocab: SpeechTextVocab) -> np.ndarray:
    """P[i, v] = P(next = v | current = i); rows not set below are uniform."""
    n, t = vocab.vocab_size, ids(vocab)
    table = np.full((n, n), 1.0 / n)

    def row(name: str, probs: dict[str, float]) -> None:
        rest = 1.0 - sum(probs.values())
        others = [v for v in range(n) if v not in {t[k] for k in probs}]
        table[t[name]] = 0.0
        table[t[name], others] = rest / len(others)
        for key, p in probs.items():
            table[t[name], t[key]] = p

    row("bos", {"S": 0.9, "T": 0.09})
    row("S", {"u4": 0.9, "u0": 0.05})
    row("u0", {"u1": 0.45, "u2": 0.1, "u3": 0.2, "T": 0.05})
    row("u1", {"u2": 0.2, "u1": 0.7})
    row("u3", {"T": 0.9, "u3": 0.08})
    row("u4", {"u1": 0.5, "u5": 0.25})
    row("u5", {"u5": 0.99})
    row("T", {"a": 0.6, "b": 0.2})
    row("a", {"b": 0.6, "c": 0.1})
    return table


def bigram_model(vocab: SpeechTextVocab, table: np.ndarray) -> torch.nn.Module:
    from transformers import LlamaConfig, LlamaForCausalLM

    n = vocab.vocab_size
    config = LlamaConfig(
        vocab_size=n,
        hidden_size=n,
        intermediate_size=8,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        tie_word_embeddings=False,
        max_position_embeddings=64,
        rms_norm_eps=1e-6,
        pad_token_id=vocab.pad_token_id,
    )
    model = LlamaForCausalLM(config)
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        model.model.embed_tokens.weight.copy_(torch.eye(n))
        model.model.norm.weight.fill_(1.0)
        rms = math.sqrt(1.0 / n + config.rms_norm_eps)
        log_table = torch.tensor(np.log(table), dtype=torch.float32)
        model.lm_head.weight.copy_(log_table.T * rms)
    return model.eval()


def save_checkpoint(vocab: SpeechTextVocab, table: np.ndarray, path: Path) -> Path:
    from slscale.models.build import save_model

    save_model(bigram_model(vocab, table), vocab, path)
    return path
