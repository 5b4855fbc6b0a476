"""Comparing two arms (e.g. interleaved vs textless SLMs) through their fitted laws.

SIMS (Maimon et al. 2025) compare arms by the exponents of their metric laws, by the compute
each needs to reach a score, and by how each should split compute between model size and
data (interleaved SLMs: more into N). Every number here comes with a percentile interval
from the arms' bootstrap draws; the arms are fitted independently, so draw i of one arm is
paired with draw i of the other.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from slscale.errors import ConfigError
from slscale.fitting import laws
from slscale.fitting.results import (
    ALLOCATION,
    MARGIN,
    METRIC,
    PARAMETRIC,
    ArmComparison,
    Estimate,
    FitResult,
)

Params = Mapping[str, Any]


def compare_arms(
    first: FitResult,
    second: FitResult,
    *,
    target: float | None = None,
    flops: float | None = None,
) -> ArmComparison:
    """Compare two fits of the same law.

    ``target`` is the score (metric law) or loss (parametric law) both arms must reach;
    ``flops`` is the compute at which the N_opt/D_opt ratio is read (allocation and
    parametric laws).
    """
    if first.law != second.law:
        raise ConfigError(
            f"cannot compare a {first.law} with a {second.law}; fit both the same way"
        )
    if first.confidence != second.confidence:
        raise ConfigError(
            f"arms have confidence {first.confidence} and {second.confidence}; use one level"
        )
    pairs = _Pairs(first, second)
    name, exponent = _EXPONENTS[first.law]
    exponents = (pairs.estimate(exponent, 0), pairs.estimate(exponent, 1))
    notes = [f"exponent compared: {name}", "bootstrap draws paired by index (independent arms)"]
    reach = _reach(pairs, first.law, target) if target is not None else None
    labels = (first.label or "first", second.label or "second")
    return ArmComparison(
        labels=labels,
        law=first.law,
        exponent_name=name,
        exponents=exponents,
        exponent_ratio=pairs.ratio(exponent),
        target=target,
        flops_to_target=reach[0] if reach else None,
        compute_multiplier=reach[1] if reach else None,
        allocation=(
            _allocation(pairs, flops, labels) if first.law not in (METRIC, MARGIN) else None
        ),
        confidence=first.confidence,
        notes=(*notes, *pairs.notes()),
    )


def _gamma(p: Params) -> Any:
    """Exponent of L_opt(C) − E ∝ C^−γ along the compute-optimal frontier: αβ/(α+β)."""
    return p["alpha"] * p["beta"] / (p["alpha"] + p["beta"])


def _alloc_a(p: Params) -> Any:
    return p["a"] if "a" in p else laws.allocation_exponents(p["alpha"], p["beta"])[0]


_EXPONENTS: dict[str, tuple[str, Callable[[Params], Any]]] = {
    METRIC: ("b", lambda p: p["b"]),
    MARGIN: ("s", lambda p: p["s"]),
    PARAMETRIC: ("gamma", _gamma),
    ALLOCATION: ("a", _alloc_a),
}


class _Pairs:
    """Point estimates and paired bootstrap draws of both arms."""

    def __init__(self, first: FitResult, second: FitResult) -> None:
        self.params = (dict(first.params), dict(second.params))
        one, two = first.draws(), second.draws()
        self.confidence = first.confidence
        self.draws: tuple[dict[str, Any], dict[str, Any]] | None = None
        if one is not None and two is not None:
            m = min(len(next(iter(d.values()))) for d in (one, two))
            self.draws = ({k: v[:m] for k, v in one.items()}, {k: v[:m] for k, v in two.items()})

    def estimate(self, f: Callable[[Params], Any], arm: int) -> Estimate:
        return self._wrap(f(self.params[arm]), None if self.draws is None else f(self.draws[arm]))

    def ratio(self, f: Callable[[Params], Any]) -> Estimate:
        return self.combine(f, lambda x, y: x / y)

    def combine(self, f: Callable[[Params], Any], op: Callable[[Any, Any], Any]) -> Estimate:
        """``op`` of the two arms' ``f``; a ratio over a zero is ±inf or NaN, not an error (an
        arm whose exponent sits at its bound 0 has no finite ratio)."""
        with np.errstate(all="ignore"):
            value = op(np.float64(f(self.params[0])), np.float64(f(self.params[1])))
            if self.draws is None:
                return self._wrap(value, None)
            return self._wrap(value, op(f(self.draws[0]), f(self.draws[1])))

    def _wrap(self, value: Any, draws: Any) -> Estimate:
        if draws is None:
            return Estimate(value=float(value))
        v = np.asarray(draws, np.float64)
        v = v[~np.isnan(v)]
        tail = 50 * (1 - self.confidence)
        low, high = np.percentile(v, [tail, 100 - tail]) if v.size else (np.nan, np.nan)
        return Estimate(value=float(value), ci=(float(low), float(high)))

    def notes(self) -> list[str]:
        return [] if self.draws is not None else ["no bootstrap draws in one arm: no intervals"]


def _reach(pairs: _Pairs, law: str, target: float) -> tuple[tuple[Estimate, Estimate], Estimate]:
    if law == METRIC:

        def need(p: Params) -> Any:
            return laws.flops_for_metric(target, a=p["a"], b=p["b"])
    elif law == MARGIN:

        def need(p: Params) -> Any:
            return laws.flops_for_margin(target, m=p["m"], s=p["s"])
    elif law == PARAMETRIC:

        def need(p: Params) -> Any:
            return laws.flops_for_loss(
                target, **{k: p[k] for k in ("E", "A", "B", "alpha", "beta")}
            )
    else:
        raise ConfigError("allocation laws predict no score or loss; drop 'target'")
    each = (pairs.estimate(need, 0), pairs.estimate(need, 1))
    if not all(np.isfinite(e.value) for e in each):
        raise ConfigError(f"target {target!r} is never reached by one arm's law (e.g. loss ≤ E)")
    return each, pairs.combine(need, lambda x, y: y / x)


def _allocation(pairs: _Pairs, flops: float | None, labels: tuple[str, str]) -> dict[str, Any]:
    """Each arm's a (N_opt ∝ C^a), their difference and, at ``flops``, the N_opt/D_opt ratios."""
    a = (pairs.estimate(_alloc_a, 0), pairs.estimate(_alloc_a, 1))
    diff = pairs.combine(_alloc_a, lambda x, y: x - y)
    out: dict[str, Any] = {"a": a, "a_difference": diff}
    out["more_into_model_size"] = labels[0] if a[0].value > a[1].value else labels[1]
    out["difference_excludes_zero"] = bool(
        diff.ci is not None and (diff.ci[0] > 0 or diff.ci[1] < 0)
    )
    if flops is not None:
        out["flops"] = float(flops)
        out["n_opt_ratio"] = pairs.ratio(lambda p: _optimum(p, flops)[0])
        out["d_opt_ratio"] = pairs.ratio(lambda p: _optimum(p, flops)[1])
    return out


def _optimum(p: Params, flops: float) -> tuple[Any, Any]:
    if "alpha" in p:
        return laws.optimal_allocation(flops, A=p["A"], B=p["B"], alpha=p["alpha"], beta=p["beta"])
    n = laws.power_law(flops, coef=p["k_N"], exponent=p["a"])
    return n, laws.power_law(flops, coef=p["k_D"], exponent=p["b"])
