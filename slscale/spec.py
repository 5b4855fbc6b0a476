"""Run specifications: the frozen description of one training run.

A :class:`RunSpec` says everything that changes a run's result (model family and size, init,
modality, token budget, data mix, seed, recipe). Paths, cluster addresses and GPU types are
runtime arguments and are *not* part of a spec, so they never change a run's identity
(see :mod:`slscale.identity`). Specs are built from plain dicts (YAML) by :func:`spec_from_dict`
and serialised back by :func:`spec_to_dict`; the two round-trip exactly.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

from slscale.errors import ConfigError

T = TypeVar("T")

SCRATCH = "scratch"


class Modality(enum.StrEnum):
    """What a run trains on."""

    TEXTLESS = "textless"  # speech units only (GSLM / Cuervo & Marxer)
    INTERLEAVED = "interleaved"  # speech-text interleaved at word boundaries (SIMS, SpiritLM)
    TEXT = "text"  # text only (the TextLM baseline)


class RunState(enum.StrEnum):
    """Life cycle of a run in the results store."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    PREEMPTED = "PREEMPTED"


def _check(cond: bool, field: str, value: object, hint: str) -> None:
    if not cond:
        raise ConfigError(f"field '{field}' = {value!r}: {hint}")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Architecture:
    """A decoder-only transformer's shape (before the speech-unit vocabulary extension)."""

    num_layers: int
    """Number of transformer blocks."""
    hidden_size: int
    """Model width d_model."""
    num_heads: int
    """Attention (query) heads."""
    num_kv_heads: int
    """Key/value heads (grouped-query attention when < num_heads)."""
    intermediate_size: int
    """Width of the gated MLP's hidden layer."""
    vocab_size: int
    """Base vocabulary of the text tokenizer, or of a units-only vocabulary."""
    tie_embeddings: bool = True
    """Whether the LM head shares the input embedding matrix."""
    head_dim: int | None = None
    """Per-head width; None means hidden_size // num_heads."""

    def __post_init__(self) -> None:
        for name in ("num_layers", "hidden_size", "num_heads", "num_kv_heads"):
            value = getattr(self, name)
            _check(value > 0, f"arch.{name}", value, "must be a positive integer")
        _check(
            self.intermediate_size > 0,
            "arch.intermediate_size",
            self.intermediate_size,
            "must be a positive integer",
        )
        _check(self.vocab_size > 0, "arch.vocab_size", self.vocab_size, "must be positive")
        _check(
            self.num_heads % self.num_kv_heads == 0,
            "arch.num_kv_heads",
            self.num_kv_heads,
            f"must divide num_heads ({self.num_heads})",
        )
        if self.head_dim is None:
            _check(
                self.hidden_size % self.num_heads == 0,
                "arch.num_heads",
                self.num_heads,
                f"must divide hidden_size ({self.hidden_size}) or set head_dim",
            )

    @property
    def resolved_head_dim(self) -> int:
        return self.head_dim if self.head_dim is not None else self.hidden_size // self.num_heads


