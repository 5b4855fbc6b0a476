"""``slscale generate``: continue a prompt with a trained model, in speech or in text.

slscale generate MODEL (--prompt-text TEXT | --prompt-units FILE.jsonl) --to speech|text
                 [--max-tokens N] [--temperature T] [--top-k K] [--seed S] [--out FILE]

The model folder is loaded as ``slscale eval`` loads it, and
:func:`~slscale.models.evaluate.generate.generate` bans the other modality's tokens, so a
speech continuation is all units and a text continuation all text. Only the result goes to
stdout (one SlamKit-style JSON line of units, or the text) so that it can be piped; anything
else goes to stderr. Greedy by default; sampling is seeded, so a run repeats.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from slscale.errors import ConfigError, DataError

if TYPE_CHECKING:
    from slscale.models.data.manifest import EvalItem
    from slscale.models.vocab import SpeechTextVocab

SPEECH, TEXT = "speech", "text"  # the modality names of slscale.models.data.manifest


def add_commands(sub: Any) -> None:
    """Register ``generate`` on the top-level sub-parsers."""
    p = sub.add_parser("generate", help="continue a text or speech prompt in speech or text")
    p.add_argument("model", type=Path, help="model folder (a run's runs/<id>/model)")
    prompt = p.add_mutually_exclusive_group(required=True)
    prompt.add_argument("--prompt-text", help="text prompt (models with a text vocabulary)")
    prompt.add_argument(
        "--prompt-units",
        type=Path,
        help="SlamKit-style units JSONL: the 'units' list of its first line is the prompt "
        "(or its 'audio_repr', '<Un3><Un49>…'); repeated units are collapsed, as in training",
    )
    p.add_argument("--to", required=True, choices=(SPEECH, TEXT), help="continuation modality")
    p.add_argument(
        "--max-tokens",
        type=int,
        default=50,
        help="tokens to generate; text stops earlier at the end of a text (default 50)",
    )
    p.add_argument("--temperature", type=float, default=0.0, help="0: greedy (default); >0: sample")
    p.add_argument("--top-k", type=int, help="sample among the k likeliest tokens only")
    p.add_argument("--seed", type=int, default=0, help="seed of the sampling (default 0)")
    p.add_argument(
        "--out",
        type=Path,
        help="speech: write the JSON line here instead of stdout; text: write it here too",
    )
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.set_defaults(func=_generate)


def _generate(args: argparse.Namespace) -> int:
    from slscale.models.evaluate.generate import generate
    from slscale.models.evaluate.runner import load_checkpoint

    _check_settings(args)
    model, vocab = load_checkpoint(args.model, args.device)
    _check_vocab(args, vocab)
    prompt = _prompt(args, vocab)
    ids = generate(
        model,
        vocab,
        prompt,
        args.to,
        max_new_tokens=args.max_tokens,
        temperature=args.temperature,
        top_k=args.top_k,
        seed=args.seed,
    )
    _write(args, _render(ids, vocab, args.to))
    return 0


def _check_settings(args: argparse.Namespace) -> None:
    """The sampling options, checked before the model is loaded."""
    if args.max_tokens < 1:
        raise ConfigError(f"--max-tokens {args.max_tokens}: must be at least 1")
    if not (math.isfinite(args.temperature) and args.temperature >= 0):
        raise ConfigError(f"--temperature {args.temperature}: must be >= 0 (0: greedy)")
    if args.top_k is not None and args.top_k < 1:
        raise ConfigError(f"--top-k {args.top_k}: must be at least 1")
    if args.top_k is not None and args.temperature == 0:
        raise ConfigError("--top-k applies only when sampling: set --temperature above 0")


def _check_vocab(args: argparse.Namespace, vocab: SpeechTextVocab) -> None:
    """A units-only (textless) model can neither read nor write text."""
    if vocab.text_vocab_size:
        return
    if args.to == TEXT:
        raise ConfigError(
            f"{args.model}: the model has no text vocabulary (units only), so it cannot "
            "continue in text; use --to speech"
        )
    if args.prompt_text is not None:
        raise ConfigError(
            f"{args.model}: the model has no text vocabulary (units only), so it cannot read "
            "--prompt-text; prompt it with --prompt-units FILE.jsonl"
        )


def _prompt(args: argparse.Namespace, vocab: SpeechTextVocab) -> EvalItem:
    """The prompt as an :class:`~slscale.models.data.manifest.EvalItem`."""
    from slscale.models.data.manifest import EvalItem

    if args.prompt_units is not None:
        return _units_prompt(args.prompt_units, vocab.num_units)
    if not args.prompt_text.strip():
        raise ConfigError("--prompt-text is empty: give some words, or use --prompt-units")
    try:
        vocab.encode_text(args.prompt_text)
    except ValueError as exc:
        raise ConfigError(f"--prompt-text: {exc}") from None
    return EvalItem(modality=TEXT, text=args.prompt_text)


def _units_prompt(path: Path, num_units: int) -> EvalItem:
    """The first row of a speech file, read as the training data is read by default
    (:mod:`~slscale.models.data.readers`: consecutive duplicate units collapsed)."""
    from slscale.models.data.manifest import EvalItem
    from slscale.models.data.readers import SpeechReadOptions, parse_speech_row
    from slscale.models.data.records import iter_rows

    if not path.exists():
        raise ConfigError(f"--prompt-units {path}: no such file")
    first = next(iter_rows(path), None)
    if first is None:
        raise DataError(f"{path}: no prompt in it; its first line must hold a 'units' list")
    row, where = first
    doc = parse_speech_row(row, where, SpeechReadOptions(num_units=num_units))
    if doc is None:
        raise DataError(f"{where}: the prompt has no units; give at least one")
    return EvalItem(modality=SPEECH, units=doc.units, speaker=doc.speaker)


def _render(ids: list[int], vocab: SpeechTextVocab, modality: str) -> str:
    """Speech: a SlamKit-style JSON line of unit ids (0..num_units-1); text: the text."""
    if modality == SPEECH:
        units = [int(u) for u in vocab.decode_units(np.asarray(ids))]
        return json.dumps({"units": units}, separators=(",", ":"))
    eos = getattr(vocab.tokenizer, "eos_token_id", None)
    return str(vocab.decode_text(ids[:-1] if ids and ids[-1] == eos else ids))


def _write(args: argparse.Namespace, result: str) -> None:
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(result + "\n", encoding="utf-8")
        print(f"wrote the {args.to} continuation to {args.out}", file=sys.stderr)
    if args.out is None or args.to == TEXT:
        print(result)
