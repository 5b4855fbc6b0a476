"""The three document streams: text-only, speech-only and interleaved.

A stream turns document ``i`` of its corpus into token ids for a given epoch. Documents start
with the tokenizer's bos (if it has one) and a modality token:

* text:        [bos] <text> text…
* speech:      [bos] <speech> units…
* interleaved: [bos] <text> words… <speech> units… <text> words… (see :mod:`.interleave`)

Only the interleaved stream depends on the epoch: its spans are drawn from a generator seeded
by ``(seed, epoch, document)``, so every epoch gets a fresh draw, a resumed run gets the same
draw, and documents can be produced in any order.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from slscale.models.data.corpus import FlatDocs, SpeechCorpus
from slscale.models.data.interleave import assemble, select_speech_spans
from slscale.models.vocab import SpeechTextVocab

TEXT, INTERLEAVED, SPEECH = "text", "interleaved", "speech"
STREAMS = (TEXT, INTERLEAVED, SPEECH)
_INTERLEAVE_KEY = 0x1A7E


class DocumentSource(Protocol):
    """A finite corpus whose documents render to token ids (possibly epoch-dependent)."""

    def __len__(self) -> int: ...

    def document(self, index: int, epoch: int) -> np.ndarray: ...


def _prefix(vocab: SpeechTextVocab, modality_id: int) -> np.ndarray:
    ids = [] if vocab.bos_token_id is None else [vocab.bos_token_id]
    return np.asarray([*ids, modality_id], dtype=np.int32)


class PrefixedDocs:
    """Documents that do not depend on the epoch: a fixed prefix + the stored ids."""

    def __init__(self, docs: FlatDocs, prefix: np.ndarray) -> None:
        self.docs = docs
        self.prefix = prefix

    def __len__(self) -> int:
        return len(self.docs)

    def document(self, index: int, epoch: int) -> np.ndarray:
        return np.concatenate((self.prefix, self.docs[index]))


def text_stream(docs: FlatDocs, vocab: SpeechTextVocab) -> PrefixedDocs:
    return PrefixedDocs(docs, _prefix(vocab, vocab.text_token_id))


def speech_stream(corpus: SpeechCorpus, vocab: SpeechTextVocab) -> PrefixedDocs:
    return PrefixedDocs(corpus.units, _prefix(vocab, vocab.speech_token_id))


class InterleavedDocs:
    """Aligned speech documents, re-interleaved every epoch."""

    def __init__(
        self,
        corpus: SpeechCorpus,
        vocab: SpeechTextVocab,
        *,
        seed: int,
        span_mean_words: float,
        speech_fraction: float,
    ) -> None:
        self.corpus = corpus
        self.doc_ids = np.flatnonzero(corpus.aligned)
        self.vocab = vocab
        self.seed = seed
        self.span_mean_words = span_mean_words
        self.speech_fraction = speech_fraction
        self.bos = _prefix(vocab, vocab.speech_token_id)[:-1]

    def __len__(self) -> int:
        return len(self.doc_ids)

    def mask(self, index: int, epoch: int) -> np.ndarray:
        """Which words of document ``index`` are speech in ``epoch``."""
        doc = int(self.doc_ids[index])
        rng = np.random.default_rng([self.seed, _INTERLEAVE_KEY, epoch, doc])
        num_words = int(self.corpus.doc_words[doc + 1] - self.corpus.doc_words[doc])
        return select_speech_spans(num_words, rng, self.span_mean_words, self.speech_fraction)

    def document(self, index: int, epoch: int) -> np.ndarray:
        doc = int(self.doc_ids[index])
        word_ids, spans = self.corpus.words_of(doc)
        body = assemble(
            self.mask(index, epoch),
            word_ids,
            spans,
            self.corpus.units[doc],
            self.vocab.speech_token_id,
            self.vocab.text_token_id,
        )
        return np.concatenate((self.bos, body))
