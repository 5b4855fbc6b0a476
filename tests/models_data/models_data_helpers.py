"""Helpers for the data-pipeline tests: byte-level BPE tokenizers, tiny model configs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

CORPUS = [
    "the cat sat on the mat! the dog barked at the cat.",
    "hello world, this is a small test of speech and text models.",
    "speech language models scale with compute; text models too?",
    "a story: tom loses the cart. tom finds the cart.",
] * 25


def bpe_tokenizer(pad: str | None = "eos") -> Any:
    """A byte-level BPE tokenizer like GPT-2/Qwen's: '!' is id 1, <|endoftext|> id 0.

    ``pad``: "eos" makes the pad token double as eos (Qwen's choice), None leaves it unset.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=320,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    core.train_from_iterator(CORPUS, trainer)
    kwargs = {"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>"}
    if pad == "eos":
        kwargs["pad_token"] = "<|endoftext|>"
    return PreTrainedTokenizerFast(tokenizer_object=core, **kwargs)


def tiny_config(family: str, vocab_size: int) -> Any:
    """A transformers config of a ~10k-parameter model of ``family``."""
    from transformers import GPTNeoXConfig, LlamaConfig, OPTConfig, Qwen2Config

    common = {"vocab_size": vocab_size, "hidden_size": 16, "num_hidden_layers": 1}
    if family == "llama":
        return LlamaConfig(
            **common,
            intermediate_size=32,
            num_attention_heads=2,
            num_key_value_heads=1,
            tie_word_embeddings=False,
        )
    if family == "qwen2":
        return Qwen2Config(
            **common,
            intermediate_size=32,
            num_attention_heads=2,
            num_key_value_heads=1,
            tie_word_embeddings=True,
        )
    if family == "opt":
        return OPTConfig(
            **common,
            ffn_dim=32,
            num_attention_heads=2,
            word_embed_proj_dim=16,
            max_position_embeddings=128,
        )
    return GPTNeoXConfig(
        **common, intermediate_size=32, num_attention_heads=2, max_position_embeddings=128
    )


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path
