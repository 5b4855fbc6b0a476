"""The runs ``plan-next`` and ``recommend`` start from: rows, their fits and the arm.

:func:`load_study` reads rows from a CSV file, the results store or a saved fit, fits the
Approach-3 law (and metric laws Q = a·C^b when scores are named) and finds what new runs of the
arm look like (:class:`~slscale.workflows.plan_next.Arm`). :class:`Study` then answers the two
commands' questions in the fit's conventions, which it states.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import pandas as pd

from slscale.compute import tokens_6nd
from slscale.errors import ConfigError
from slscale.fitting import FitResult, MetricPowerLaw, ParametricLossFit, inputs, laws
from slscale.fitting.design import (
    LOG_QUANTITIES,
    MetricDesign,
    ParametricDesign,
    Selection,
    check_quantity,
)
from slscale.fitting.results import PARAMETRIC
from slscale.fitting.sources import Table
from slscale.models.families import parse_size
from slscale.workflows import plan_next
from slscale.workflows.plan_next import Arm

Design = ParametricDesign | MetricDesign
METRIC_BUDGET_GAP_DEX = 0.05
"""New compute levels this close to a fitted budget would not add a budget to a metric law."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class StudyInputs:
    """Where a study's runs come from, how they are fitted and what new runs look like: what
    ``plan-next`` and ``recommend`` read from their options (defaults: the CLI's)."""

    csv: str | None = None
    """A CSV file of rows (exclusive with a store and with ``fit``)."""
    workdir: str | None = None
    """The study's folder (its store: <workdir>/results.db)."""
    store: str | None = None
    """Store path or URL (default: $SLSCALE_STORE or the workdir's)."""
    fit: str | None = None
    """A saved Approach-3 FitResult JSON instead of rows."""
    where: tuple[str, ...] = ()
    """``KEY=VALUE`` filters on the rows (and the base grid's runs)."""
    params_col: str = "n_params"
    tokens_col: str | None = None
    flops_col: str | None = None
    loss_col: str = "loss"
    benchmarks: tuple[str, ...] = ()
    """Store: scores to fit Q = a·C^b to (e.g. sSC)."""
    variant: str | None = None
    """Store: the benchmarks' variant."""
    metric_cols: tuple[str, ...] = ()
    """CSV: score columns to fit Q = a·C^b to."""
    huber_delta: float = 1e-3
    bootstrap: int = 1000
    seed: int = 0
    confidence: float = 0.95
    base_grid: str | None = None
    """Take the new runs' fields from this grid's runs."""
    family: str | None = None
    """Model family of the new runs when the rows carry no run specs."""
    modality: str = "textless"
    """With ``family``: the new runs' modality."""

    @property
    def scores(self) -> tuple[str, ...]:
        """The scores named for metric laws (benchmarks of a store, or CSV columns)."""
        return self.benchmarks or self.metric_cols


