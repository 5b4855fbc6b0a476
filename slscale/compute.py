"""Compute facts every stage shares: training FLOPs C = 6·N·D.

C = 6·N·D (Kaplan et al. 2020 Eq. 2.1; Hoffmann et al. 2022): each parameter costs 2 FLOPs
per token forward (a multiply-add) and 4 backward. SIMS uses N with embeddings and D = all
training tokens: 6 × 7.6e9 × 15e9 ≈ 6.86e20 for SIMS-7B. The store's ``flops_6nd`` is C with
N = all parameters. The exact per-token count, attention included, is the accounting's and
the trainer's (``slscale.sweep.accounting``, ``slscale.models.train.flops``).
"""

from __future__ import annotations

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
