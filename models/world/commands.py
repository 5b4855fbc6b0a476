"""``slscale world …``: generate the offline miniature world and pretrain its TextLM.

slscale world generate --out DIR [--words N] [--seed S]
slscale world pretrain-textlm --world DIR --family llama|qwen2 --size mini-100k --out DIR
slscale world baselines --world DIR
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from slscale.models.families import FAMILIES, LLAMA


def add_commands(sub: Any) -> None:
    """Register the ``world`` command group on the top-level sub-parsers."""
    world = sub.add_parser("world", help="the offline miniature speech-text world")
    commands = world.add_subparsers(dest="world_command", required=True, metavar="COMMAND")
    _add_generate(commands)
    _add_pretrain(commands)
    _add_baselines(commands)


def _add_generate(commands: Any) -> None:
    p = commands.add_parser("generate", help="write text, speech and evaluation sets")
    p.add_argument("--out", type=Path, required=True, help="folder to write the world to")
    p.add_argument("--words", type=_count, default=1_000_000, help="words of the text corpus")
    p.add_argument(
        "--speech-words",
        type=_count,
        default=None,
        help="words of real (multi-speaker) speech (default: --words)",
    )
    p.add_argument(
        "--synthetic-words",
        type=_count,
        default=None,
        help="words of synthetic single-voice speech (default: half of --words)",
    )
    p.add_argument("--eval-pairs", type=_count, default=1000, help="pairs per evaluation set")
    p.add_argument(
        "--speaker-spread",
        type=float,
        default=None,
        help="probability that a voice's unit of a phone is not the typical one (0-1)",
    )
    p.add_argument("--topics", type=int, default=10, help="topics the stories use (2-10)")
    p.add_argument("--objects-per-topic", type=int, default=6, help="objects per topic (2-6)")
    p.add_argument("--names", type=int, default=16, help="characters the stories use (1-16)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_generate)


def _add_pretrain(commands: Any) -> None:
    p = commands.add_parser("pretrain-textlm", help="train a tiny TextLM on the world's text")
    p.add_argument("--world", type=Path, required=True, help="a folder from 'world generate'")
    p.add_argument("--family", choices=tuple(FAMILIES), default=LLAMA.name)
    p.add_argument(
        "--size",
        default="mini-100k",
        help="a preset (mini-25k … mini-400k) or a non-embedding size like '200k'",
    )
    p.add_argument("--out", type=Path, required=True, help="checkpoint folder to write")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--context-length", type=int, default=128)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.set_defaults(func=_pretrain)


def _add_baselines(commands: Any) -> None:
    p = commands.add_parser("baselines", help="count-based accuracies on the text eval sets")
    p.add_argument("--world", type=Path, required=True)
    p.set_defaults(func=_baselines)


def _count(value: str) -> int:
    """Whole numbers, also written as 5e6."""
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None
    if number != int(number) or number < 0:
        raise argparse.ArgumentTypeError(f"{value!r} must be a whole number >= 0")
    return int(number)


def _generate(args: argparse.Namespace) -> int:
    from slscale.models.world.generate import WorldConfig, generate_world

    config = WorldConfig(
        seed=args.seed,
        words=args.words,
        speech_words=args.speech_words,
        synthetic_words=args.synthetic_words,
        eval_pairs=args.eval_pairs,
        topics=args.topics,
        objects_per_topic=args.objects_per_topic,
        names=args.names,
        **({} if args.speaker_spread is None else {"speaker_spread": args.speaker_spread}),
    )
    record = generate_world(args.out, config)
    for source, counts in record["counts"].items():
        print(f"{source:18s} " + "  ".join(f"{k} {v:,}" for k, v in counts.items()))
    print(
        f"{len(record['eval_sets'])} evaluation sets in {args.out / 'eval'}; {record['seconds']} s"
    )
    return 0


def _pretrain(args: argparse.Namespace) -> int:
    import torch

    from slscale.errors import ConfigError
    from slscale.models import families
    from slscale.models.world.pretrain import PretrainSettings, pretrain_textlm

    if not (args.world / "tokenizer").is_dir():
        raise ConfigError(
            f"--world {args.world}: no tokenizer/ folder; run 'slscale world generate' first"
        )
    if args.threads:
        torch.set_num_threads(args.threads)
    from transformers import AutoTokenizer

    vocab_size = len(AutoTokenizer.from_pretrained(str(args.world / "tokenizer")))
    arch = families.resolve_architecture(args.family, args.size, vocab_size=vocab_size)
    config = families.hf_config(
        args.family,
        arch,
        vocab_size=vocab_size,
        max_position_embeddings=max(args.context_length, 256),
    )
    settings = PretrainSettings(
        steps=args.steps,
        batch_size=args.batch_size,
        context_length=args.context_length,
        lr=args.lr,
        lr_min=args.lr / 10,
        seed=args.seed,
    )
    record = pretrain_textlm(args.world, config, args.out, settings)
    print(
        f"saved {args.out}: {record['parameters']:,} parameters, train loss "
        f"{record['train_loss']:.3f}, valid loss {record['valid_loss']:.3f}, "
        f"{record['seconds']} s"
    )
    return 0


def _baselines(args: argparse.Namespace) -> int:
    from slscale.models.world.check import baseline_report

    print(json.dumps(baseline_report(args.world), indent=2))
    return 0
