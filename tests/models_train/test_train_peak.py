"""The peak FLOP/s a run's MFU is measured against: the shared data-sheet figure on a known GPU,
a measured matmul rate on CPU."""

from __future__ import annotations

import pytest
import torch

from slscale.compute import gpu_peak
from slscale.models.train.flops import peak_flops


def test_cpu_peak_is_measured() -> None:
    peak, source = peak_flops(torch.device("cpu"), "fp32")
    assert peak > 0 and source == "measured torch.float32 matmul, 1 threads"


@pytest.mark.gpu
def test_gpu_peak_is_the_shared_data_sheet_figure() -> None:
    device = torch.device("cuda", 0)
    name = torch.cuda.get_device_name(device)
    datasheet = gpu_peak(name)
    assert datasheet is not None, f"no data-sheet peak for {name!r} in slscale.compute"
    assert peak_flops(device, "bf16") == (datasheet.bf16_flops, f"data sheet: {name} dense bf16")