@dataclasses.dataclass(frozen=True, kw_only=True)
class DataMix:
    """Token shares of the three streams, and where speech comes from."""

    text_share: float = 0.0
    """Share of training tokens from the text-only stream."""
    interleaved_share: float = 0.0
    """Share of training tokens from the speech-text interleaved stream."""
    speech_share: float = 1.0
    """Share of training tokens from the speech-only stream."""
    synthetic_share: float = 0.0
    """Share of speech tokens from synthetic (single-speaker TTS) data; the rest is real."""
    dataset: str = "mini"
    """Name of the data source (a name, not a path: paths are runtime arguments)."""
    span_mean_words: float = 10.0
    """Interleaving: mean of the Poisson span length in words (SIMS / Slamming: 10)."""
    speech_fraction: float = 0.3
    """Interleaving: target fraction of words rendered as speech (SIMS / Slamming: 0.3)."""

    def __post_init__(self) -> None:
        shares = (self.text_share, self.interleaved_share, self.speech_share)
        for name, value in zip(
            ("text_share", "interleaved_share", "speech_share"), shares, strict=True
        ):
            _check(0.0 <= value <= 1.0, f"mix.{name}", value, "must be in [0, 1]")
        _check(
            math.isclose(sum(shares), 1.0, abs_tol=1e-6),
            "mix",
            shares,
            "text_share + interleaved_share + speech_share must sum to 1",
        )
        _check(
            0.0 <= self.synthetic_share <= 1.0,
            "mix.synthetic_share",
            self.synthetic_share,
            "must be in [0, 1]",
        )
        _check(
            self.span_mean_words > 0,
            "mix.span_mean_words",
            self.span_mean_words,
            "must be positive",
        )
        _check(
            0.0 < self.speech_fraction < 1.0,
            "mix.speech_fraction",
            self.speech_fraction,
            "must be in (0, 1)",
        )


@dataclasses.dataclass(frozen=True, kw_only=True)
class Recipe:
    """Optimisation recipe. Defaults follow the SIMS training config (arXiv 2504.02398)."""

    lr: float = 5e-4
    """Peak learning rate (SIMS: 5e-4)."""
    lr_min: float = 5e-5
    """Final learning rate of the cosine schedule (SIMS: 5e-5)."""
    warmup_fraction: float = 0.01
    """Warm-up length as a fraction of all steps (SIMS: 1%)."""
    min_warmup_steps: int = 0
    """Lower bound on warm-up steps (Cuervo & Marxer: max(100, 1% of steps))."""
    schedule: str = "cosine"
    """Learning-rate schedule after warm-up: cosine | linear | constant | wsd (warmup–stable–
    decay: the peak rate until the last ``decay_fraction`` of the steps, then a decay to
    ``lr_min``; Hägele et al. 2024, arXiv 2405.18392)."""
    decay_fraction: float = 0.2
    """wsd only: share of the steps in the final decay (Hägele et al. 2024 §3: 20% matches
    cosine)."""
    decay_shape: str = "1-sqrt"
    """wsd only: linear | 1-sqrt, the decay's shape (Hägele et al. 2024 §3: 1-sqrt beats
    linear)."""
    global_batch_size: int = 256
    """Sequences per optimizer step across all workers."""
    context_length: int = 2048
    """Tokens per packed sequence (SIMS: 2048)."""
    weight_decay: float = 0.0
    """AdamW decoupled weight decay (Cuervo & Marxer: 0.1)."""
    grad_clip: float = 0.5
    """Gradient-norm clip (SIMS: 0.5)."""
    adam_beta1: float = 0.9
    adam_beta2: float = 0.95
    adam_eps: float = 1e-8

    def __post_init__(self) -> None:
        _check(self.lr > 0, "recipe.lr", self.lr, "must be positive")
        _check(0 <= self.lr_min <= self.lr, "recipe.lr_min", self.lr_min, "must be in [0, lr]")
        _check(
            0 <= self.warmup_fraction < 1,
            "recipe.warmup_fraction",
            self.warmup_fraction,
            "must be in [0, 1)",
        )
        _check(
            self.min_warmup_steps >= 0,
            "recipe.min_warmup_steps",
            self.min_warmup_steps,
            "must be >= 0",
        )
        _check(
            self.schedule in SCHEDULES,
            "recipe.schedule",
            self.schedule,
            f"must be one of {', '.join(SCHEDULES)}",
        )
        self._check_decay()
        _check(
            self.global_batch_size > 0,
            "recipe.global_batch_size",
            self.global_batch_size,
            "must be positive",
        )
        _check(
            self.context_length > 0,
            "recipe.context_length",
            self.context_length,
            "must be positive",
        )
        _check(self.weight_decay >= 0, "recipe.weight_decay", self.weight_decay, "must be >= 0")
        _check(self.grad_clip > 0, "recipe.grad_clip", self.grad_clip, "must be positive")

    def _check_decay(self) -> None:
        _check(
            0 < self.decay_fraction < 1,
            "recipe.decay_fraction",
            self.decay_fraction,
            "must be in (0, 1)",
        )
        _check(
            self.decay_shape in DECAY_SHAPES,
            "recipe.decay_shape",
            self.decay_shape,
            f"must be one of {', '.join(DECAY_SHAPES)}",
        )
        if self.schedule != WSD:
            for name in WSD_FIELDS:
                value = getattr(self, name)
                _check(
                    value == _WSD_DEFAULTS[name],
                    f"recipe.{name}",
                    value,
                    f"applies to schedule: wsd only (this recipe's schedule is {self.schedule})",
                )

    @property
    def tokens_per_step(self) -> int:
        return self.global_batch_size * self.context_length

    def warmup_steps(self, total_steps: int) -> int:
        """``max(min_warmup_steps, floor(warmup_fraction × S))``, at most ``S``."""
        return min(total_steps, max(self.min_warmup_steps, int(self.warmup_fraction * total_steps)))

    def decay_start(self, total_steps: int) -> int:
        """wsd: the first step of the decay, ``S − max(1, round(f·S))`` (the branch point of a
        ladder, ``(1 − f)·S`` in whole steps), never before the warm-up ends."""
        decay = max(1, math.floor(self.decay_fraction * total_steps + 0.5))
        return max(self.warmup_steps(total_steps), total_steps - decay)


