"""``slscale train`` and ``slscale eval``: one run, and the likelihood evaluation of a model.

slscale train RUN.yaml --workdir DIR --data DATA [--store URL] [--workers N] [--zero-stage S] …
slscale eval CHECKPOINT --suite sSC,tSC [--variants S,S2T,T2S,T] [--manifest-dir DIR] …

``train`` exits 0 when the run consumed its budget, 1 when it diverged, and 75 (EX_TEMPFAIL)
when a signal stopped it after a checkpoint: running the same command again resumes it.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from slscale.errors import ConfigError
from slscale.trackers import add_tracker_arguments, settings_from_args

EXIT_FAILED = 1
EXIT_PREEMPTED = 75


def add_commands(sub: Any) -> None:
    """Register ``train`` and ``eval`` on the top-level sub-parsers."""
    _add_train(sub)
    _add_eval(sub)


def _add_train(sub: Any) -> None:
    p = sub.add_parser("train", help="train one run (a RunSpec YAML) to its token budget")
    p.add_argument("run", type=Path, help="RunSpec YAML file")
    p.add_argument("--workdir", type=Path, required=True, help="writes runs/<run_id>/ here")
    p.add_argument("--data", type=Path, required=True, help="data folder (text/, speech/, …)")
    p.add_argument("--store", help="store path or URL (default: $SLSCALE_STORE or workdir's)")
    p.add_argument("--tokenizer", type=Path, help="text tokenizer (default: <data>/tokenizer)")
    p.add_argument("--workers", type=int, default=1, help="data-parallel processes (default 1)")
    p.add_argument("--zero-stage", type=int, default=0, choices=(0, 1, 2, 3))
    p.add_argument("--micro-batch-size", type=int, help="sequences per forward pass per worker")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"))
    p.add_argument("--checkpoint-every", type=int, default=0, help="steps (0: on signals only)")
    p.add_argument("--keep-checkpoints", type=int, default=2)
    p.add_argument("--log-every", type=int, default=10, help="steps between logged metrics")
    p.add_argument("--eval-every", type=int, default=0, help="steps between validation losses")
    p.add_argument("--eval-batches", type=int, default=2, help="held-out batches per stream")
    p.add_argument("--max-loss", type=float, help="divergence threshold (default 2·ln V)")
    add_tracker_arguments(p)
    p.set_defaults(func=_train)


def _add_eval(sub: Any) -> None:
    p = sub.add_parser("eval", help="pair accuracy of a model by likelihood (sSC, tSC, …)")
    p.add_argument("checkpoint", type=Path, help="model folder (a run's runs/<id>/model)")
    p.add_argument(
        "--suite",
        default="sSC,tSC,sBLIMP,sWUGGY",
        help="benchmarks, comma-separated (MS-sSC for multi-speaker sets)",
    )
    p.add_argument("--variants", default="S", help="S,S2T,T2S,T (prompt→continuation)")
    p.add_argument(
        "--manifest-dir",
        type=Path,
        help="folder of pair manifests (default: <the run's data>/eval)",
    )
    p.add_argument(
        "--conventions",
        default="slamkit",
        help="';'-separated: slamkit, cuervo-marxer, or nll=…,span=…,softmax=…",
    )
    p.add_argument("--workdir", type=Path, help="study folder whose store receives the scores")
    p.add_argument("--store", help="store path or URL (default: $SLSCALE_STORE or workdir's)")
    p.add_argument("--run-id", help="run the scores belong to (default: the model's record)")
    p.add_argument("--step", type=int, help="step of the model (default: the model's record)")
    p.add_argument("--out", type=Path, help="also write the scores to this JSON file")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument(
        "--max-batch-tokens",
        type=int,
        help="tokens per scoring batch, padding included (default: 4096 CPU, 65536 GPU)",
    )
    add_tracker_arguments(p)
    p.set_defaults(func=_eval)


# ----------------------------------------------------------------------------- train


def read_run_yaml(path: Path) -> Any:
    """The RunSpec of a YAML file; errors name the file."""
    import yaml

    from slscale.models.build import with_init_architecture
    from slscale.spec import spec_from_dict

    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of RunSpec fields (family, tokens, …)")
    try:
        return spec_from_dict(with_init_architecture(data))
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def _train(args: argparse.Namespace) -> int:
    from slscale.models.train import run_local
    from slscale.models.train.spec_job import spec_job
    from slscale.spec import RunState
    from slscale.store import resolve_store_target

    trackers = settings_from_args(args)
    spec = read_run_yaml(args.run)
    job = spec_job(
        spec,
        workdir=args.workdir,
        data_dir=args.data,
        tokenizer=args.tokenizer,
        store=resolve_store_target(args.store, args.workdir),
        num_workers=args.workers,
        zero_stage=args.zero_stage,
        micro_batch_size=args.micro_batch_size,
        device=args.device,
        precision=args.precision,
        checkpoint_every_steps=args.checkpoint_every,
        keep_checkpoints=args.keep_checkpoints,
        log_every_steps=args.log_every,
        eval_every_steps=args.eval_every,
        eval_batches=args.eval_batches,
        max_loss=args.max_loss,
        trackers=trackers,
    )
    result = run_local(job)
    val = "n/a" if result.val_loss is None else f"{result.val_loss:.4f}"
    print(
        f"{result.run_id}: {result.state} after {result.steps} steps, {result.tokens:,} "
        f"tokens, loss {result.loss:.4f}, val_loss {val}; {result.run_dir / 'result.json'}"
    )
    if result.state == RunState.PREEMPTED:
        return EXIT_PREEMPTED
    return 0 if result.state == RunState.SUCCEEDED else EXIT_FAILED


# ----------------------------------------------------------------------------- eval


def _eval(args: argparse.Namespace) -> int:
    from slscale.models.evaluate import Convention, evaluate_suite, find_manifests
    from slscale.models.evaluate.runner import load_checkpoint
    from slscale.models.train.export import read_model_record

    trackers = settings_from_args(args)
    record = read_model_record(args.checkpoint)
    manifest_dir = args.manifest_dir or _default_manifests(args.checkpoint, record)
    refs = find_manifests(manifest_dir, _split(args.suite, ","), _split(args.variants, ","))
    conventions = [Convention.parse(c) for c in _split(args.conventions, ";")]
    model, vocab = load_checkpoint(args.checkpoint, args.device)
    scores = evaluate_suite(model, vocab, refs, conventions, max_batch_tokens=args.max_batch_tokens)
    for s in scores:
        print(
            f"{s.benchmark:10s} {s.variant:4s} {s.accuracy:.4f}  margin {s.margin:+.4f}  "
            f"n={s.n_items:<6d} {s.convention}"
        )
    if args.out:
        args.out.write_text(json.dumps([vars(s) for s in scores], indent=1))
    _store_scores(args, record, scores, trackers)
    return 0


def _store_scores(
    args: argparse.Namespace, record: dict[str, Any], scores: list[Any], trackers: Any
) -> None:
    """The scores to the store and to the run's tracker runs (``--wandb``/``--tensorboard``)."""
    from slscale.store import open_store, resolve_store_target
    from slscale.store.targets import ENV_VAR
    from slscale.trackers import Mirror, RunInfo

    stored = bool(args.store or args.workdir or os.environ.get(ENV_VAR))
    if not stored and trackers is None:
        return
    run_id, step = args.run_id or record.get("run_id"), args.step
    step = record.get("step") if step is None else step
    if run_id is None or step is None:
        raise ConfigError(
            f"{args.checkpoint}: no slscale_model.json names its run and step; pass --run-id "
            "and --step to store or mirror the scores"
        )
    rows = [s.to_eval_result(run_id, int(step)) for s in scores]
    if stored:
        with open_store(resolve_store_target(args.store, args.workdir)) as store:
            store.log_evals(rows)
        print(f"stored {len(scores)} scores for run {run_id} at step {step}")
    if trackers is not None:
        group = Path(args.workdir).name if args.workdir else None
        mirror = Mirror.open(trackers, RunInfo(run_id, {}, group, resume_step=int(step)))
        mirror.evals(rows)
        mirror.close()


def _default_manifests(checkpoint: Path, record: dict[str, Any]) -> Path:
    if "data_dir" in record:
        return Path(record["data_dir"]) / "eval"
    raise ConfigError(f"{checkpoint}: its record names no data folder; pass --manifest-dir DIR")


def _split(text: str, sep: str) -> list[str]:
    return [part.strip() for part in text.split(sep) if part.strip()]
