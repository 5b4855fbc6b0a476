"""Build the model of one run: scratch or TextLM init, then the speech vocabulary extension.

:func:`build_model` is what the trainer calls. Two inits (``RunSpec.init``):

* ``scratch``: a ``from_config`` model whose vocabulary is the extended one from the start
  (the config comes from ``families.hf_config``, or is passed in);
* a TextLM: ``from_pretrained`` on a local checkpoint folder (a hub name works only online;
  offline it fails with a :class:`SlscaleError` naming the init). Its tokenizer is extended and
  the embeddings (and an untied LM head) grow by the new rows, which start at the mean of the
  text rows plus a small seeded jitter (Hewitt 2021, "Initializing new word embeddings"), so
  the new tokens do not dominate the softmax and the logits on text are unchanged.

Textless runs with ``units_only_vocab`` keep only the first 502 rows of a TextLM's embeddings
(TWIST, Hassid et al. 2023, reuse the TextLM's embedding rows for units) or build a 502-row
scratch model. A checkpoint that slscale already extended (it holds ``slscale_vocab.json``) is
loaded as it is, e.g. to continue from it.
"""

from __future__ import annotations

import logging
import re
import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch

from slscale.errors import ConfigError, SlscaleError
from slscale.models.vocab import (
    VOCAB_FILE,
    SpeechTextVocab,
    extend_tokenizer,
    load_vocab,
    units_only_vocab,
)
from slscale.spec import Architecture, Modality, RunSpec, spec_to_dict

log = logging.getLogger(__name__)

NEW_ROW_JITTER = 1e-3
"""Std of the jitter on new embedding rows, relative to the per-dimension std of text rows."""

_HUB_NAME = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def build_model(
    spec: RunSpec,
    arch: Architecture | None = None,
    *,
    tokenizer: str | Path | None = None,
    config: Any = None,
    seed: int | None = None,
) -> tuple[Any, SpeechTextVocab]:
    """Return ``(model, vocab)`` for ``spec``.

    ``arch`` overrides the spec's size; ``config`` (a ``PretrainedConfig``) bypasses the
    families lookup for scratch models; ``tokenizer`` is the text tokenizer folder of a scratch
    run that sees text (a runtime path, e.g. a miniature world's ``tokenizer/``).
    """
    seed = spec.seed if seed is None else seed
    if spec.from_textlm:
        return _from_textlm(spec, seed)
    vocab = _scratch_vocab(spec, tokenizer)
    config = _scratch_config(spec, arch, config, vocab.vocab_size)
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    _set_special_ids(model, vocab)
    return model, vocab


def save_model(model: Any, vocab: SpeechTextVocab, directory: Path) -> None:
    """``save_pretrained`` the model and its vocabulary, so :func:`load_model` restores both."""
    model.save_pretrained(directory)
    vocab.save(directory)


def load_model(directory: Path) -> tuple[Any, SpeechTextVocab]:
    """Load a checkpoint written by :func:`save_model`."""
    from transformers import AutoModelForCausalLM

    vocab = load_vocab(directory)
    return AutoModelForCausalLM.from_pretrained(str(directory)), vocab


# ----------------------------------------------------------------------------- scratch


def _scratch_vocab(spec: RunSpec, tokenizer: str | Path | None) -> SpeechTextVocab:
    if spec.units_only_vocab:
        return units_only_vocab()
    if tokenizer is None:
        hint = (
            "set units_only_vocab: true"
            if spec.modality == Modality.TEXTLESS
            else "pass the text tokenizer folder"
        )
        raise ConfigError(
            f"init 'scratch' with modality '{spec.modality}' needs a text "
            f"tokenizer for its vocabulary: {hint}"
        )
    return extend_tokenizer(_load_tokenizer(Path(tokenizer)), where=f"tokenizer {tokenizer}")


def _load_tokenizer(folder: Path) -> Any:
    """The text tokenizer saved in ``folder`` (ConfigError naming it if there is none)."""
    from transformers import AutoTokenizer

    if not folder.is_dir():
        raise ConfigError(f"tokenizer {folder}: no such folder; pass --tokenizer DIR")
    try:
        return AutoTokenizer.from_pretrained(str(folder))
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"tokenizer {folder}: cannot load it ({type(exc).__name__}); point --tokenizer at "
            "a folder written by a tokenizer's save_pretrained"
        ) from None


def _scratch_config(spec: RunSpec, arch: Architecture | None, config: Any, rows: int) -> Any:
    if config is not None:
        config = config.__class__.from_dict(config.to_dict())
        config.vocab_size = rows
        return config
    from slscale.models import families

    if arch is None:
        arch = spec.arch or families.resolve_architecture(spec.family, spec.size or "")
    return families.hf_config(spec.family, arch, vocab_size=rows)


# ----------------------------------------------------------------------------- TextLM


def _from_textlm(spec: RunSpec, seed: int) -> tuple[Any, SpeechTextVocab]:
    source = _resolve_init(spec.init)
    if Path(source).is_dir() and (Path(source) / VOCAB_FILE).exists():
        log.info("init %s is already extended (%s): loading it as is", source, VOCAB_FILE)
        return load_model(Path(source))
    model, tok = _load_pretrained(spec.init, source)
    rows = model.get_input_embeddings().weight.shape[0]
    if spec.units_only_vocab:
        vocab = units_only_vocab()
        model.resize_token_embeddings(vocab.vocab_size)  # keeps the first rows (TWIST-style)
    else:
        vocab = extend_tokenizer(tok, min_vocab_size=rows, where=f"init {spec.init!r}")
        _grow_embeddings(model, vocab, seed)
    _set_special_ids(model, vocab)
    return model, vocab


