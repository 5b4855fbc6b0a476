"""``slscale data …``: bring existing evaluation sets and corpora into slscale's formats.

slscale data import-storycloze FOLDER --out sSC.jsonl --units units.jsonl
slscale data import-zerospeech gold.csv --out sblimp.jsonl --units units.jsonl
slscale data check-manifest FILE
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

MODALITIES = ("speech", "text")


def add_commands(sub: Any) -> None:
    """Register the ``data`` command group on the top-level sub-parsers."""
    data = sub.add_parser("data", help="import evaluation sets, check data files")
    commands = data.add_subparsers(dest="data_command", required=True, metavar="COMMAND")
    p = commands.add_parser("import-storycloze", help="a SlamKit-style StoryCloze folder")
    p.add_argument("folder", type=Path)
    p.add_argument("--prompt-modality", choices=MODALITIES, default="speech")
    p.add_argument("--continuation-modality", choices=MODALITIES, default="speech")
    p.add_argument("--task", default="storycloze", help="task name written in the manifest")
    _common(p)
    p.set_defaults(func=_import_storycloze)
    p = commands.add_parser("import-zerospeech", help="a ZeroSpeech 2021 gold.csv")
    p.add_argument("gold", type=Path)
    p.add_argument("--modality", choices=MODALITIES, default="speech")
    p.add_argument("--task", default=None, help="default: swuggy (lexical) or sblimp")
    _common(p)
    p.set_defaults(func=_import_zerospeech)
    p = commands.add_parser("check-manifest", help="validate a pair manifest")
    p.add_argument("manifest", type=Path)
    p.set_defaults(func=_check_manifest)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, required=True, help="manifest (JSONL) to write")
    p.add_argument(
        "--units",
        type=Path,
        default=None,
        help="units JSONL of the audio files (needed for speech items)",
    )
    p.add_argument(
        "--no-dedup",
        action="store_true",
        help="keep consecutive duplicate units (default: collapse them)",
    )


def _units(args: argparse.Namespace) -> Any:
    from slscale.models.data.importers import UnitIndex
    from slscale.models.data.readers import SpeechReadOptions

    if args.units is None:
        return None
    return UnitIndex(args.units, SpeechReadOptions(dedup=not args.no_dedup))


def _import_storycloze(args: argparse.Namespace) -> int:
    from slscale.models.data.importers import import_storycloze
    from slscale.models.data.manifest import write_manifest

    pairs = import_storycloze(
        args.folder,
        prompt_modality=args.prompt_modality,
        continuation_modality=args.continuation_modality,
        units=_units(args),
        task=args.task,
    )
    print(f"wrote {write_manifest(pairs, args.out)} pairs to {args.out}")
    return 0


def _import_zerospeech(args: argparse.Namespace) -> int:
    from slscale.models.data.importers import import_zerospeech
    from slscale.models.data.manifest import write_manifest

    pairs = import_zerospeech(args.gold, modality=args.modality, units=_units(args), task=args.task)
    print(f"wrote {write_manifest(pairs, args.out)} pairs to {args.out}")
    return 0


def _check_manifest(args: argparse.Namespace) -> int:
    from slscale.models.data.manifest import read_manifest

    pairs = list(read_manifest(args.manifest))
    tasks = sorted({p.task for p in pairs})
    print(f"{args.manifest}: {len(pairs)} valid pairs; tasks: {', '.join(tasks) or '-'}")
    return 0
