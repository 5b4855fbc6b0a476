"""Parameter counts, FLOPs per token, device peak throughput and model FLOPs utilisation.

* ``N`` is counted on the instantiated module (tied weights once). Non-embedding parameters
  exclude the input embedding and an untied output head (Kaplan et al. 2020, Sec. 2.1).
* The exact training FLOPs per token are counted, not estimated: one forward and backward pass
  of a ``context_length`` sequence through a copy of the model on the meta device (no memory,
  no arithmetic) under ``torch.utils.flop_counter.FlopCounterMode``, divided by the sequence
  length. It counts every matmul, the LM head and attention scores at full ``T × T`` (the
  convention of Chinchilla, Hoffmann et al. 2022, App. F), and agrees with 6N to within the
  attention term and the norms.
* MFU = achieved FLOPs/s ÷ peak (PaLM, Chowdhery et al. 2022, App. B). On CPU the peak is a
  measured dense matmul rate with this process's threads; on GPU the vendor's dense bf16 peak
  (``slscale.compute.GPU_PEAKS``).
"""

from __future__ import annotations

import functools
import logging
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from slscale.compute import gpu_peak

log = logging.getLogger(__name__)


def param_counts(model: torch.nn.Module) -> tuple[int, int]:
    """(N_total, N_non_embedding) of ``model``; shared tensors are counted once."""
    unique = {id(p): p.numel() for p in model.parameters()}
    total = sum(unique.values())
    embedding_ids: set[int] = set()
    get_in = getattr(model, "get_input_embeddings", None)
    get_out = getattr(model, "get_output_embeddings", None)
    for module in (get_in() if get_in else None, get_out() if get_out else None):
        if module is not None:
            embedding_ids.update(id(p) for p in module.parameters())
    return total, total - sum(unique[i] for i in embedding_ids if i in unique)


def count_flops_per_token(model: torch.nn.Module, context_length: int) -> float:
    """Training FLOPs per token (forward + backward) of a ``context_length`` sequence, counted
    on a meta-device copy of a transformers model."""
    config = getattr(model, "config", None)
    if config is None:
        raise TypeError("count_flops_per_token needs a transformers model (with .config)")
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        ghost = AutoModelForCausalLM.from_config(config)
    ids = torch.zeros((1, context_length), dtype=torch.long, device="meta")
    with FlopCounterMode(display=False) as counter:
        logits = ghost(input_ids=ids).logits
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1).float(), ids.flatten())
        loss.backward()
    return counter.get_total_flops() / context_length


def measured_matmul_flops(threads: int, dtype: torch.dtype = torch.float32) -> float:
    """Best dense matmul rate (FLOP/s) of this CPU with ``threads`` threads (measured once per
    process and thread count)."""
    return _best_matmul_rate(threads, dtype)


@functools.lru_cache(maxsize=8)
def _best_matmul_rate(
    threads: int, dtype: torch.dtype, size: int = 512, seconds: float = 0.5
) -> float:
    # Many short 512³ products (a few ms each), keeping the fastest: on a shared machine a
    # longer product is almost always preempted part-way, which would understate the peak
    # (1024³ products read 40-60% low under load; 256-512 agree within 5%).
    del threads  # part of the cache key: the rate depends on torch's thread count
    a = torch.randn(size, size, dtype=dtype)
    b = torch.randn(size, size, dtype=dtype)
    torch.mm(a, b)
    best = 0.0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        torch.mm(a, b)
        best = max(best, 2 * size**3 / (time.perf_counter() - start))
    return best


def peak_flops(device: torch.device, precision: str) -> tuple[float, str]:
    """(peak FLOP/s of one device, where the figure comes from)."""
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        datasheet = gpu_peak(name)
        if datasheet is not None:
            return datasheet.bf16_flops, f"data sheet: {name} dense bf16"
        log.warning("no data-sheet peak for GPU %r; using a measured matmul rate", name)
        return _measured_gpu_flops(device, dtype), f"measured matmul on {name}"
    threads = torch.get_num_threads()
    return measured_matmul_flops(threads, dtype), f"measured {dtype} matmul, {threads} threads"


def _measured_gpu_flops(device: torch.device, dtype: torch.dtype, size: int = 8192) -> float:
    a = torch.randn(size, size, dtype=dtype, device=device)
    b = torch.randn(size, size, dtype=dtype, device=device)
    torch.mm(a, b)
    torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(10):
        torch.mm(a, b)
    torch.cuda.synchronize(device)
    return 10 * 2 * size**3 / (time.perf_counter() - start)


def mfu(
    tokens_per_second: float, flops_per_token: float, peak_per_device: float, num_devices: int
) -> float:
    """Model FLOPs utilisation: achieved FLOPs/s over the peak of all devices."""
    return tokens_per_second * flops_per_token / (peak_per_device * num_devices)
