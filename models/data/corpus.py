"""Tokenized corpora held as flat arrays, ready for the streams.

A :class:`FlatDocs` keeps all documents of a corpus in one int array plus offsets (no Python
object per document), so millions of words fit in a few hundred MB and a document is a view.
:class:`SpeechCorpus` adds, for interleaving, each aligned word's text token ids (every
distinct word is tokenized once) and its unit range.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

import numpy as np

from slscale.errors import SlscaleError
from slscale.models.data.readers import SpeechDoc
from slscale.models.vocab import SpeechTextVocab


@dataclasses.dataclass(frozen=True, eq=False)
class FlatDocs:
    """Documents as one flat array and ``len + 1`` offsets."""

    values: np.ndarray
    offsets: np.ndarray

    @classmethod
    def from_arrays(cls, arrays: Sequence[np.ndarray], dtype: type = np.int32) -> FlatDocs:
        lengths = np.fromiter((len(a) for a in arrays), dtype=np.int64, count=len(arrays))
        offsets = np.concatenate(([0], np.cumsum(lengths))).astype(np.int64)
        values: np.ndarray = np.concatenate(arrays).astype(dtype) if arrays else np.zeros(0, dtype)
        return cls(values, offsets)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, index: int) -> np.ndarray:
        return self.values[self.offsets[index] : self.offsets[index + 1]]

    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)


def tokenize_texts(
    texts: Iterable[str], vocab: SpeechTextVocab, where: str, chunk_size: int = 4096
) -> FlatDocs:
    """Tokenize text documents in batches (``where`` names the source in errors)."""
    arrays: list[np.ndarray] = []
    chunk: list[str] = []
    for text in texts:
        chunk.append(text)
        if len(chunk) == chunk_size:
            arrays += _tokenize_chunk(chunk, vocab, where)
            chunk = []
    arrays += _tokenize_chunk(chunk, vocab, where)
    if not arrays:
        raise SlscaleError(f"{where}: no text documents")
    return FlatDocs.from_arrays(arrays)


def _tokenize_chunk(texts: list[str], vocab: SpeechTextVocab, where: str) -> list[np.ndarray]:
    if not texts:
        return []
    encoded = vocab.require_tokenizer()(texts, add_special_tokens=False)["input_ids"]
    out = [np.asarray(ids, dtype=np.int32) for ids in encoded]
    for ids in out:
        if ids.size and int(ids.max()) >= vocab.text_vocab_size:
            raise SlscaleError(
                f"{where}: a document contains a literal speech-vocabulary token "
                "(<Un…>, <speech> or <text>); remove it from the text"
            )
    return out


@dataclasses.dataclass(frozen=True, eq=False)
class SpeechCorpus:
    """Speech documents: unit token ids, and word-level data for those with an alignment."""

    units: FlatDocs
    """Unit *token* ids (vocabulary offset applied) per document."""
    word_table: FlatDocs
    """Text token ids of each distinct aligned word."""
    word_index: np.ndarray
    """int32 per word occurrence (all documents in order): its row in ``word_table``."""
    doc_words: np.ndarray
    """``len + 1`` offsets into the occurrences: document d has doc_words[d]:doc_words[d+1]."""
    word_spans: np.ndarray
    """int64 [num_words, 2]: each word occurrence's unit range within its document."""
    aligned: np.ndarray
    """bool per document: whether it has a word alignment (needed for interleaving)."""

    def __len__(self) -> int:
        return len(self.units)

    def words_of(self, doc: int) -> tuple[list[np.ndarray], np.ndarray]:
        """The text token ids of each word of ``doc``, and the words' unit spans."""
        lo, hi = int(self.doc_words[doc]), int(self.doc_words[doc + 1])
        return [self.word_table[int(i)] for i in self.word_index[lo:hi]], self.word_spans[lo:hi]


def build_speech_corpus(
    docs: Iterable[SpeechDoc], vocab: SpeechTextVocab, where: str, with_words: bool
) -> SpeechCorpus:
    """Collect documents; with ``with_words``, tokenize every distinct aligned word once."""
    unit_arrays: list[np.ndarray] = []
    table: dict[str, int] = {}
    index: list[int] = []
    spans: list[np.ndarray] = []
    doc_words = [0]
    aligned: list[bool] = []
    for doc in docs:
        unit_arrays.append(vocab.encode_units(doc.units))
        has_words = with_words and doc.words is not None and len(doc.words) > 0
        aligned.append(has_words)
        if has_words:
            assert doc.words is not None and doc.word_spans is not None
            index += [table.setdefault(w, len(table)) for w in doc.words]
            spans.append(doc.word_spans)
        doc_words.append(len(index))
    if not unit_arrays:
        raise SlscaleError(f"{where}: no speech documents")
    distinct = list(table)  # insertion order = row order
    return SpeechCorpus(
        units=FlatDocs.from_arrays(unit_arrays),
        word_table=FlatDocs.from_arrays(vocab.encode_words(distinct)),
        word_index=np.asarray(index, dtype=np.int32),
        doc_words=np.asarray(doc_words, dtype=np.int64),
        word_spans=np.concatenate(spans) if spans else np.zeros((0, 2), np.int64),
        aligned=np.asarray(aligned, dtype=bool),
    )
