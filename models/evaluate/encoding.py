"""Pair items → token ids, written the way the training streams write documents.

A candidate is ``[bos] <m1> prompt… [<m2>] continuation…``: the tokenizer's bos when it has
one, the prompt's modality token, and a second modality token only where the modality switches
(as in interleaved documents, :mod:`slscale.models.data.streams`); a prompt-free pair (sBLIMP,
sWUGGY) is ``[bos] <m> continuation…``. A text continuation of a text prompt is tokenized
together with it (then split where the prompt's tokens end), so it gets the same tokens as in
a training document.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from slscale.errors import SlscaleError
from slscale.models.data.manifest import SPEECH, TEXT, EvalItem, EvalPair
from slscale.models.vocab import SpeechTextVocab


@dataclasses.dataclass(frozen=True)
class Encoded:
    """One candidate: its token ids and where its continuation starts."""

    ids: tuple[int, ...]
    continuation_start: int
    """Index of the continuation's first token (every token before it is prompt)."""


def encode_pair(pair: EvalPair, vocab: SpeechTextVocab) -> tuple[Encoded, Encoded]:
    """(positive, negative) candidates of ``pair``."""
    try:
        return (
            _encode(pair.prompt, pair.positive, vocab),
            _encode(pair.prompt, pair.negative, vocab),
        )
    except ValueError as exc:
        raise SlscaleError(f"pair {pair.id!r}: {exc}") from None


def prefix(prompt: EvalItem | None, modality: str, vocab: SpeechTextVocab) -> list[int]:
    """``[bos] <m1> prompt… [<m2>]``: what a continuation in ``modality`` follows."""
    head = [] if vocab.bos_token_id is None else [vocab.bos_token_id]
    if prompt is not None:
        head += [_marker(prompt.modality, vocab), *_ids(prompt, vocab)]
    if prompt is None or prompt.modality != modality:
        head.append(_marker(modality, vocab))
    return head


def _encode(prompt: EvalItem | None, continuation: EvalItem, vocab: SpeechTextVocab) -> Encoded:
    head = prefix(prompt, continuation.modality, vocab)
    if prompt is not None and prompt.modality == continuation.modality == TEXT:
        tail = _text_after(prompt, continuation, vocab)
    else:
        tail = _ids(continuation, vocab)
    if not tail:
        raise ValueError("the continuation encodes to no tokens")
    return Encoded(ids=tuple(head + tail), continuation_start=len(head))


def _marker(modality: str, vocab: SpeechTextVocab) -> int:
    return vocab.speech_token_id if modality == SPEECH else vocab.text_token_id


def _ids(item: EvalItem, vocab: SpeechTextVocab) -> list[int]:
    if item.modality == SPEECH:
        assert item.units is not None
        return [int(i) for i in vocab.encode_units(np.asarray(item.units))]
    assert item.text is not None
    return [int(i) for i in vocab.encode_text(item.text)]


def _text_after(prompt: EvalItem, continuation: EvalItem, vocab: SpeechTextVocab) -> list[int]:
    assert prompt.text is not None and continuation.text is not None
    alone = [int(i) for i in vocab.encode_text(prompt.text)]
    joint = [int(i) for i in vocab.encode_text(f"{prompt.text} {continuation.text}")]
    if joint[: len(alone)] == alone:
        return joint[len(alone) :]
    return _ids(continuation, vocab)  # the tokenizer merged across the boundary: encode apart