SCHEDULES = ("cosine", "linear", "constant", "wsd")
WSD = "wsd"
DECAY_SHAPES = ("linear", "1-sqrt")
WSD_FIELDS = ("decay_fraction", "decay_shape")
"""Recipe fields that only a wsd schedule reads (left out of other runs' ids)."""
_WSD_DEFAULTS = {name: getattr(Recipe, name) for name in WSD_FIELDS}

SIMS_RECIPE = Recipe()
"""SIMS (arXiv 2504.02398, training config): context 2048, LR 5e-4 cosine to 5e-5, 1% warm-up,
grad-norm clip 0.5."""

TEXTLESS_RECIPE = dataclasses.replace(SIMS_RECIPE, weight_decay=0.1, min_warmup_steps=100)
"""Cuervo & Marxer (EMNLP 2024) textless recipe: weight decay 0.1, warm-up max(100, 1%)."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class Branch:
    """Where a decay branch of a WSD ladder starts: its trunk's run and branch point."""

    parent: str
    """Run id of the trunk whose checkpoint the branch starts from."""
    from_tokens: int
    """Tokens the trunk has trained at the branch point: the first step of the branch's decay
    (``recipe.decay_start``) times the tokens per step."""

    def __post_init__(self) -> None:
        _check(
            isinstance(self.parent, str) and bool(self.parent) and "/" not in self.parent,
            "branch.parent",
            self.parent,
            "must be the trunk's run id",
        )
        _check(
            isinstance(self.from_tokens, int) and self.from_tokens > 0,
            "branch.from_tokens",
            self.from_tokens,
            "must be a positive number of tokens",
        )


