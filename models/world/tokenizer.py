"""The world's word-level text tokenizer, loadable with ``AutoTokenizer.from_pretrained``.

One token per word of the lexicon (split on whitespace), plus ``<pad>``, ``<unk>``, ``<bos>`` and
``<eos>``. ``<pad>`` is a dedicated token, so the speech vocabulary extension keeps it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

SPECIAL_TOKENS = ("<pad>", "<unk>", "<bos>", "<eos>")


def build_tokenizer(words: Sequence[str]) -> Any:
    """A ``PreTrainedTokenizerFast`` over ``words`` (ids follow SPECIAL_TOKENS, then words)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate((*SPECIAL_TOKENS, *words))}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    core.decoder = decoders.WordPiece(prefix="##", cleanup=False)  # joins words with spaces
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        pad_token="<pad>",
        unk_token="<unk>",
        bos_token="<bos>",
        eos_token="<eos>",
    )


def save_tokenizer(words: Sequence[str], directory: Path) -> Any:
    tokenizer = build_tokenizer(words)
    tokenizer.save_pretrained(str(directory))
    return tokenizer
