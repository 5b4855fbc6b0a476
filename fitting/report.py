"""A readable text table of a FitResult (what ``slscale fit`` prints)."""

from __future__ import annotations

from slscale.fitting import validation
from slscale.fitting.results import FitResult


def format_result(result: FitResult) -> str:
    """Parameters with intervals, exponents, objective, extrapolation check, warnings."""
    head = f"{result.method} fit ({result.law}) of {result.n_points} points"
    lines = [head + (f" — {result.label}" if result.label else "")]
    lines.append(f"  {'parameter':<10} {'estimate':>12}   {100 * result.confidence:g}% CI")
    rows = dict(result.params)
    rows.update({k: v for k, v in result.exponents.items() if k not in rows})
    if "G" in result.details:
        rows["G"] = result.details["G"]
    for name, value in rows.items():
        ci = result.ci.get(name)
        interval = f"[{ci[0]:.4g}, {ci[1]:.4g}]" if ci else "—"
        lines.append(f"  {name:<10} {value:>12.5g}   {interval}")
    objective = result.objective
    if "value" in objective:
        lines.append(
            f"  objective: {objective['value']:.10g} (Huber δ={objective['huber_delta']:g}, "
            f"{objective.get('reduction', 'sum')} over points, "
            f"{objective.get('n_starts', '?')} starts)"
        )
    lines.append(
        f"  extrapolation ({validation.SCHEME}): {validation.summary(result.extrapolation)}"
    )
    lines.extend(f"  warning: {w}" for w in result.warnings)
    lines.append("  conventions: " + "; ".join(f"{k}={v}" for k, v in result.conventions.items()))
    return "\n".join(lines)
