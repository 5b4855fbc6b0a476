"""Continue a prompt in one modality: the other modality's tokens (and the modality markers)
are banned, so a speech continuation is all units and a text continuation all text.

Greedy by default; with ``temperature > 0`` tokens are sampled (optionally from the ``top_k``
likeliest) with a seeded generator. A text continuation stops at the tokenizer's eos.
"""

from __future__ import annotations

from typing import Any

import torch

from slscale.errors import SlscaleError
from slscale.models.data.manifest import SPEECH, TEXT, EvalItem
from slscale.models.evaluate.encoding import prefix
from slscale.models.vocab import SpeechTextVocab


def allowed_tokens(vocab: SpeechTextVocab, modality: str) -> torch.Tensor:
    """Token ids a continuation in ``modality`` may use."""
    if modality == SPEECH:
        return torch.arange(vocab.unit_offset, vocab.unit_offset + vocab.num_units)
    if modality == TEXT and vocab.text_vocab_size:
        banned = {vocab.pad_token_id, vocab.bos_token_id}
        return torch.tensor([i for i in range(vocab.text_vocab_size) if i not in banned])
    raise SlscaleError(f"cannot generate {modality!r} with this vocabulary")


@torch.no_grad()
def generate(
    model: Any,
    vocab: SpeechTextVocab,
    prompt: EvalItem | None,
    modality: str,
    *,
    max_new_tokens: int,
    temperature: float = 0.0,
    top_k: int | None = None,
    seed: int = 0,
) -> list[int]:
    """Token ids of a continuation of ``prompt`` in ``modality`` (speech: unit tokens)."""
    device = next(model.parameters()).device
    allowed = allowed_tokens(vocab, modality).to(device)
    eos = getattr(vocab.tokenizer, "eos_token_id", None) if modality == TEXT else None
    generator = torch.Generator(device=device).manual_seed(seed)
    ids = torch.tensor([prefix(prompt, modality, vocab)], device=device)
    out: list[int] = []
    cache = None
    for _ in range(max_new_tokens):
        result = model(input_ids=ids, cache=cache, use_cache=True)
        cache = result.cache
        logits = result.logits[0, -1].float()[allowed]
        choice = _choose(logits, temperature, top_k, generator)
        token = int(allowed[choice])
        out.append(token)
        if token == eos:
            break
        ids = torch.tensor([[token]], device=device)
    return out


def _choose(
    logits: torch.Tensor, temperature: float, top_k: int | None, generator: torch.Generator
) -> int:
    if temperature <= 0:
        return int(logits.argmax())
    if top_k is not None and top_k < logits.numel():
        cutoff = torch.topk(logits, top_k).values[-1]
        logits = logits.masked_fill(logits < cutoff, float("-inf"))
    probs = torch.softmax(logits / temperature, dim=-1)
    return int(torch.multinomial(probs, 1, generator=generator))
