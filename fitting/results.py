"""Result types of the fitting stage, serialised to and from self-describing JSON.

A :class:`FitResult` says what was fitted (``method``, ``law``), to which points (``data``,
with the counting ``conventions``: which N, which FLOPs, Huber δ), what came out (``params``,
``exponents``, percentile ``ci`` from a bootstrap whose draws are kept in ``bootstrap``), how
well it extrapolates (``extrapolation``: leave-largest-budget-out) and with which software
(``versions``). Figures read these files; they never re-fit. Reference laws from the
literature use the same type (``method="reference"``, citation in ``source``).
"""

from __future__ import annotations

import dataclasses
import json
import math
import platform
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from slscale.errors import ConfigError
from slscale.fitting import laws

SCHEMA = "slscale.fit/1"
PARAMETRIC = "parametric_loss"
"""L(N, D) = E + A/N^α + B/D^β; params E, A, B, alpha, beta."""
ALLOCATION = "compute_allocation"
"""N_opt = k_N·C^a, D_opt = k_D·C^b; params k_N, a, k_D, b."""
METRIC = "metric_power_law"
"""Q(C) = a·C^b; params a, b."""
MARGIN = "margin_log_linear"
"""Margin(C) = m + s·log10(C/1e12) of a likelihood margin (may be ≤ 0); params m, s."""
LAWS = (PARAMETRIC, ALLOCATION, METRIC, MARGIN)


def package_versions() -> dict[str, str]:
    """Versions recorded with every fit."""
    import scipy

    import slscale

    return {
        "slscale": slscale.__version__,
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "python": platform.python_version(),
    }