@dataclasses.dataclass(frozen=True, kw_only=True)
class Study:
    """An arm's runs, its fits and what its new runs look like."""

    source: str
    """Where the rows came from."""
    result: FitResult
    """The Approach-3 fit (with bootstrap draws unless --bootstrap 0)."""
    metrics: dict[str, FitResult]
    """Metric laws by score name."""
    arm: Arm | None
    """The new runs' base; None for rows without specs and no --family/--base-grid."""
    convention: str
    """'total' or 'non_embedding': which N the fit uses."""
    confidence: float
    seed: int
    sizes_done: tuple[str, ...] = ()
    """Sizes of the runs done (they join the default ladder)."""
    notes: tuple[str, ...] = ()
    """What was chosen or left out while loading."""

    @property
    def n_runs(self) -> int:
        return self.result.n_points

    def require_arm(self, option: str) -> Arm:
        if self.arm is None:
            raise ConfigError(
                f"{option} needs to know the runs: give --family or --base-grid "
                "(rows from a CSV file or a fit carry no run specs)"
            )
        return self.arm

    def conventions(self) -> dict[str, Any]:
        return {"n_params": self.convention, "flops": "6ND", **dict(self.result.conventions)}

    @staticmethod
    def log_scale(quantity: str) -> bool:
        return quantity in (*LOG_QUANTITIES, "metric")

    # -- plan-next -----------------------------------------------------------------------------
    def design(self, quantity: str, target_flops: float | None, draws: int) -> Design:
        if quantity == "metric":
            fit = next(iter(self.metrics.values()))
            return MetricDesign(target_flops=target_flops or 0.0, confidence=self.confidence).fit(
                fit
            )
        check_quantity(quantity, target_flops)
        return ParametricDesign(
            quantity=quantity,
            target_flops=target_flops,
            n_draws=draws,
            confidence=self.confidence,
            random_state=self.seed,
        ).fit(self.result)

    def design_notes(self, quantity: str) -> list[str]:
        """What a plan for ``quantity`` chose, for the report's notes."""
        if quantity == "metric":
            return [f"metric: log {next(iter(self.metrics))} at C*, best run per budget"]
        return []

    def sizes(
        self,
        given: list[str],
        top_flops: float,
        min_tpp: float,
        per_decade: int,
        min_size: str | None = None,
    ) -> pd.DataFrame:
        """The sizes to consider: ``--sizes``, or a ladder from the smallest model done (or
        ``min_size``) up to the largest N that ``top_flops`` trains at ``min_tpp`` tokens per
        parameter."""
        listed = [s.strip() for text in given for s in text.split(",") if s.strip()]
        if listed:
            if self.arm is None:
                return plan_next.abstract_sizes(parse_size(s) for s in listed)
            return plan_next.size_table(self.arm, listed, self.convention)
        low = self.size_floor(min_size)
        high = max(math.sqrt(top_flops / (6 * min_tpp)), low * 10 ** (1 / per_decade))
        if self.arm is None:
            return plan_next.abstract_sizes(plan_next.ladder(low, high, per_decade))
        return plan_next.default_ladder(
            self.arm, low, high, per_decade, self.convention, also=self.sizes_done
        )

    def size_floor(self, min_size: str | None = None) -> float:
        """The smallest N of the default ladder: the smallest model done, or ``min_size``."""
        if min_size:
            return parse_size(min_size)
        return float(np.min(self.result.data["n_params"]))

    def tokens_floor(self, min_tokens: float | None = None) -> float:
        """The smallest D of a new cell: the smallest done, or ``min_tokens``. With sizes
        from the smallest model done, new cells stay inside or above the data in both N and
        D: cells below it lean on the law where nobody tested it."""
        if min_tokens is not None:
            if not (math.isfinite(min_tokens) and min_tokens > 0):
                raise ConfigError(f"--min-tokens {min_tokens!r}: must be a positive number")
            return min_tokens
        return float(np.min(self.result.data["tokens"]))

    def done(self) -> tuple[np.ndarray, np.ndarray]:
        data = self.result.data
        return np.asarray(data["n_params"], float), np.asarray(data["tokens"], float)

    def compute_optimal_cells(self, cells: pd.DataFrame) -> pd.DataFrame:
        """Per compute level the cell nearest N_opt(C) (a metric law uses the best run per
        budget), leaving out levels that coincide with a fitted budget."""
        fit = next(iter(self.metrics.values()))
        fitted = np.log10(np.asarray(fit.data["flops"], float)[np.asarray(fit.data["fitted"])])
        n_opt, _ = self.result.optimal_allocation(cells["level"].to_numpy(float))
        cells = cells.assign(miss=np.abs(np.log(cells["n_fit"].to_numpy(float) / n_opt)))
        best = cells.loc[cells.groupby("level")["miss"].idxmin()]
        gap = np.abs(np.log10(best["level"].to_numpy(float))[:, None] - fitted[None]).min(axis=1)
        return best[gap > METRIC_BUDGET_GAP_DEX].drop(columns="miss").reset_index(drop=True)

    def select(
        self, design: Design, cells: pd.DataFrame, budget: float, max_runs: int | None
    ) -> Selection:
        cost = cells["cost"].to_numpy(float)
        if isinstance(design, MetricDesign):
            return design.select(cells["flops_6nd"], cost, budget, max_runs=max_runs)
        return design.select(cells["n_fit"], cells["tokens"], cost, budget, max_runs=max_runs)

    def check(
        self, quantity: str, target_flops: float | None, chosen: pd.DataFrame, replicas: int
    ) -> dict[str, Any]:
        from slscale.fitting.design_sim import simulate_widths

        if quantity == "metric":
            raise ConfigError("--check refits the Approach-3 law; a metric's width is exact")
        sim = simulate_widths(
            self.result,
            quantity,
            chosen["n_fit"],
            chosen["tokens"],
            target_flops=target_flops,
            replicas=replicas,
            confidence=self.confidence,
            random_state=self.seed,
        )
        return {
            "before": sim.before,
            "after": sim.after,
            "ratio": sim.ratio,
            "replicas": sim.replicas,
        }

    # -- recommend -----------------------------------------------------------------------------
    def recommend(self, target: float, gpu: str, mfu: float) -> dict[str, Any]:
        n_opt, d_opt = (float(x) for x in self.result.optimal_allocation(target))
        draws = self.result.draws()
        out: dict[str, Any] = {
            "target_flops": target,
            "source": self.source,
            "n_runs": self.n_runs,
            "confidence": self.confidence,
            "n_opt": {"value": n_opt},
            "d_opt": {"value": d_opt},
            "tokens_per_param": d_opt / n_opt,
            "loss": {"value": float(laws.optimal_loss(target, **self.result.params))},
            "metrics": {},
            "conventions": self.conventions(),
            "notes": [*self.notes, f"N is {self.convention} parameters, as in the fit; C = 6·N·D"],
        }
        if draws is not None:
            interval = self.result.allocation_interval(target)
            out["n_opt"]["ci"] = [float(v) for v in interval["n_opt"]]
            out["d_opt"]["ci"] = [float(v) for v in interval["d_opt"]]
            losses = laws.optimal_loss(target, **draws)
            out["loss"]["ci"] = self._interval(losses)
            if (lost := int(np.sum(~np.isfinite(losses)))) > 0:
                out["notes"].append(
                    f"{lost} of {losses.size} bootstrap draws give no finite loss at C* (their "
                    "parameters overflowed); the loss interval leaves them out"
                )
        for name, fit in self.metrics.items():
            out["metrics"][name] = {"value": float(fit.predict_metric(target))}
            if (md := fit.draws()) is not None:
                out["metrics"][name]["ci"] = self._interval(laws.metric_law(target, **md))
        if self.arm is not None:
            out["model"] = self._model(n_opt, target, gpu, mfu)
        return out

    def _interval(self, values: np.ndarray) -> list[float]:
        """Percentile interval of the finite draws."""
        tail = 50 * (1 - self.confidence)
        finite = values[np.isfinite(values)]
        if finite.size == 0:
            return [math.nan, math.nan]
        return [float(v) for v in np.percentile(finite, [tail, 100 - tail])]

    def _model(self, n_opt: float, target: float, gpu: str, mfu: float) -> dict[str, Any]:
        arm = self.require_arm("recommend")
        best = plan_next.nearest_architecture(arm, n_opt, self.convention)
        step = arm.tokens_per_step
        tokens = max(1, round(tokens_6nd(target, best["n_fit"]) / step)) * step
        row = plan_next.plan(arm, str(best["size"]), tokens, gpu, mfu)
        arch = best["arch"]
        return {
            "family": arm.family,
            "size": best["size"],
            "n_params": row.n_params,
            "n_params_non_embedding": row.n_params_non_embedding,
            "n_fit": best["n_fit"],
            "num_layers": arch.num_layers,
            "hidden_size": arch.hidden_size,
            "num_heads": arch.num_heads,
            "num_kv_heads": arch.num_kv_heads,
            "intermediate_size": arch.intermediate_size,
            "tokens": tokens,
            "flops_6nd": row.flops_6nd,
            "predicted_loss": float(self.result.predict_loss(best["n_fit"], tokens)),
            "gpu": gpu,
            "mfu": mfu,
            "gpus": row.gpus,
            "zero_stage": row.zero_stage,
            "micro_batch_size": row.micro_batch_size,
            "grad_accum_steps": row.grad_accum_steps,
            "gpu_hours": row.gpu_hours,
        }