@dataclasses.dataclass(frozen=True, kw_only=True)
class RunSpec:
    """Everything that changes the result of one training run."""

    family: str
    """Model family: llama | qwen2 | ... (see slscale.models.families)."""
    modality: Modality
    """textless | interleaved | text."""
    tokens: int
    """Token budget D: the run trains on exactly this many tokens."""
    size: str | None = None
    """A family preset ("qwen2.5-0.5b") or a parameter target ("85M", "1.5B")."""
    arch: Architecture | None = None
    """An explicit architecture; exclusive with size."""
    init: str = SCRATCH
    """'scratch', or the TextLM to start from (a local checkpoint path or a hub name)."""
    mix: DataMix = dataclasses.field(default_factory=DataMix)
    """Data streams and their token shares."""
    recipe: Recipe = dataclasses.field(default_factory=Recipe)
    """Optimisation recipe."""
    seed: int = 0
    """Seed for initialisation, data order and interleaving draws."""
    units_only_vocab: bool = False
    """Textless runs: keep only the unit (+ special) rows of the vocabulary (TWIST-style)."""
    branch: Branch | None = None
    """A decay branch of a WSD ladder: it starts from its trunk's checkpoint at
    ``branch.from_tokens`` (weights, optimizer state, data position) and trains the decay of a
    wsd run of ``tokens`` from there."""
    branch_tokens: tuple[int, ...] = ()
    """A WSD ladder's trunk: the token counts at which its branches start, the last equal to
    ``tokens``. A trunk trains the warm-up and the stable phase only (its rate never decays),
    keeps a checkpoint at each of these points, and is left out of fits."""

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "modality", Modality(self.modality))
        except ValueError:
            choices = ", ".join(m.value for m in Modality)
            raise ConfigError(
                f"field 'modality' = {self.modality!r}: must be one of {choices}"
            ) from None
        _check(
            isinstance(self.family, str) and bool(self.family),
            "family",
            self.family,
            "must be a non-empty family name",
        )
        _check(
            (self.size is None) != (self.arch is None),
            "size",
            self.size,
            "give exactly one of 'size' and 'arch'",
        )
        _check(
            isinstance(self.tokens, int) and self.tokens > 0,
            "tokens",
            self.tokens,
            "the token budget must be a positive integer",
        )
        _check(bool(self.init), "init", self.init, "use 'scratch' or a TextLM checkpoint")
        _check(self.seed >= 0, "seed", self.seed, "must be >= 0")
        if self.modality == Modality.TEXTLESS:
            _check(
                self.mix.speech_share == 1.0,
                "mix.speech_share",
                self.mix.speech_share,
                "a textless run trains on speech only: set speech_share: 1.0",
            )
        if self.units_only_vocab:
            _check(
                self.modality == Modality.TEXTLESS,
                "units_only_vocab",
                True,
                "only textless runs can drop the text vocabulary",
            )
        object.__setattr__(self, "branch_tokens", tuple(self.branch_tokens))
        if self.branch is not None:
            self._check_branch(self.branch)
        if self.branch_tokens:
            self._check_trunk()

    def _check_branch(self, branch: Branch) -> None:
        _check(not self.branch_tokens, "branch", branch, "a run is a trunk or a branch, not both")
        self._check_wsd("branch")
        steps = -(-self.tokens // self.recipe.tokens_per_step)
        start = self.recipe.decay_start(steps) * self.recipe.tokens_per_step
        _check(
            start < self.tokens,
            "branch",
            branch,
            f"the warm-up of this wsd run of {self.tokens} tokens leaves no step to decay",
        )
        _check(
            branch.from_tokens == start,
            "branch.from_tokens",
            branch.from_tokens,
            f"a wsd run of {self.tokens} tokens decays from token {start} (step "
            f"{start // self.recipe.tokens_per_step} of {steps}): branch there",
        )

    def _check_trunk(self) -> None:
        self._check_wsd("branch_tokens")
        points, step = self.branch_tokens, self.recipe.tokens_per_step
        _check(
            all(isinstance(t, int) and t > 0 and t % step == 0 for t in points),
            "branch_tokens",
            points,
            f"branch points must be positive whole optimizer steps ({step} tokens each)",
        )
        _check(
            list(points) == sorted(set(points)) and points[-1] == self.tokens,
            "branch_tokens",
            points,
            f"must increase and end at the trunk's tokens ({self.tokens})",
        )

    def _check_wsd(self, field: str) -> None:
        _check(
            self.recipe.schedule == WSD,
            field,
            self.branch or self.branch_tokens,
            f"WSD ladders need recipe.schedule: wsd (this run's is {self.recipe.schedule})",
        )

    @property
    def from_textlm(self) -> bool:
        return self.init != SCRATCH

    @property
    def is_trunk(self) -> bool:
        """A WSD ladder's trunk (its rate never decays: fits leave it out)."""
        return bool(self.branch_tokens)

    @property
    def tokens_trained(self) -> int:
        """Tokens this run itself trains: a branch's decay only, every other run its budget."""
        return self.tokens - (self.branch.from_tokens if self.branch else 0)


def marks_trunk(branch_tokens: object) -> bool:
    """Whether a stored spec's ``branch_tokens`` (a runs-frame column value: a list, or missing)
    marks a WSD ladder's trunk, whose rate never decayed: fits and figures leave it out."""
    return isinstance(branch_tokens, (list, tuple)) and len(branch_tokens) > 0


# ----------------------------------------------------------------------------- (de)serialise


def spec_to_dict(obj: Any) -> Any:
    """Plain-data form of a spec (enums as strings, nested dataclasses as dicts)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: spec_to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, (list, tuple)):
        return [spec_to_dict(v) for v in obj]
    return obj


def from_dict(cls: type[T], data: Mapping[str, Any], where: str = "") -> T:
    """Build dataclass ``cls`` from ``data``, converting nested dataclasses and enums.

    Unknown keys and wrong types raise :class:`ConfigError` naming the field path ``where``.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"field '{where or cls.__name__}' must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"unknown field '{_join(where, unknown[0])}'; known fields: {', '.join(fields)}"
        )
    kwargs = {k: _convert(hints[k], v, _join(where, k)) for k, v in data.items()}
    try:
        return cls(**kwargs)
    except TypeError as exc:  # a required field is missing
        missing = [n for n, f in fields.items() if n not in data and _required(f)]
        raise ConfigError(
            f"missing field '{_join(where, missing[0]) if missing else where}': {exc}"
        ) from None