@dataclasses.dataclass(frozen=True, kw_only=True)
class FitResult:
    """One fitted (or published) scaling law with its uncertainty and provenance."""

    method: str
    """'approach1', 'approach2', 'approach3', 'metric', 'margin' or 'reference'."""
    law: str
    """Functional form: one of :data:`LAWS`."""
    params: Mapping[str, float]
    """Point estimates (see the law's constant for the names)."""
    ci: Mapping[str, tuple[float, float]] = dataclasses.field(default_factory=dict)
    """Percentile bootstrap intervals at ``confidence`` for params and derived quantities."""
    exponents: Mapping[str, float] = dataclasses.field(default_factory=dict)
    """Allocation exponents a (N_opt ∝ C^a) and b (D_opt ∝ C^b), b of a metric law, or s (gain
    per decade of compute) of a margin law."""
    confidence: float = 0.95
    """Coverage of every interval in ``ci``."""
    n_points: int = 0
    """Number of points the law was fitted to."""
    data: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    """The points used, as columns (n_params, tokens, flops, loss/value, budget, ...)."""
    conventions: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    """Counting conventions: which N (total or non-embedding), FLOPs (6ND or exact), δ, ..."""
    objective: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    """What was minimised and its value at the optimum (and how it was minimised)."""
    extrapolation: Mapping[str, Any] | None = None
    """Leave-largest-budget-out check: the error predicting the largest budget."""
    bootstrap: Mapping[str, Any] | None = None
    """Bootstrap draws per parameter (for intervals of derived quantities at any C)."""
    warnings: tuple[str, ...] = ()
    """Caveats found while fitting (e.g. off-centre IsoFLOP sampling)."""
    details: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    """Method-specific tables (e.g. Approach 2's per-budget optima)."""
    label: str = ""
    """What was fitted, for legends (e.g. 'interleaved sSC')."""
    source: str = ""
    """Citation, for published laws."""
    versions: Mapping[str, str] = dataclasses.field(default_factory=package_versions)
    """Software versions that produced the fit."""

    def __post_init__(self) -> None:
        if self.law not in LAWS:
            raise ConfigError(f"field 'law' = {self.law!r}: must be one of {list(LAWS)}")
        if not 0 < self.confidence < 1:
            raise ConfigError(f"field 'confidence' = {self.confidence!r}: must be in (0, 1)")

    # -- evaluation -------------------------------------------------------------------------
    def predict_loss(self, n_params: ArrayLike, tokens: ArrayLike) -> NDArray[np.float64]:
        """L(N, D) of a parametric law."""
        self._require(PARAMETRIC)
        return laws.parametric_loss(n_params, tokens, **self.params)

    def predict_metric(self, flops: ArrayLike) -> NDArray[np.float64]:
        """Q(C) of a metric power law."""
        self._require(METRIC)
        return laws.metric_law(flops, a=self.params["a"], b=self.params["b"])

    def predict_margin(self, flops: ArrayLike) -> NDArray[np.float64]:
        """Margin(C) of a margin law."""
        self._require(MARGIN)
        return laws.margin_law(flops, m=self.params["m"], s=self.params["s"])

    def optimal_allocation(
        self, flops: ArrayLike
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """(N_opt, D_opt) at compute C, from a parametric or an allocation law."""
        return _allocation(self.law, self.params, flops)

    def allocation_interval(self, flops: ArrayLike) -> dict[str, NDArray[np.float64]]:
        """Percentile intervals of N_opt and D_opt at each C from the bootstrap draws."""
        draws = self.draws()
        if draws is None:
            raise ConfigError(f"fit '{self.label or self.method}' has no bootstrap draws")
        n_opt, d_opt = _allocation(self.law, draws, np.asarray(flops, np.float64)[..., None])
        tail = 50 * (1 - self.confidence)
        return {
            "n_opt": np.nanpercentile(n_opt, [tail, 100 - tail], axis=-1),
            "d_opt": np.nanpercentile(d_opt, [tail, 100 - tail], axis=-1),
        }

    def draws(self) -> dict[str, NDArray[np.float64]] | None:
        """Bootstrap draws as arrays, or None when the fit has none."""
        if not self.bootstrap:
            return None
        return {k: np.asarray(v, dtype=np.float64) for k, v in self.bootstrap.items()}

    def _require(self, law: str) -> None:
        if self.law != law:
            raise ConfigError(f"fit '{self.label or self.method}' is a {self.law}, not a {law}")

    # -- JSON -------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (NaN and inf become null)."""
        out = {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}
        return {"schema": SCHEMA, **out}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], *, source: str = "fit result") -> FitResult:
        """Rebuild a result written by :meth:`to_dict`."""
        if raw.get("schema") != SCHEMA:
            raise ConfigError(f"{source}: 'schema' is {raw.get('schema')!r}, expected {SCHEMA!r}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(raw) - names - {"schema"})
        if unknown:
            raise ConfigError(f"{source}: unknown keys {unknown}")
        kwargs = {k: v for k, v in raw.items() if k in names}
        kwargs["ci"] = {k: (_num(v[0]), _num(v[1])) for k, v in raw.get("ci", {}).items()}
        kwargs["warnings"] = tuple(raw.get("warnings", ()))
        for key in ("params", "exponents"):
            kwargs[key] = {k: _num(v) for k, v in raw.get(key, {}).items()}
        try:
            return cls(**kwargs)
        except TypeError as exc:
            raise ConfigError(f"{source}: {exc}") from None

    def to_json(self, indent: int | None = 1) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    @classmethod
    def from_json(cls, text: str, *, source: str = "fit result") -> FitResult:
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{source}: not valid JSON ({exc})") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"{source}: expected a JSON object")
        return cls.from_dict(raw, source=source)

    def save(self, path: str | Path) -> Path:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(self.to_json() + "\n", encoding="utf-8")
        return target

    @classmethod
    def load(cls, path: str | Path) -> FitResult:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read fit result {path}: {exc.strerror}") from None
        return cls.from_json(text, source=str(path))


def _allocation(
    law: str, params: Mapping[str, Any], flops: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    if law == PARAMETRIC:
        return laws.optimal_allocation(
            flops, A=params["A"], B=params["B"], alpha=params["alpha"], beta=params["beta"]
        )
    if law == ALLOCATION:
        n_opt = laws.power_law(flops, coef=params["k_N"], exponent=params["a"])
        return n_opt, laws.power_law(flops, coef=params["k_D"], exponent=params["b"])
    raise ConfigError(f"a {law} has no compute-optimal allocation")


def _num(value: Any) -> float:
    return math.nan if value is None else float(value)


def _plain(value: Any) -> Any:
    """numpy → Python, non-finite floats → None, tuples → lists (recursively)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


@dataclasses.dataclass(frozen=True, kw_only=True)
class Estimate:
    """A derived number with its percentile interval (None when no draws exist)."""

    value: float
    ci: tuple[float, float] | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class ArmComparison:
    """Two groups of runs (e.g. interleaved vs textless) compared through their fitted laws."""

    labels: tuple[str, str]
    """Names of the first and second arm."""
    law: str
    """Law both fits share."""
    exponent_name: str
    """Which exponent is compared: 'b' (metric), 'gamma' (L_opt − E ∝ C^−γ) or 'a'."""
    exponents: tuple[Estimate, Estimate]
    """That exponent for each arm."""
    exponent_ratio: Estimate
    """First arm's exponent divided by the second's."""
    target: float | None = None
    """Score or loss both arms are asked to reach."""
    flops_to_target: tuple[Estimate, Estimate] | None = None
    """Compute each arm needs to reach ``target`` (extrapolated along its law)."""
    compute_multiplier: Estimate | None = None
    """Second arm's compute over the first's at ``target`` (>1: the first needs less)."""
    allocation: Mapping[str, Any] | None = None
    """N vs D split: each arm's a (N_opt ∝ C^a), their difference, N_opt ratio at a C."""
    confidence: float = 0.95
    """Coverage of every interval."""
    notes: tuple[str, ...] = ()
    """How the comparison was made and its caveats."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (estimates as {value, ci})."""
        return {k: _plain(v) for k, v in dataclasses.asdict(self).items()}
