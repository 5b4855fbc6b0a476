"""Learning-rate search per model size, and the LR(N) rule fitted to its results.

For each size, an Optuna study (TPE sampler) proposes a peak learning rate (log-uniform) and,
optionally, a warm-up fraction; each trial is an ordinary run of the grid's recipe at a small
token budget, executed by the same scheduler and recorded in the same store (trials are runs:
they have run ids, curves and states). The studies live in the store's database (Optuna's RDB
storage on the store URL), so a search can stop and continue: finished trials are kept, and a
trial left RUNNING by a stopped search is resumed through the scheduler, which skips or resumes
its run. The objective is the run's final validation loss (its training loss when it has none).

The rule fitted to the best trial of each size is the power law ``lr = c·N^k``, by least squares
on ``log lr = log c + k log N`` (N: non-embedding parameters by default, as in Kaplan et al.
2020 and the DeepSeek LLM hyper-parameter laws, arXiv 2401.02954 §3.1).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from slscale.errors import ConfigError, SlscaleError
from slscale.identity import readable_name, run_id, spec_hash
from slscale.spec import RunSpec, RunState, spec_from_dict, spec_to_dict
from slscale.store import open_store, resolve_store_target
from slscale.store.targets import store_url
from slscale.sweep.launch import LaunchOptions, launch
from slscale.sweep.scheduler.driver import Reporter
from slscale.sweep.scheduler.outcome import RunFunction

OBJECTIVES = ("val_loss", "loss")
"""Summary keys tried in order as a trial's value."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class SearchSpace:
    """Where the studies search."""

    lr_low: float = 1e-4
    """Lowest peak learning rate tried."""
    lr_high: float = 3e-2
    """Highest peak learning rate tried."""
    warmup_low: float | None = None
    """Lowest warm-up fraction tried (None with warmup_high: keep the recipe's)."""
    warmup_high: float | None = None
    """Highest warm-up fraction tried."""

    def __post_init__(self) -> None:
        if not 0 < self.lr_low < self.lr_high:
            raise ConfigError(f"--lr-range {self.lr_low} {self.lr_high}: need 0 < low < high")
        if (self.warmup_low is None) != (self.warmup_high is None):
            raise ConfigError("--warmup-range needs both a low and a high value")
        low, high = self.warmup_low, self.warmup_high
        if low is not None and high is not None and not 0 <= low < high < 1:
            raise ConfigError(
                f"--warmup-range {self.warmup_low} {self.warmup_high}: need 0 <= low < high < 1"
            )

    def distributions(self) -> dict[str, Any]:
        from optuna.distributions import FloatDistribution

        out: dict[str, Any] = {"lr": FloatDistribution(self.lr_low, self.lr_high, log=True)}
        if self.warmup_low is not None and self.warmup_high is not None:
            out["warmup_fraction"] = FloatDistribution(self.warmup_low, self.warmup_high)
        return out


@dataclasses.dataclass(frozen=True, kw_only=True)
class TuneSettings:
    """How many trials, proposed how."""

    trials: int
    """Trials per size (finished ones from an earlier search count)."""
    space: SearchSpace = dataclasses.field(default_factory=SearchSpace)
    """The search space."""
    parallel: int = 2
    """Trials per size proposed at once (TPE learns between rounds)."""
    seed: int = 0
    """Seed of the samplers."""
    startup_trials: int = 4
    """Random trials per size before TPE takes over."""

    def __post_init__(self) -> None:
        if self.trials < 1 or self.parallel < 1:
            raise ConfigError(f"--trials {self.trials}, --parallel {self.parallel}: must be >= 1")


@dataclasses.dataclass(frozen=True, kw_only=True)
class SizeResult:
    """The best trial of one size."""

    size: str
    n_params: int
    n_params_non_embedding: int
    lr: float
    warmup_fraction: float
    value: float
    """Objective (final validation or training loss) of the best trial."""
    run_id: str
    trials: int
    """Finished trials of the study."""
    study: str


def study_name(base: RunSpec) -> str:
    """A study per (size, fixed recipe, budget): ``lr-search/<name>-<hash of the base>``."""
    return f"lr-search/{readable_name(base)}-{spec_hash(base)}"


def trial_spec(base: RunSpec, params: Mapping[str, float]) -> RunSpec:
    """``base`` with the trial's LR (the floor keeps its ratio to the peak) and warm-up."""
    lr = float(params["lr"])
    recipe = dataclasses.replace(
        base.recipe,
        lr=lr,
        lr_min=lr * base.recipe.lr_min / base.recipe.lr,
        warmup_fraction=float(params.get("warmup_fraction", base.recipe.warmup_fraction)),
    )
    return dataclasses.replace(base, recipe=recipe)


