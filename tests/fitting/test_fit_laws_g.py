"""G = (αA/(βB))^(1/(α+β)) stays real: NaN where the law has no compute-optimal allocation."""

import math

import numpy as np

from slscale.fitting import laws


def test_g_matches_the_formula():
    g = laws.allocation_g(A=406.4, B=410.7, alpha=0.34, beta=0.28)
    assert math.isclose(g, (0.34 * 406.4 / (0.28 * 410.7)) ** (1 / 0.62), rel_tol=1e-12)


def test_negative_exponent_gives_nan_not_complex():
    g = laws.allocation_g(A=10.0, B=20.0, alpha=-0.05, beta=0.33)
    assert isinstance(g, float) and math.isnan(g)
    draws = laws.allocation_g(
        A=np.array([10.0, 10.0]), B=20.0, alpha=np.array([0.3, -0.13]), beta=0.3
    )
    assert draws.dtype == np.float64 and np.isfinite(draws[0]) and np.isnan(draws[1])
