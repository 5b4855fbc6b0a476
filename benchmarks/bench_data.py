"""Data pipeline: packed-batch throughput against a tiny model's consumption; world generation.

1. Throughput of the interleaved run's training source (text 0.2 / interleaved 0.5 / speech
   0.3, a quarter of the speech synthetic; interleaving redrawn per epoch; 16 × 256 tokens per
   batch) on a generated world, against the baseline measured in the same run: the tokens per
   second a training step of a tiny Llama (mini-100k, extended vocabulary) consumes with plain
   PyTorch + AdamW on the same batch shape, single-threaded like a worker sharing the cores.
   The loader must be far faster than the step so it is never the bottleneck.
2. Generation time of a world with 5M text words (plus 5M words of real and 2.5M of synthetic
   speech and the 19 evaluation sets of 1,000 pairs), and the time of each part.

``python -m benchmarks.bench_data [--words N]`` (default 5,000,000).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

from slscale.models.build import build_model
from slscale.models.data.factory import RunData
from slscale.models.world.generate import WorldConfig, generate_world
from slscale.spec import DataMix, Modality, RunSpec

BATCH, CONTEXT = 16, 256
SPEC = RunSpec(
    family="llama",
    modality=Modality.INTERLEAVED,
    tokens=10**7,
    size="mini-100k",
    mix=DataMix(text_share=0.2, interleaved_share=0.5, speech_share=0.3, synthetic_share=0.25),
)


def loader_tokens_per_second(world: Path, batches: int = 400) -> tuple[float, float]:
    """(tokens/s of next_batch, seconds to read and tokenize the corpora)."""
    _, vocab = build_model(SPEC, tokenizer=world / "tokenizer")
    start = time.perf_counter()
    source = RunData(SPEC, vocab, world).train_source()
    source.next_batch(BATCH, CONTEXT)
    load = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(batches):
        source.next_batch(BATCH, CONTEXT)
    return batches * BATCH * CONTEXT / (time.perf_counter() - start), load


def model_tokens_per_second(world: Path, steps: int = 20) -> float:
    """Tokens/s of forward + backward + AdamW steps of mini-100k on real batches."""
    model, vocab = build_model(SPEC, tokenizer=world / "tokenizer")
    source = RunData(SPEC, vocab, world).train_source()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    batches = [source.next_batch(BATCH, CONTEXT) for _ in range(steps + 3)]
    for i, batch in enumerate(batches):
        if i == 3:  # after warm-up
            start = time.perf_counter()
        loss = model(
            input_ids=batch.input_ids, labels=batch.labels, position_ids=batch.position_ids
        ).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return steps * BATCH * CONTEXT / (time.perf_counter() - start)


def world_generation(words: int, out: Path) -> tuple[float, dict]:
    start = time.perf_counter()
    record = generate_world(out, WorldConfig(words=words))
    return time.perf_counter() - start, record


def _size_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1e6


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench_data")
    parser.add_argument("--words", type=int, default=5_000_000)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    torch.set_num_threads(1)
    work = Path(tempfile.mkdtemp(prefix="bench_data_"))
    try:
        small = work / "small"
        generate_world(small, WorldConfig(words=200_000, eval_pairs=100))
        loader, load_s = loader_tokens_per_second(small)
        model = model_tokens_per_second(small)
        seconds, record = world_generation(args.words, work / "big")
        _report(loader, load_s, model, seconds, record, _size_mb(work / "big"), args.words)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _report(
    loader: float,
    load_s: float,
    model: float,
    seconds: float,
    record: dict,
    size_mb: float,
    words: int,
) -> None:
    counts = record["counts"]
    total_words = sum(c.get("words", 0) for c in counts.values())
    print(f"machine: {os.cpu_count()} CPUs, torch threads 1; batch {BATCH} x {CONTEXT}\n")
    print("| measure | value | baseline (same run) | ratio |")
    print("|---|---|---|---|")
    print(
        f"| packed batches, interleaved mix (tokens/s) | {loader:,.0f} | "
        f"{model:,.0f} (mini-100k train step) | {loader / model:.0f}x |"
    )
    print(f"| corpus load + tokenize, 200k-word world (s) | {load_s:.2f} | | |")
    print(f"| world generation, {words:,} text words (s) | {seconds:.1f} | | |")
    print(f"| ... words written, all corpora | {total_words:,} | | |")
    print(f"| ... words per second | {total_words / seconds:,.0f} | | |")
    for part, c in counts.items():
        print(f"| ... {part} (s) | {c['seconds']:.1f} | | |")
    print(f"| ... size on disk (MB) | {size_mb:,.0f} | | |")
    print(f"| ... speech units written | {sum(c.get('units', 0) for c in counts.values()):,} | | |")


if __name__ == "__main__":
    main()