class Search:
    """LR studies over several sizes, run in rounds through the scheduler."""

    def __init__(
        self, bases: Mapping[str, RunSpec], settings: TuneSettings, options: LaunchOptions
    ) -> None:
        if not bases:
            raise ConfigError("nothing to tune: give --grid or --size")
        self.bases, self.settings, self.options = dict(bases), settings, options
        target = resolve_store_target(options.store, options.workdir)
        self.storage_url = store_url(target).render_as_string(hide_password=False)
        self.studies = {size: self._study(base) for size, base in self.bases.items()}

    def _study(self, base: RunSpec) -> Any:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        sampler = optuna.samplers.TPESampler(
            seed=self.settings.seed, n_startup_trials=self.settings.startup_trials
        )
        return optuna.create_study(
            study_name=study_name(base),
            storage=self.storage_url,
            sampler=sampler,
            direction="minimize",
            load_if_exists=True,
        )

    def run(self, run_fn: RunFunction | None = None, reporter: Reporter | None = None) -> None:
        """Propose, run and record trials until every size has ``trials`` finished ones."""
        while round_ := self._next_round():
            specs = {run_id(spec): spec for _, _, spec in round_}
            launch(list(specs.values()), self.options, run_fn=run_fn, reporter=reporter)
            self._record(round_)

    def _next_round(self) -> list[tuple[str, int, RunSpec]]:
        from optuna.trial import TrialState

        round_: list[tuple[str, int, RunSpec]] = []
        for size, study in self.studies.items():
            stale = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
            round_ += [(size, t.number, trial_spec(self.bases[size], t.params)) for t in stale]
            missing = self.settings.trials - len(_finished(study)) - len(stale)
            for _ in range(max(0, min(missing, self.settings.parallel))):
                trial = study.ask(self.settings.space.distributions())
                spec = trial_spec(self.bases[size], trial.params)
                trial.set_user_attr("run_id", run_id(spec))
                round_.append((size, trial.number, spec))
        return round_

    def _record(self, round_: Sequence[tuple[str, int, RunSpec]]) -> None:
        from optuna.trial import TrialState

        with open_store(resolve_store_target(self.options.store, self.options.workdir)) as store:
            for size, number, spec in round_:
                record = store.get_run(run_id(spec))
                value = _objective(record.summary) if record else None
                ok = record is not None and record.state == RunState.SUCCEEDED and value is not None
                with contextlib.suppress(ValueError):  # told already (by another search)
                    if ok:
                        self.studies[size].tell(number, value)
                    else:
                        self.studies[size].tell(number, state=TrialState.FAIL)

    def results(self, n_params_of: Callable[[RunSpec], Mapping[str, float]]) -> list[SizeResult]:
        """The best trial of every size (sizes without a finished trial are left out)."""
        out = []
        for size, study in self.studies.items():
            done = _finished(study, complete_only=True)
            if not done:
                continue
            best = min(done, key=lambda t: t.value)
            spec = trial_spec(self.bases[size], best.params)
            counts = n_params_of(spec)
            out.append(
                SizeResult(
                    size=size,
                    n_params=int(counts["n_params"]),
                    n_params_non_embedding=int(counts["n_params_non_embedding"]),
                    lr=spec.recipe.lr,
                    warmup_fraction=spec.recipe.warmup_fraction,
                    value=float(best.value),
                    run_id=run_id(spec),
                    trials=len(_finished(study)),
                    study=study.study_name,
                )
            )
        return out


def _finished(study: Any, complete_only: bool = False) -> list[Any]:
    from optuna.trial import TrialState

    states = (TrialState.COMPLETE,) if complete_only else (TrialState.COMPLETE, TrialState.FAIL)
    return list(study.get_trials(deepcopy=False, states=states))


def _objective(summary: Mapping[str, Any]) -> float | None:
    for key in OBJECTIVES:
        value = summary.get(key)
        if isinstance(value, (int, float)) and math.isfinite(value):
            return float(value)
    return None


# ----------------------------------------------------------------------------- what to tune


def bases_from_specs(
    specs: Sequence[RunSpec], tokens: Callable[[RunSpec], int] | None = None
) -> dict[str, RunSpec]:
    """One base run per size: the first of that size, at ``tokens(spec)`` or else the smallest
    budget the specs give that size. Every size must share one setting apart from its size.

    A WSD ladder's budgets are its branches (its trunk's length is only the last branch
    point): a base keeps the ladder's recipe and is an ordinary wsd run of its budget, neither
    a trunk nor a branch."""
    by_size: dict[str, list[RunSpec]] = {}
    for spec in specs:
        if not spec.is_trunk:
            by_size.setdefault(size_key(spec), []).append(spec)
    bases = {}
    for size, group in by_size.items():
        budget = tokens(group[0]) if tokens else min(s.tokens for s in group)
        bases[size] = dataclasses.replace(group[0], tokens=budget, branch=None, branch_tokens=())
    settings = {(b.family, str(b.modality), b.mix, b.units_only_vocab) for b in bases.values()}
    if len(settings) > 1:
        raise ConfigError(
            f"the runs to tune mix {len(settings)} settings (family, modality, data mix): an "
            "LR(N) rule is fitted across sizes of one setting; select one with --modality"
        )
    return bases