# ----------------------------------------------------------------------------- loading


def load_study(args: StudyInputs, *, metric: bool) -> Study:
    """Rows → fits → arm (metric laws too when ``metric``)."""
    if not 0 < args.confidence < 1:
        raise ConfigError(f"--confidence {args.confidence}: must be in (0, 1)")
    if args.fit:
        if metric:
            raise ConfigError("--fit holds only the loss law; scores need rows (--csv, a store)")
        result, table, store = _saved_fit(args.fit), None, None
        source, metrics = args.fit, {}
    else:
        rows = inputs.select_rows(
            csv=args.csv,
            workdir=args.workdir,
            store=args.store,
            where=args.where,
            nothing="no runs to plan from: pass --workdir DIR / --store URL, --csv FILE or "
            "--fit FIT.json",
        )
        table, store = rows.table, rows.store
        source = table.source + "".join(f", {w}" for w in args.where)
        result = _loss_fit(args, table, store, source)
        metrics = _metric_fits(args, table, store, source) if metric else {}
    convention = "non_embedding" if _non_embedding(result) else "total"
    done: tuple[str, ...] = ()
    if table is not None and "size" in table.frame.columns:
        done = tuple(str(s) for s in table.frame["size"].dropna().unique())
    return Study(
        source=source,
        result=result,
        metrics=metrics,
        arm=_arm(args, table, store),
        convention=convention,
        confidence=args.confidence,
        seed=args.seed,
        sizes_done=done,
    )


