"""Compute facts every stage shares: training FLOPs C = 6·N·D, and the peak FLOP/s of GPUs.

C = 6·N·D (Kaplan et al. 2020 Eq. 2.1; Hoffmann et al. 2022): each parameter costs 2 FLOPs
per token forward (a multiply-add) and 4 backward. SIMS uses N with embeddings and D = all
training tokens: 6 × 7.6e9 × 15e9 ≈ 6.86e20 for SIMS-7B. The store's ``flops_6nd`` is C with
N = all parameters. The exact per-token count, attention included, is the accounting's and
the trainer's (``slscale.sweep.accounting``, ``slscale.models.train.flops``).

GPU peaks are dense (no sparsity) bf16 tensor-core rates from NVIDIA's data sheets: what the
resource plan divides FLOPs by and what the trainer's MFU is measured against.
"""

from __future__ import annotations

import dataclasses
from typing import Any, overload

import numpy as np
from numpy.typing import NDArray

FLOPS_PER_PARAM_TOKEN = 6.0
"""Training FLOPs per parameter per token: 2 forward + 4 backward (the 6 of 6·N·D)."""


@overload
def flops_6nd(n_params: float, tokens: float) -> float: ...
@overload
def flops_6nd(n_params: NDArray[Any] | float, tokens: NDArray[Any]) -> NDArray[np.float64]: ...
@overload
def flops_6nd(n_params: NDArray[Any], tokens: NDArray[Any] | float) -> NDArray[np.float64]: ...
def flops_6nd(n_params: Any, tokens: Any) -> Any:
    """C = 6·N·D of ``n_params`` parameters trained on ``tokens`` tokens (numbers, numpy
    arrays or pandas columns, element-wise)."""
    return FLOPS_PER_PARAM_TOKEN * n_params * tokens


@overload
def tokens_6nd(flops: float, n_params: float) -> float: ...
@overload
def tokens_6nd(flops: NDArray[Any] | float, n_params: NDArray[Any]) -> NDArray[np.float64]: ...
@overload
def tokens_6nd(flops: NDArray[Any], n_params: NDArray[Any] | float) -> NDArray[np.float64]: ...
def tokens_6nd(flops: Any, n_params: Any) -> Any:
    """D = C/(6·N): the tokens that ``flops`` buy a model of ``n_params`` parameters."""
    return flops / (FLOPS_PER_PARAM_TOKEN * n_params)


@dataclasses.dataclass(frozen=True, kw_only=True)
class GPUPeak:
    """The dense bf16 peak of one GPU model."""

    device: str
    """What the CUDA device name contains for this GPU (``torch.cuda.get_device_name``)."""
    bf16_flops: float
    """Dense (no sparsity) bf16 tensor-core peak, FLOP/s."""
    source: str
    """Where the figure comes from."""


_HOPPER = "NVIDIA H100 SXM5 (Hopper whitepaper): BF16 989.4 TFLOPS dense (1,979 with sparsity)"

GPU_PEAKS: tuple[GPUPeak, ...] = (
    GPUPeak(
        device="H200",
        bf16_flops=989.4e12,
        source=f"{_HOPPER}; the H200 has the H100 SXM5's compute and more memory",
    ),
    GPUPeak(
        device="H100 PCIe",
        bf16_flops=756e12,
        source="NVIDIA H100 PCIe datasheet: BF16 756 TFLOPS dense (1,513 with sparsity)",
    ),
    GPUPeak(
        device="H100 NVL",
        bf16_flops=835e12,
        source="NVIDIA H100 NVL datasheet: BF16 835 TFLOPS dense (1,671 with sparsity)",
    ),
    GPUPeak(device="H100", bf16_flops=989.4e12, source=_HOPPER),
    GPUPeak(
        device="A100",
        bf16_flops=312e12,
        source="NVIDIA A100 datasheet: BF16 Tensor Core 312 TFLOPS dense (624 with sparsity)",
    ),
    GPUPeak(
        device="L40S",
        bf16_flops=362e12,
        source="NVIDIA L40S datasheet: BF16 Tensor Core 362 TFLOPS dense (733 with sparsity)",
    ),
)
"""Known GPUs, variants before the models whose name they contain (``H100 PCIe`` before
``H100``): :func:`gpu_peak` takes the first match."""


def gpu_peak(device_name: str) -> GPUPeak | None:
    """The entry of :data:`GPU_PEAKS` whose ``device`` ``device_name`` contains (first match;
    case-insensitive), e.g. ``"NVIDIA H100 80GB HBM3"`` → H100; None for an unknown GPU."""
    name = device_name.lower()
    return next((peak for peak in GPU_PEAKS if peak.device.lower() in name), None)