def spec_from_dict(data: Mapping[str, Any]) -> RunSpec:
    """Inverse of :func:`spec_to_dict` for a :class:`RunSpec`."""
    return from_dict(RunSpec, data)


def _join(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def _required(f: dataclasses.Field[Any]) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


def _convert(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        non_none = [a for a in args if a is not type(None)]
        return _convert(non_none[0], value, where) if len(non_none) == 1 else value
    if origin is tuple:
        if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, (list, tuple)):
            raise ConfigError(f"field '{where}' = {value!r}: must be a list")
        (item, _) = typing.get_args(tp)
        return tuple(_convert(item, v, f"{where}[{i}]") for i, v in enumerate(value))
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, where)  # type: ignore[arg-type]
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        try:
            return tp(value)
        except ValueError:
            choices = ", ".join(str(m.value) for m in tp)
            raise ConfigError(f"field '{where}' = {value!r}: must be one of {choices}") from None
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"field '{where}' = {value!r}: must be true or false")
        return value
    if tp is int:
        return _to_int(value, where)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ConfigError(f"field '{where}' = {value!r}: must be a number")
        try:
            return float(value)
        except ValueError:
            raise ConfigError(f"field '{where}' = {value!r}: must be a number") from None
    if tp is str and not isinstance(value, str):
        raise ConfigError(f"field '{where}' = {value!r}: must be a string")
    return value


def _to_int(value: Any, where: str) -> int:
    """Integers may be written as 2e9 or "2e9" in YAML; they must be whole."""
    if isinstance(value, bool):
        raise ConfigError(f"field '{where}' = {value!r}: must be an integer")
    if isinstance(value, int):
        return value
    try:
        as_float = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"field '{where}' = {value!r}: must be an integer") from None
    if not math.isfinite(as_float) or as_float != int(as_float):
        raise ConfigError(f"field '{where}' = {value!r}: must be a whole number")
    return int(as_float)