def size_spec(size: str, family: str, modality: str, overrides: Sequence[str]) -> RunSpec:
    """A run of ``size`` (tokens set later) with ``FIELD=VALUE`` overrides."""
    data: dict[str, Any] = {"family": family, "size": size, "modality": modality, "tokens": 1}
    if modality == "textless":
        data["units_only_vocab"] = True
    return with_overrides(spec_from_dict(data), overrides)


def with_overrides(spec: RunSpec, overrides: Sequence[str]) -> RunSpec:
    """``spec`` with dotted ``FIELD=VALUE`` overrides (values parsed as YAML)."""
    data = spec_to_dict(spec)
    for item in overrides:
        field, sep, text = item.partition("=")
        if not sep or not field:
            raise ConfigError(f"--set {item!r}: write FIELD=VALUE, e.g. recipe.lr_min=1e-5")
        *parents, leaf = field.split(".")
        node = data
        for name in parents:
            if node.get(name) is None:
                node[name] = {}
            if not isinstance(node[name], dict):
                raise ConfigError(f"--set {item!r}: {name!r} is not a group of fields")
            node = node[name]
        node[leaf] = yaml.safe_load(text)
    return spec_from_dict(data)


def spec_fields(spec: RunSpec) -> dict[str, Any]:
    """The plain-dict form the plan's parameter counter takes."""
    return spec_to_dict(spec)


def size_key(spec: RunSpec) -> str:
    if spec.size is not None:
        return spec.size
    assert spec.arch is not None
    return f"L{spec.arch.num_layers}d{spec.arch.hidden_size}"


def whole_steps(spec: RunSpec, tokens: float) -> int:
    """``tokens`` rounded to whole optimizer steps (at least one)."""
    per_step = spec.recipe.tokens_per_step
    return max(1, round(tokens / per_step)) * per_step


# ----------------------------------------------------------------------------- the LR(N) rule


@dataclasses.dataclass(frozen=True, kw_only=True)
class LRRule:
    """``lr = c · N^k`` with N counted as ``n_kind``."""

    c: float
    """Prefactor."""
    k: float
    """Exponent (negative: larger models want smaller rates)."""
    n_kind: str = "n_params_non_embedding"
    """Which parameter count N is: n_params_non_embedding or n_params."""
    points: tuple[dict[str, Any], ...] = ()
    """The best trial per size the rule was fitted to."""

    def lr(self, n_params: float) -> float:
        return self.c * n_params**self.k

    def to_dict(self) -> dict[str, Any]:
        return {"rule": "lr = c * N^k", **dataclasses.asdict(self), "points": list(self.points)}

    def save(self, path: str | Path) -> None:
        """Write as JSON (``.json``) or YAML (anything else)."""
        path = Path(path)
        data = self.to_dict()
        text = json.dumps(data, indent=1) if path.suffix == ".json" else yaml.safe_dump(data)
        path.write_text(text)

    @classmethod
    def load(cls, path: str | Path) -> LRRule:
        try:
            data = yaml.safe_load(Path(path).read_text())  # JSON is YAML
            return cls(
                c=float(data["c"]),
                k=float(data["k"]),
                n_kind=str(data["n_kind"]),
                points=tuple(data.get("points") or ()),
            )
        except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError) as exc:
            raise ConfigError(
                f"{path}: not an LR rule file ({exc}); write one with slscale tune"
            ) from None


def fit_lr_rule(results: Sequence[SizeResult], n_kind: str = "n_params_non_embedding") -> LRRule:
    """Least squares on ``log lr = log c + k log N`` over the best trial of each size."""
    import numpy as np

    if n_kind not in ("n_params", "n_params_non_embedding"):
        raise ConfigError(f"n_kind {n_kind!r}: must be n_params or n_params_non_embedding")
    sizes = {getattr(r, n_kind) for r in results}
    if len(sizes) < 2:
        raise SlscaleError(
            f"fitting lr = c·N^k needs the best LR of at least two sizes, got {len(sizes)}: "
            "tune more sizes"
        )
    log_n = np.log([float(getattr(r, n_kind)) for r in results])
    log_lr = np.log([r.lr for r in results])
    k, log_c = np.polyfit(log_n, log_lr, 1)
    return LRRule(
        c=float(np.exp(log_c)),
        k=float(k),
        n_kind=n_kind,
        points=tuple(dataclasses.asdict(r) for r in results),
    )
