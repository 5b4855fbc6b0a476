"""The speech-text vocabulary: a text tokenizer extended with speech units and modality tokens.

Layout of an *extended* vocabulary (interleaved, text, and textless runs that keep the text
rows), with ``T`` the text tokenizer's length before extension::

    [0, T)            text tokens, unchanged (so a TextLM's logits on text are unchanged)
    [T, T + 500)      unit tokens <Un0> … <Un499> (SlamKit's spelling)
    T + 500, T + 501  <speech>, <text>
    T + 502           <pad>, only when the tokenizer has no dedicated padding token

Padding never aliases a real token: SlamKit forces pad id 0, which is "!" in Qwen's tokenizer;
here a tokenizer whose pad is missing or doubles as bos/eos/unk gets its own ``<pad>``.

A *units-only* vocabulary (textless runs with ``units_only_vocab``, TWIST-style) has the 500
units at ``[0, 500)``, ``<speech>`` = 500 and ``<text>`` = 501: 502 rows, the size families.py
assumes. Its padding id is 501 (``<text>``), which never occurs in a textless run; padded
positions carry label -100 either way. Which layout a run used is recorded
(``units_only``), since it changes the embedding parameters in N.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from slscale.errors import SlscaleError
from slscale.models.data.units import NUM_UNITS

UNIT_TOKEN = "<Un{}>"
SPEECH_TOKEN = "<speech>"
TEXT_TOKEN = "<text>"
PAD_TOKEN = "<pad>"
VOCAB_FILE = "slscale_vocab.json"
"""Written next to an extended checkpoint; its presence marks the checkpoint as extended."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class SpeechTextVocab:
    """Token ids of a speech-text vocabulary, and the text tokenizer that goes with it."""

    text_vocab_size: int
    """Ids below this are text tokens (0 for a units-only vocabulary)."""
    unit_offset: int
    """Id of unit 0; unit u has id unit_offset + u."""
    num_units: int
    """Number of unit tokens."""
    speech_token_id: int
    """Id of <speech>, written at the start of every speech span."""
    text_token_id: int
    """Id of <text>, written at the start of every text span."""
    pad_token_id: int
    """Id written at padded positions (whose labels are -100)."""
    bos_token_id: int | None
    """Id the text tokenizer starts a document with, or None."""
    vocab_size: int
    """Rows of the embedding matrix (may exceed the tokenizer's length, e.g. Qwen's padding)."""
    units_only: bool
    """True for the TWIST-style units-only vocabulary."""
    pad_added: bool = False
    """Whether <pad> was added because the tokenizer had no dedicated padding token."""
    tokenizer: Any = dataclasses.field(default=None, compare=False, repr=False)
    """The (extended) ``transformers`` tokenizer for text, or None."""

    # ------------------------------------------------------------------ units

    def encode_units(self, units: np.ndarray) -> np.ndarray:
        """Unit ids → token ids (int32); raises on units outside ``[0, num_units)``."""
        units = np.asarray(units)
        if units.size and (units.min() < 0 or units.max() >= self.num_units):
            raise ValueError(f"units must lie in [0, {self.num_units})")
        return units.astype(np.int32) + self.unit_offset

    def decode_units(self, ids: np.ndarray) -> np.ndarray:
        """Token ids of units → unit ids; non-unit ids are dropped."""
        ids = np.asarray(ids)
        return ids[self.is_unit(ids)] - self.unit_offset

    def is_unit(self, ids: np.ndarray) -> np.ndarray:
        ids = np.asarray(ids)
        return (ids >= self.unit_offset) & (ids < self.unit_offset + self.num_units)

    # ------------------------------------------------------------------ text

    def encode_text(self, text: str) -> np.ndarray:
        """Text → token ids (int32), without special tokens; raises if it needs a speech id."""
        ids = np.asarray(self.require_tokenizer().encode(text, add_special_tokens=False), np.int32)
        self._check_text_ids(ids)
        return ids

    def encode_words(self, words: Sequence[str]) -> list[np.ndarray]:
        """Each word → its token ids, tokenized with a leading space as inside a sentence.

        SlamKit joins aligned words that carry their own leading space; tokenizing each word
        the same way lets a text span be assembled from its words without re-tokenizing.
        """
        if not words:
            return []
        encoded = self.require_tokenizer()([" " + w for w in words], add_special_tokens=False)
        out = [np.asarray(ids, dtype=np.int32) for ids in encoded["input_ids"]]
        for ids in out:
            self._check_text_ids(ids)
        return out

    def decode_text(self, ids: Sequence[int]) -> str:
        return str(self.require_tokenizer().decode(list(ids))).strip()

    def require_tokenizer(self) -> Any:
        """The text tokenizer; raises for a units-only vocabulary."""
        if self.tokenizer is None:
            raise SlscaleError(
                "this vocabulary has no text tokenizer (a units-only vocabulary cannot encode text)"
            )
        return self.tokenizer

    def _check_text_ids(self, ids: np.ndarray) -> None:
        if ids.size and int(ids.max()) >= self.text_vocab_size:
            raise ValueError(
                f"the text contains a speech-vocabulary token (id {int(ids.max())}); "
                f"remove literal '<Un…>', '{SPEECH_TOKEN}', '{TEXT_TOKEN}' from it"
            )

    # ------------------------------------------------------------------ (de)serialise

    def to_dict(self) -> dict[str, Any]:
        return {
            f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "tokenizer"
        }

    def save(self, directory: Path) -> None:
        """Write ``slscale_vocab.json`` (and the tokenizer, if any) into ``directory``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / VOCAB_FILE).write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        if self.tokenizer is not None:
            self.tokenizer.save_pretrained(directory)


def load_vocab(directory: Path) -> SpeechTextVocab:
    """Read a vocabulary saved by :meth:`SpeechTextVocab.save` (tokenizer included)."""
    path = Path(directory) / VOCAB_FILE
    if not path.exists():
        raise SlscaleError(f"{path} not found: {directory} was not saved by slscale")
    fields = json.loads(path.read_text())
    tokenizer = None
    if not fields.get("units_only"):
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(directory))
    return SpeechTextVocab(**fields, tokenizer=tokenizer)


def units_only_vocab(num_units: int = NUM_UNITS) -> SpeechTextVocab:
    """The TWIST-style vocabulary: units, <speech>, <text>; pad id = <text> (unused)."""
    return SpeechTextVocab(
        text_vocab_size=0,
        unit_offset=0,
        num_units=num_units,
        speech_token_id=num_units,
        text_token_id=num_units + 1,
        pad_token_id=num_units + 1,
        bos_token_id=None,
        vocab_size=num_units + 2,
        units_only=True,
    )


def extend_tokenizer(
    tokenizer: Any,
    *,
    num_units: int = NUM_UNITS,
    min_vocab_size: int = 0,
    where: str = "the tokenizer",
) -> SpeechTextVocab:
    """Add unit, modality (and, if needed, pad) tokens to ``tokenizer`` in place.

    ``min_vocab_size`` is the model's embedding rows (which may exceed the tokenizer's length);
    ``where`` names the tokenizer's origin in error messages.
    """
    _refuse_extended(tokenizer, where)
    base = len(tokenizer)
    needs_pad = _needs_pad(tokenizer)
    new = [UNIT_TOKEN.format(u) for u in range(num_units)] + [SPEECH_TOKEN, TEXT_TOKEN]
    tokenizer.add_tokens(new, special_tokens=True)
    if needs_pad:
        # "<pad>" may be an ordinary token of this vocabulary; never reuse its id.
        name = PAD_TOKEN if PAD_TOKEN not in tokenizer.get_vocab() else "<|slscale_pad|>"
        tokenizer.add_special_tokens({"pad_token": name})
        assert tokenizer.pad_token_id == base + num_units + 2, tokenizer.pad_token_id
    ids = tokenizer.convert_tokens_to_ids([new[0], SPEECH_TOKEN, TEXT_TOKEN])
    assert ids == [base, base + num_units, base + num_units + 1], ids
    return SpeechTextVocab(
        text_vocab_size=base,
        unit_offset=base,
        num_units=num_units,
        speech_token_id=ids[1],
        text_token_id=ids[2],
        pad_token_id=int(tokenizer.pad_token_id),
        bos_token_id=tokenizer.bos_token_id,
        vocab_size=max(len(tokenizer), min_vocab_size),
        units_only=False,
        pad_added=needs_pad,
        tokenizer=tokenizer,
    )


def _refuse_extended(tokenizer: Any, where: str) -> None:
    existing = tokenizer.get_vocab()
    for token in (UNIT_TOKEN.format(0), SPEECH_TOKEN, TEXT_TOKEN):
        if token in existing:
            raise SlscaleError(
                f"{where} already has speech tokens ({token!r} = id {existing[token]}); start "
                "from the text-only tokenizer, or load a checkpoint slscale extended (it has "
                f"{VOCAB_FILE}) with load_vocab"
            )


def _needs_pad(tokenizer: Any) -> bool:
    """True unless the pad token is a special token distinct from bos, eos and unk."""
    pad = tokenizer.pad_token_id
    if pad is None:
        return True
    shared = {tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id}
    return pad in shared or pad not in set(tokenizer.all_special_ids)