def with_init_architecture(data: dict[str, Any]) -> dict[str, Any]:
    """A run dict with neither ``size`` nor ``arch`` whose ``init`` is a local checkpoint folder,
    with ``arch`` read from the folder's config.json (the run id then hashes that architecture);
    any other dict unchanged."""
    if data.get("size") is not None or data.get("arch") is not None:
        return data
    init = data.get("init")
    if not isinstance(init, str) or not Path(init).expanduser().is_dir():
        return data
    arch = checkpoint_architecture(Path(init).expanduser(), str(data.get("family", "")))
    return {**data, "arch": spec_to_dict(arch)}


def checkpoint_architecture(folder: Path, family: str) -> Architecture:
    """The :class:`Architecture` of the checkpoint in ``folder`` (its config.json, with the
    config class's defaults for the fields it leaves out); ConfigError naming the folder when
    it has no readable config or is not of ``family``."""
    from transformers import AutoConfig

    where = f"init {str(folder)!r}"
    if not (folder / "config.json").exists():
        raise ConfigError(
            f"{where}: no config.json to read the architecture from; give 'size' or 'arch'"
        )
    try:
        config = AutoConfig.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{where}: cannot read config.json ({exc})") from None
    if family and config.model_type != family:
        raise ConfigError(
            f"{where}: its config.json is a {config.model_type!r} model but the run says "
            f"family {family!r}; set family: {config.model_type}"
        )
    try:
        heads = int(config.num_attention_heads)
        head_dim = getattr(config, "head_dim", None)
        default_head_dim = int(config.hidden_size) // heads
        return Architecture(
            num_layers=int(config.num_hidden_layers),
            hidden_size=int(config.hidden_size),
            num_heads=heads,
            num_kv_heads=int(getattr(config, "num_key_value_heads", None) or heads),
            intermediate_size=int(config.intermediate_size),
            vocab_size=int(config.vocab_size),
            tie_embeddings=bool(config.tie_word_embeddings),
            head_dim=None
            if head_dim is None or int(head_dim) == default_head_dim
            else int(head_dim),
        )
    except (AttributeError, TypeError) as exc:
        raise ConfigError(
            f"{where}: config.json lacks a field of a decoder's shape ({exc}); give 'arch'"
        ) from None


def _resolve_init(init: str) -> str:
    path = Path(init).expanduser()
    if path.exists():
        if not (path / "config.json").exists():
            raise ConfigError(
                f"init {init!r}: {path} has no config.json; point init at a "
                "folder written by save_pretrained"
            )
        return str(path)
    if not _HUB_NAME.match(init):
        raise ConfigError(f"init {init!r}: no such checkpoint folder")
    return init


def _load_pretrained(init: str, source: str) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    # Offline, the hub client retries for about a minute before failing: look in the local
    # cache only, at once, when the hub cannot be reached.
    offline = not Path(source).exists() and not _hub_reachable()
    try:
        tok = AutoTokenizer.from_pretrained(source, local_files_only=offline)
        model = AutoModelForCausalLM.from_pretrained(source, local_files_only=offline)
    except (OSError, ValueError) as exc:
        where = "the hub is unreachable and it is not cached" if offline else type(exc).__name__
        raise SlscaleError(
            f"init {init!r}: cannot load it ({where}); a hub name needs network access: "
            f"download it first (huggingface-cli download {init} --local-dir DIR) and set "
            "init to DIR"
        ) from None
    return model, tok


def _hub_reachable(timeout_s: float = 3.0) -> bool:
    """Whether the Hugging Face hub endpoint accepts a TCP connection (and offline mode is off)."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return False
    host = urlparse(constants.ENDPOINT).hostname or "huggingface.co"
    try:
        socket.create_connection((host, 443), timeout=timeout_s).close()
    except OSError:
        return False
    return True


def _grow_embeddings(model: Any, vocab: SpeechTextVocab, seed: int) -> None:
    """Resize to ``vocab.vocab_size`` rows; set the new tokens' rows to mean + small jitter."""
    model.resize_token_embeddings(vocab.vocab_size, mean_resizing=False)
    new_ids = torch.arange(
        vocab.unit_offset, vocab.unit_offset + vocab.num_units + 2 + int(vocab.pad_added)
    )
    generator = torch.Generator().manual_seed(seed)
    matrices = [model.get_input_embeddings().weight]
    head = model.get_output_embeddings()
    if head is not None and head.weight is not matrices[0]:
        matrices.append(head.weight)
    with torch.no_grad():
        for weight in matrices:
            text_rows = weight[: vocab.text_vocab_size].float()
            mean, std = text_rows.mean(0), text_rows.std(0)
            noise = torch.randn(len(new_ids), weight.shape[1], generator=generator)
            weight[new_ids] = (mean + NEW_ROW_JITTER * std * noise).to(weight.dtype)


def _set_special_ids(model: Any, vocab: SpeechTextVocab) -> None:
    for target in (model.config, getattr(model, "generation_config", None)):
        if target is not None:
            target.pad_token_id = vocab.pad_token_id
            if vocab.units_only:
                target.bos_token_id = None
                target.eos_token_id = None
