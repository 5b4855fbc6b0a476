"""What the trainer calls: the run's training source and its held-out sources.

:class:`RunData` reads each corpus a run needs once (text; real and synthetic speech, with
alignments when the interleaved stream is on) and builds the streams of ``spec.mix``:

* ``train_source(shard, num_shards)``: the endless, shuffled, mixed :class:`MixedBatchSource`;
* ``validation_sources()``: one source per stream over the ``valid`` split, in file order, with
  a fixed interleaving draw, that stops after one pass (``exhausted``);
* ``stats()``: tokens per document of each source and the document sample ratios that give the
  requested token shares (what SlamKit's hand-set ratios approximate).

:func:`make_batch_source` and :func:`make_validation_sources` are one-call shortcuts.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np

from slscale.errors import ConfigError
from slscale.models.data.corpus import FlatDocs, SpeechCorpus, build_speech_corpus, tokenize_texts
from slscale.models.data.layout import DataLayout, discover_layout
from slscale.models.data.mixing import Component, MixedBatchSource
from slscale.models.data.readers import SpeechReadOptions, read_speech, read_text
from slscale.models.data.streams import (
    INTERLEAVED,
    SPEECH,
    TEXT,
    InterleavedDocs,
    speech_stream,
    text_stream,
)
from slscale.models.vocab import SpeechTextVocab
from slscale.spec import RunSpec

log = logging.getLogger(__name__)


class RunData:
    """The corpora and streams of one run (see the module docstring)."""

    def __init__(
        self, spec: RunSpec, vocab: SpeechTextVocab, data_dir: Path, seed: int | None = None
    ) -> None:
        self.spec, self.vocab = spec, vocab
        self.seed = spec.seed if seed is None else seed
        self.layout: DataLayout = discover_layout(Path(data_dir))
        self._shares = {
            TEXT: spec.mix.text_share,
            INTERLEAVED: spec.mix.interleaved_share,
            SPEECH: spec.mix.speech_share,
        }
        if vocab.units_only and (self._shares[TEXT] or self._shares[INTERLEAVED]):
            raise ConfigError(
                "a units-only vocabulary cannot encode text: set "
                "units_only_vocab: false or speech_share: 1.0"
            )
        self._texts: dict[str, FlatDocs] = {}
        self._speech: dict[tuple[str, str], SpeechCorpus] = {}

    def train_source(self, shard: int = 0, num_shards: int = 1) -> MixedBatchSource:
        return MixedBatchSource(
            self._components("train"),
            self._shares,
            seed=self.seed,
            pad_id=self.vocab.pad_token_id,
            unit_range=self._unit_range(),
            shard=shard,
            num_shards=num_shards,
        )

    def validation_sources(self) -> dict[str, MixedBatchSource]:
        parts = self._components("valid")
        return {
            stream: MixedBatchSource(
                [c for c in parts if c.stream == stream],
                {stream: 1.0},
                seed=self.seed,
                pad_id=self.vocab.pad_token_id,
                unit_range=self._unit_range(),
                shuffle=False,
                max_epochs=1,
                fixed_draw=True,
            )
            for stream, share in self._shares.items()
            if share > 0
        }

    def stats(self) -> dict[str, float]:
        """Mean tokens per document of each source, and the equivalent sample ratios."""
        parts = self._components("train")
        means = {c.key: _mean_tokens(c) for c in parts}
        weights = {c.key: self._shares[c.stream] * c.share / means[c.key] for c in parts}
        total = sum(weights.values())
        return {
            **{f"tokens_per_doc/{k}": v for k, v in means.items()},
            **{f"sample_ratio/{k}": w / total for k, w in weights.items()},
        }

    # ------------------------------------------------------------------ streams

    def _components(self, split: str) -> list[Component]:
        mix, parts = self.spec.mix, []
        if self._shares[TEXT] > 0:
            parts.append(Component(TEXT, "main", text_stream(self._text(split), self.vocab)))
        speech_sources = (("real", 1 - mix.synthetic_share), ("synthetic", mix.synthetic_share))
        for source, share in speech_sources:
            if share <= 0:
                continue
            if self._shares[INTERLEAVED] > 0:
                docs = InterleavedDocs(
                    self._speech_corpus(source, split, True),
                    self.vocab,
                    seed=self.seed,
                    span_mean_words=mix.span_mean_words,
                    speech_fraction=mix.speech_fraction,
                )
                _require(len(docs) > 0, f"speech/{source} {split}", "no aligned documents")
                parts.append(Component(INTERLEAVED, source, docs, share))
            if self._shares[SPEECH] > 0:
                corpus = self._speech_corpus(source, split, self._shares[INTERLEAVED] > 0)
                parts.append(Component(SPEECH, source, speech_stream(corpus, self.vocab), share))
        return parts

    def _unit_range(self) -> tuple[int, int]:
        return self.vocab.unit_offset, self.vocab.unit_offset + self.vocab.num_units

    # ------------------------------------------------------------------ corpora

    def _text(self, split: str) -> FlatDocs:
        if split not in self._texts:
            paths = self._paths("text", split)
            texts = (t for p in paths for t in read_text(p))
            self._texts[split] = tokenize_texts(texts, self.vocab, f"text {split} ({paths[0]})")
        return self._texts[split]

    def _speech_corpus(self, source: str, split: str, with_words: bool) -> SpeechCorpus:
        key = (source, split)
        if key not in self._speech:
            paths = self._paths(f"speech/{source}", split)
            options = SpeechReadOptions(
                num_units=self.layout.num_units,
                dedup=self.layout.dedup,
                meta_dir=self.layout.meta_dir,
            )
            docs = (d for p in paths for d in read_speech(p, options))
            self._speech[key] = build_speech_corpus(docs, self.vocab, str(paths[0]), with_words)
            _log_alignment(self._speech[key], paths[0], with_words)
        return self._speech[key]

    def _paths(self, source: str, split: str) -> tuple[Path, ...]:
        paths = self.layout.paths(source, split)
        _require(
            bool(paths),
            f"{source} {split}",
            f"no files under {self.layout.root / source} (expected {split}.jsonl, "
            f"a save_to_disk folder '{split}', or a slscale_data.json)",
        )
        return paths


def make_batch_source(
    spec: RunSpec,
    vocab: SpeechTextVocab,
    data_dir: Path,
    seed: int | None = None,
    *,
    shard: int = 0,
    num_shards: int = 1,
) -> MixedBatchSource:
    """The run's training source (see :class:`RunData`)."""
    return RunData(spec, vocab, data_dir, seed).train_source(shard, num_shards)


def make_validation_sources(
    spec: RunSpec, vocab: SpeechTextVocab, data_dir: Path, seed: int | None = None
) -> dict[str, MixedBatchSource]:
    """One single-pass held-out source per stream of the mix."""
    return RunData(spec, vocab, data_dir, seed).validation_sources()


def _mean_tokens(part: Component, sample: int = 2000) -> float:
    n = len(part.docs)
    picks = np.linspace(0, n - 1, num=min(n, sample)).astype(int)
    document: Callable[[int, int], np.ndarray] = part.docs.document
    return float(np.mean([len(document(int(i), 0)) for i in picks]))


def _require(condition: bool, what: str, problem: str) -> None:
    if not condition:
        raise ConfigError(f"data {what}: {problem}")


def _log_alignment(corpus: SpeechCorpus, path: Path, with_words: bool) -> None:
    missing = int((~corpus.aligned).sum())
    if with_words and missing:
        log.warning(
            "%s: %d of %d speech documents have no word alignment; the interleaved "
            "stream skips them",
            path,
            missing,
            len(corpus),
        )
