"""Trainer overhead, CPU model FLOPs utilisation, and evaluation throughput.

1. Trainer vs bare PyTorch: tokens/s of ``train_worker`` (DeepSpeed ZeRO-0 and ZeRO-2, fp32,
   store writes every 10 steps) against a bare loop over the same model, batches and recipe
   (forward, token-mean NLL, backward, grad-norm clip, AdamW step), measured in the same run.
   Both time every step of the run, so the first, slower steps count for both.
2. CPU MFU of the trainer for ~1M, ~10M and ~30M non-embedding parameters (context 256, batch
   8): counted training FLOPs per token × tokens/s ÷ a dense fp32 matmul rate measured with the
   same threads.
3. Evaluation: pairs/s of :func:`~slscale.models.evaluate.evaluate_suite` (length-sorted
   batches, both candidates and both conventions from one set of forward passes) against a
   loop that scores one candidate sequence at a time, on a generated world's sSC manifest.

``python -m benchmarks.bench_train [--quick] [--threads N]`` (default one thread: the machine's
cores are shared, and a single-threaded process is what a worker next to others gets).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from slscale.compute import flops_6nd
from slscale.models.train import TrainConfig, TrainJob, train_worker
from slscale.models.train.distributed import init_distributed
from slscale.models.train.flops import measured_matmul_flops
from slscale.models.train.loop import labelled_tokens, next_token_nll
from slscale.models.train.report import read_result
from slscale.models.train.token_source import MarkovSourceConfig
from slscale.models.train.toy import MarkovData, ToyModel
from slscale.spec import Recipe

VOCAB = 512
SIZES = {  # name: (layers, width, steps, quick steps)
    "~1M": (4, 128, 30, 10),
    "~10M": (12, 256, 10, 4),
    "~30M": (10, 512, 5, 3),
}
RECIPE = Recipe(global_batch_size=8, context_length=256, lr=1e-3, lr_min=1e-4)


def toy(layers: int, width: int) -> ToyModel:
    return ToyModel(
        family="llama",
        num_layers=layers,
        hidden_size=width,
        num_heads=width // 32,
        num_kv_heads=width // 64,
        intermediate_size=int(width * 8 / 3) // 16 * 16,
        vocab_size=VOCAB,
        max_positions=RECIPE.context_length,
    )


DATA = MarkovData(config=MarkovSourceConfig(vocab_size=VOCAB, max_document_tokens=300))


def bare_tokens_per_second(model_factory: ToyModel, steps: int) -> float:
    """A plain loop: the same model, seed, batches, loss, clipping and AdamW as the trainer."""
    torch.manual_seed(0)
    model = model_factory()
    decay = [p for p in model.parameters() if p.ndim >= 2]
    rest = [p for p in model.parameters() if p.ndim < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay}, {"params": rest, "weight_decay": 0.0}], lr=RECIPE.lr, betas=(0.9, 0.95)
    )
    source = DATA(0, 1)
    start = time.perf_counter()
    for _ in range(steps):
        batch = source.next_batch(RECIPE.global_batch_size, RECIPE.context_length)
        logits = model(input_ids=batch.input_ids, position_ids=batch.position_ids).logits
        loss = next_token_nll(logits, batch.labels) / labelled_tokens(batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), RECIPE.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        float(loss.detach())
    return steps * RECIPE.tokens_per_step / (time.perf_counter() - start)


def trainer_run(model_factory: ToyModel, steps: int, stage: int, workdir: Path) -> dict[str, Any]:
    config = TrainConfig(
        run_id=f"bench-z{stage}-{os.urandom(3).hex()}",
        workdir=str(workdir),
        tokens=steps * RECIPE.tokens_per_step,
        recipe=RECIPE,
        zero_stage=stage,
        log_every_steps=10,
        store=str(workdir),
        export_model=False,
    )
    job = TrainJob(config=config, model_factory=model_factory, train_data=DATA)
    result = train_worker(job)
    return read_result(result.run_dir)


def overhead_rows(
    workdir: Path, quick: bool, reps: int
) -> tuple[list[str], dict[str, dict[str, Any]]]:
    """Rows of the overhead table, and a ZeRO-0 record per size (reused for MFU).

    Bare loop and trainer alternate ``reps`` times (ABAB…), so that load from other processes
    on a shared machine hits both alike; the ratio is the median of the adjacent pairs."""
    rows, records = [], {}
    for name in ("~1M", "~10M"):
        layers, width, steps, quick_steps = SIZES[name]
        steps = quick_steps if quick else steps
        factory = toy(layers, width)
        for stage in (0, 2):
            bare, ours, startup = [], [], []
            for _ in range(reps):
                bare.append(bare_tokens_per_second(factory, steps))
                record = trainer_run(factory, steps, stage, workdir)
                records.setdefault(name, record)
                ours.append(record["tokens_per_second"])
                startup.append(record["wall_seconds_this_attempt"] - record["seconds"])
            ratios = sorted(o / b for o, b in zip(ours, bare, strict=True))
            rows.append(
                f"| {name} ({records[name]['n_params_non_embedding'] / 1e6:.2f}M), ZeRO-{stage}, "
                f"{steps} steps × {reps} | {statistics.median(ours):,.0f} | "
                f"{statistics.median(bare):,.0f} | {statistics.median(ratios):.2f} "
                f"({ratios[0]:.2f}–{ratios[-1]:.2f}) | ≥ 0.9 | {statistics.median(startup):.1f} |"
            )
    return rows, records


def mfu_rows(workdir: Path, quick: bool, records: dict[str, dict[str, Any]]) -> list[str]:
    peak = measured_matmul_flops(torch.get_num_threads())
    rows = []
    for name, (layers, width, steps, quick_steps) in SIZES.items():
        if name not in records:
            records[name] = trainer_run(
                toy(layers, width), quick_steps if quick else steps, 0, workdir
            )
        record = records[name]
        six_n = flops_6nd(record["n_params"], 1)  # 6N FLOPs per token
        rows.append(
            f"| {name} | {record['n_params_non_embedding'] / 1e6:.2f}M | "
            f"{record['tokens_per_second']:,.0f} | {record['flops_per_token_exact'] / six_n:.2f} | "
            f"{record['mfu']:.2f} | {record['tokens_per_second'] * six_n / peak:.2f} |"
        )
    return [
        f"peak: {peak / 1e9:.0f} GFLOP/s (fp32 matmul, {torch.get_num_threads()} threads)",
        "",
        *_mfu_header(),
        *rows,
    ]


def _mfu_header() -> list[str]:
    return [
        "| size | N non-embedding | tokens/s | counted FLOPs ÷ 6N | MFU (counted) | MFU (6N) |",
        "|---|---|---|---|---|---|",
    ]


def eval_rows(workdir: Path, quick: bool) -> list[str]:
    from slscale.models.build import build_model
    from slscale.models.data.manifest import read_manifest
    from slscale.models.evaluate import (
        CUERVO_MARXER,
        SLAMKIT,
        LikelihoodScorer,
        find_manifests,
        score_pairs,
    )
    from slscale.models.world.generate import WorldConfig, generate_world
    from slscale.spec import Modality, RunSpec

    world = workdir / "world"
    generate_world(world, WorldConfig(words=20_000, eval_pairs=120 if quick else 400))
    spec = RunSpec(family="llama", modality=Modality.INTERLEAVED, tokens=1, size="1M")
    model, vocab = build_model(spec, tokenizer=world / "tokenizer")
    model.eval()
    rows = []
    for benchmark in ("sSC", "sWUGGY"):
        (ref,) = find_manifests(world / "eval", [benchmark], ["S"])
        items = list(read_manifest(ref.path))
        batched, single = [], []
        for start in range(0, len(items), 100):  # alternate on chunks: load hits both alike
            chunk = items[start : start + 100]
            began = time.perf_counter()
            scorer = LikelihoodScorer(model, pad_id=vocab.pad_token_id)
            score_pairs(scorer, vocab, chunk, [SLAMKIT, CUERVO_MARXER])
            batched.append(len(chunk) / (time.perf_counter() - began))
            single.append(one_at_a_time(model, vocab, chunk))
        ratios = sorted(b / s for b, s in zip(batched, single, strict=True))
        tokens = statistics.mean(len(c.ids) for i in items for c in _encode(i, vocab))
        rows.append(
            f"| {benchmark} (S), {len(items)} pairs, {tokens:.0f} tokens per candidate | "
            f"{statistics.median(batched):,.0f} | {statistics.median(single):,.0f} | "
            f"{statistics.median(ratios):.1f}× ({ratios[0]:.1f}–{ratios[-1]:.1f}) | ≥ 5× |"
        )
    return rows


def _encode(item: Any, vocab: Any) -> Any:
    from slscale.models.evaluate.encoding import encode_pair

    return encode_pair(item, vocab)


def one_at_a_time(model: Any, vocab: Any, items: list[Any]) -> float:
    """Pairs/s of the plain loop: each candidate in its own forward pass, mean NLL."""
    began = time.perf_counter()
    with torch.no_grad():
        for item in items:
            for cand in _encode(item, vocab):
                ids = torch.tensor([cand.ids])
                logits = model(input_ids=ids).logits[0, :-1].float()
                float(logits.log_softmax(-1).gather(-1, ids[0, 1:, None]).mean())
    return len(items) / (time.perf_counter() - began)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_train")
    parser.add_argument("--quick", action="store_true", help="fewer steps and pairs")
    parser.add_argument("--reps", type=int, default=3, help="bare/trainer alternations")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (default 1: the figures of a worker sharing cores)",
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("DS_ACCELERATOR", "cpu")
    torch.set_num_threads(args.threads)
    init_distributed("cpu")
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}\n"
    )
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        print("### Trainer vs a bare PyTorch loop (same model, batches, recipe)\n")
        print(
            "| model | trainer tokens/s | bare tokens/s | ratio (range) | goal | "
            "trainer start-up (s) |"
        )
        print("|---|---|---|---|---|---|")
        rows, records = overhead_rows(workdir, args.quick, args.reps)
        print("\n".join(rows))
        print("\n### CPU MFU (trainer, ZeRO-0, fp32, context 256, batch 8)\n")
        print("\n".join(mfu_rows(workdir, args.quick, records)))
        print(
            "\n### Evaluation throughput (pairs/s; batched: two conventions, 1.1M-parameter "
            "Llama)\n"
        )
        print("| set | batched | one sequence at a time | ratio | goal |\n|---|---|---|---|---|")
        print("\n".join(eval_rows(workdir, args.quick)))
    print(f"\nload average at the end {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