def _saved_fit(path: str) -> FitResult:
    result = FitResult.load(path)
    if result.law != PARAMETRIC or not result.data:
        raise ConfigError(f"--fit {path}: a {result.law} fit; plan from an approach3 fit")
    return result


def _non_embedding(result: FitResult) -> bool:
    return str(result.conventions.get("n_params", "")).startswith("non-embedding")


def _loss_fit(args: StudyInputs, table: Table, store: str | None, source: str) -> FitResult:
    p = inputs.loss_points(
        inputs.Rows(table=table, store=store),
        params_col=args.params_col,
        loss_col=args.loss_col,
        tokens_col=args.tokens_col,
        flops_col=args.flops_col,
    )
    fit = ParametricLossFit(
        huber_delta=args.huber_delta,
        n_bootstrap=args.bootstrap,
        confidence=args.confidence,
        random_state=args.seed,
        validate=False,
    )
    try:
        fit.fit(p.n, p.tokens, p.loss, conventions=p.conventions)
    except ConfigError as exc:
        raise ConfigError(f"{source}: cannot fit the runs: {exc}") from None
    return fit.result_


def _metric_fits(
    args: StudyInputs, table: Table, store: str | None, source: str
) -> dict[str, FitResult]:
    rows = inputs.Rows(table=table, store=store)
    fits = {}
    for name in args.benchmarks if store else args.metric_cols:
        if store:
            p = inputs.score_points(
                rows, metric_col="value", benchmark=name, variant=args.variant,
                flops_col=args.flops_col,
            )  # fmt: skip
        else:
            p = inputs.score_points(rows, metric_col=name, flops_col=args.flops_col)
        law = MetricPowerLaw(
            n_bootstrap=args.bootstrap,
            confidence=args.confidence,
            random_state=args.seed,
            validate=False,
        )
        try:
            fits[name] = law.fit(p.flops, p.value, label=name).result_
        except ConfigError as exc:
            raise ConfigError(f"{source}: cannot fit {name}: {exc}") from None
    if not fits:
        option = "--benchmark NAME" if store else "--metric-col COLUMN"
        raise ConfigError(f"{source}: name the score to plan for with {option}")
    return fits


def _arm(args: StudyInputs, table: Table | None, store: str | None) -> Arm | None:
    if args.base_grid:
        return plan_next.arm_from_grid(args.base_grid, args.where)
    if args.family:
        return plan_next.arm_from_family(args.family, args.modality)
    if store is not None and table is not None:
        return plan_next.arm_from_runs(table.frame, table.source)
    return None
