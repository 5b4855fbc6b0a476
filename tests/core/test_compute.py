"""Shared compute facts: C = 6·N·D both ways, and GPU peaks by CUDA device name."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from slscale.compute import GPU_PEAKS, flops_6nd, gpu_peak, tokens_6nd


def test_sims_7b_compute_by_6nd() -> None:
    # 6 × 7.6e9 parameters × 15e9 tokens (SIMS-7B, arXiv 2504.02398)
    assert flops_6nd(7.6e9, 15e9) == pytest.approx(6.84e20, rel=1e-12)
    assert tokens_6nd(6.84e20, 7.6e9) == pytest.approx(15e9, rel=1e-12)
    assert flops_6nd(10, 3) == 180.0 and tokens_6nd(180, 10) == 3.0


def test_6nd_is_element_wise_on_arrays_and_columns() -> None:
    n, d = np.array([1e6, 2e6]), np.array([3e7, 5e7])
    assert flops_6nd(n, d).tolist() == [1.8e14, 6e14]
    assert tokens_6nd(np.array([1.8e14, 6e14]), n).tolist() == pytest.approx([3e7, 5e7])
    column = flops_6nd(pd.Series([1.0, 2.0]), pd.Series([10.0, 20.0]))
    assert isinstance(column, pd.Series) and column.tolist() == [60.0, 240.0]


@pytest.mark.parametrize(
    ("device_name", "peak"),
    [("NVIDIA H100 80GB HBM3", 989.4e12), ("NVIDIA H100 PCIe", 756e12),
     ("NVIDIA H100 NVL", 835e12), ("NVIDIA H200", 989.4e12),
     ("NVIDIA A100-SXM4-80GB", 312e12), ("NVIDIA A100-PCIE-40GB", 312e12),
     ("NVIDIA L40S", 362e12)],
)  # fmt: skip
def test_gpu_peaks_by_device_name(device_name: str, peak: float) -> None:
    found = gpu_peak(device_name)
    assert found is not None and found.bf16_flops == peak
    assert found.device in device_name and "dense" in found.source


def test_unknown_gpu_has_no_peak() -> None:
    assert gpu_peak("Tesla V100-SXM2-16GB") is None


def test_a_variant_precedes_the_model_whose_name_it_contains() -> None:
    # gpu_peak takes the first match: "H100 PCIe" must not be read as an SXM "H100".
    devices = [p.device for p in GPU_PEAKS]
    for i, device in enumerate(devices):
        assert not any(earlier in device for earlier in devices[:i]), device
