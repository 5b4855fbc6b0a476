"""Keep BLAS single-threaded while fitting.

The fits call BLAS on small matrices thousands of times (the batched Hessian sums, and scipy's
L-BFGS-B in the reference loop). Multi-threaded OpenBLAS wakes its threads for each call: on a
busy 2-core machine that made the reference loop 15–20× slower and the batched fit about 2×
slower than with one thread. :func:`single_threaded_blas` limits BLAS to one thread for the
duration of a fit when ``threadpoolctl`` is installed; without it, set
``OPENBLAS_NUM_THREADS=1`` (or ``OMP_NUM_THREADS=1``) before starting Python.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


@contextlib.contextmanager
def single_threaded_blas() -> Iterator[bool]:
    """Limit every loaded BLAS to one thread inside the block; yields whether it could."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield False
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield True
