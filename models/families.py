"""Model families, named sizes, and the rule that turns a parameter target into a shape.

A *family* is the block design (mechanics), one frozen :class:`Family` record each in
:data:`FAMILIES`: ``llama`` (Llama-3-like: RMSNorm, RoPE, SwiGLU MLP, grouped-query attention,
no biases) and ``qwen2`` (Qwen2/2.5-like: the same with biases on the q/k/v projections).
A *size* is policy: either a preset that reproduces a published config.json exactly, or a
non-embedding parameter target such as ``"85M"`` that :func:`resolve_architecture` turns into
depth × width × heads × MLP width by the rules below.
:func:`hf_config` builds the ``transformers`` config of a from-scratch model; a run initialised
from a TextLM uses that checkpoint's own config instead.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
from typing import TYPE_CHECKING, Any

from slscale.errors import ConfigError
from slscale.spec import Architecture

if TYPE_CHECKING:  # transformers is imported where a config is built: it takes seconds
    from transformers import PretrainedConfig


@dataclasses.dataclass(frozen=True, kw_only=True)
class Family:
    """A block design: how a from-scratch model of the family is configured and counted."""

    name: str
    """The family's name in run specs, which is also the ``transformers`` ``model_type``."""
    config_class: str
    """The ``transformers`` config class of its models."""
    rope_theta: float
    """RoPE base of from-scratch models."""
    rms_norm_eps: float
    """RMSNorm epsilon of from-scratch models."""
    qkv_bias: bool
    """Biases on the q/k/v projections (Qwen2); the family has no other biases."""
    explicit_head_dim: bool
    """The config names ``head_dim`` and the bias switches (``attention_bias``, ``mlp_bias``,
    both off); False: the config derives head_dim = hidden_size / heads."""
    source: str
    """Where the defaults come from."""


LLAMA = Family(
    name="llama",
    config_class="LlamaConfig",
    rope_theta=500_000.0,
    rms_norm_eps=1e-5,
    qkv_bias=False,
    explicit_head_dim=True,
    source="Llama 3 (Dubey et al. 2024, Table 3: RoPE base 500,000); Llama-3.2 config.json",
)
QWEN2 = Family(
    name="qwen2",
    config_class="Qwen2Config",
    rope_theta=1_000_000.0,
    rms_norm_eps=1e-6,
    qkv_bias=True,
    explicit_head_dim=False,
    source="Qwen2.5 config.json files on the Hugging Face Hub",
)
FAMILIES: dict[str, Family] = {f.name: f for f in (LLAMA, QWEN2)}
"""Supported families, by name."""

DEFAULT_MAX_POSITIONS = 2048
"""RoPE context of from-scratch models: the SIMS context length (arXiv 2504.02398)."""

UNITS_ONLY_VOCAB_SIZE = 502
"""Textless units-only vocabulary: 500 mHuBERT-25Hz units + <speech> + <text>."""

MINI_VOCAB_SIZE = 512
"""Nominal vocabulary of the miniature presets; builders pass the real tokenizer's size."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class Preset:
    """A named architecture."""

    name: str
    """Lower-case preset name, e.g. ``"qwen2.5-0.5b"``."""
    arch: Architecture
    """The shape, with the preset's own vocabulary."""
    family: Family | None
    """The family the preset belongs to; None for generic shapes usable with any family."""
    hub_id: str | None
    """The Hugging Face Hub model whose config.json the preset reproduces; None otherwise."""
    source: str
    """Where the numbers come from."""


_HUB_IDS = {
    "qwen2.5-0.5b": "Qwen/Qwen2.5-0.5B",
    "qwen2.5-1.5b": "Qwen/Qwen2.5-1.5B",
    "qwen2.5-3b": "Qwen/Qwen2.5-3B",
    "qwen2.5-7b": "Qwen/Qwen2.5-7B",
    "llama-3.2-1b": "meta-llama/Llama-3.2-1B",
    "llama-3.2-3b": "meta-llama/Llama-3.2-3B",
}
_CM = (
    "Cuervo & Marxer, EMNLP 2024 (layers x width); heads of width 64, full multi-head "
    "attention and the Llama reference MLP rule (8/3 d rounded up to 256) are our choice"
)
_MINI = (
    "miniature CPU shape for the offline demo: resolve_architecture('llama', <size>) "
    "frozen here (mini-25k, below the sizing range: the smallest 2-layer shape)"
)
_MINI4 = (
    "miniature CPU shape, 4 layers: word identity from units takes a layer or two before a "
    "story can be followed, which 2-layer shapes of the same size could not learn from speech "
    "at the demo's budgets; full multi-head attention, heads of width 12-16, MLP width "
    "2.3-2.75 d chosen so the name's size holds within 3%"
)
_U, _M = UNITS_ONLY_VOCAB_SIZE, MINI_VOCAB_SIZE
_Row = tuple[str, Family | None, int, int, int, int, int, int, bool, int | None]

# name, family, layers, width, heads, kv heads, MLP width, vocab, tied embeddings, head_dim
_ROWS: tuple[_Row, ...] = (
    ("qwen2.5-0.5b", QWEN2, 24, 896, 14, 2, 4864, 151936, True, None),
    ("qwen2.5-1.5b", QWEN2, 28, 1536, 12, 2, 8960, 151936, True, None),
    ("qwen2.5-3b", QWEN2, 36, 2048, 16, 2, 11008, 151936, True, None),
    ("qwen2.5-7b", QWEN2, 28, 3584, 28, 4, 18944, 152064, False, None),
    ("llama-3.2-1b", LLAMA, 16, 2048, 32, 8, 8192, 128256, True, 64),
    ("llama-3.2-3b", LLAMA, 28, 3072, 24, 8, 8192, 128256, True, 128),
    ("cm-20m", None, 6, 512, 8, 8, 1536, _U, False, None),
    ("cm-85m", None, 12, 768, 12, 12, 2048, _U, False, None),
    ("cm-155m", None, 12, 1024, 16, 16, 2816, _U, False, None),
    ("cm-309m", None, 24, 1024, 16, 16, 2816, _U, False, None),
    ("cm-823m", None, 16, 2048, 32, 32, 5632, _U, False, None),
    ("mini-25k", None, 2, 32, 2, 1, 96, _M, True, None),
    ("mini-50k", None, 2, 48, 3, 1, 128, _M, True, None),
    ("mini-100k", None, 2, 64, 4, 1, 208, _M, True, None),
    ("mini-200k", None, 2, 96, 6, 1, 272, _M, True, None),
    ("mini-400k", None, 3, 112, 7, 1, 312, _M, True, None),
    ("mini4-25k", None, 4, 24, 2, 2, 56, _M, True, None),
    ("mini4-50k", None, 4, 32, 2, 2, 88, _M, True, None),
    ("mini4-80k", None, 4, 40, 2, 2, 112, _M, True, None),
    ("mini4-100k", None, 4, 48, 3, 3, 112, _M, True, None),
    ("mini4-150k", None, 4, 56, 4, 4, 144, _M, True, None),
    ("mini4-200k", None, 4, 64, 4, 4, 176, _M, True, None),
    ("mini4-300k", None, 4, 80, 5, 5, 208, _M, True, None),
    ("mini4-450k", None, 4, 96, 6, 6, 256, _M, True, None),
)


def _arch(
    layers: int,
    width: int,
    heads: int,
    kv: int,
    ffn: int,
    vocab: int,
    tied: bool,
    head_dim: int | None,
) -> Architecture:
    return Architecture(
        num_layers=layers,
        hidden_size=width,
        num_heads=heads,
        num_kv_heads=kv,
        intermediate_size=ffn,
        vocab_size=vocab,
        tie_embeddings=tied,
        head_dim=head_dim,
    )


def _source(name: str) -> str:
    if name in _HUB_IDS:  # the published config.json, reproduced field by field
        return f"config.json of {_HUB_IDS[name]} on the Hugging Face Hub"
    if name.startswith("mini4-"):
        return _MINI4
    return _CM if name.startswith("cm-") else _MINI


_PRESETS = tuple(
    Preset(
        name=row[0],
        family=row[1],
        hub_id=_HUB_IDS.get(row[0]),
        source=_source(row[0]),
        arch=_arch(*row[2:]),
    )
    for row in _ROWS
)
_BY_NAME = {p.name: p for p in _PRESETS}


def get_family(name: str) -> Family:
    """The :class:`Family` called ``name``; ConfigError naming the known ones otherwise."""
    family = FAMILIES.get(name)
    if family is None:
        raise ConfigError(f"unknown model family {name!r}; choose one of {', '.join(FAMILIES)}")
    return family


def get_preset(name: str) -> Preset:
    """The preset called ``name`` (case-insensitive); ConfigError naming the presets otherwise."""
    preset = _BY_NAME.get(name.strip().lower())
    if preset is None:
        raise ConfigError(f"unknown preset {name!r}; presets: {', '.join(_BY_NAME)}")
    return preset


def list_presets(family: str | None = None) -> list[Preset]:
    """Presets usable with ``family`` (its own and the generic shapes), or all presets."""
    if family is None:
        return list(_PRESETS)
    own = get_family(family)
    return [p for p in _PRESETS if p.family in (None, own)]


def config_fields(
    family: str,
    arch: Architecture,
    vocab_size: int | None = None,
    max_position_embeddings: int = DEFAULT_MAX_POSITIONS,
) -> dict[str, Any]:
    """The fields of :func:`hf_config` as a plain dict with ``model_type`` (no transformers
    import: accounting reads these attributes without building a config object)."""
    own = get_family(family)
    fields: dict[str, Any] = dict(
        model_type=own.name,
        vocab_size=arch.vocab_size if vocab_size is None else vocab_size,
        hidden_size=arch.hidden_size,
        intermediate_size=arch.intermediate_size,
        num_hidden_layers=arch.num_layers,
        num_attention_heads=arch.num_heads,
        num_key_value_heads=arch.num_kv_heads,
        max_position_embeddings=max_position_embeddings,
        rms_norm_eps=own.rms_norm_eps,
        tie_word_embeddings=arch.tie_embeddings,
        rope_parameters={"rope_type": "default", "rope_theta": own.rope_theta},
        bos_token_id=None,
        eos_token_id=None,
        pad_token_id=None,
    )
    if fields["vocab_size"] <= 0:
        raise ConfigError(f"vocab_size = {vocab_size!r}: must be a positive integer")
    if own.explicit_head_dim:
        fields |= dict(head_dim=arch.resolved_head_dim, attention_bias=False, mlp_bias=False)
    elif arch.head_dim is not None and arch.head_dim * arch.num_heads != arch.hidden_size:
        raise ConfigError(
            f"arch.head_dim = {arch.head_dim}: the {own.name} family needs "
            f"head_dim * num_heads == hidden_size ({arch.hidden_size})"
        )
    return fields


def hf_config(
    family: str,
    arch: Architecture,
    vocab_size: int | None = None,
    max_position_embeddings: int = DEFAULT_MAX_POSITIONS,
) -> PretrainedConfig:
    """The ``transformers`` config of a from-scratch ``family`` model of shape ``arch``.

    ``vocab_size`` overrides ``arch.vocab_size`` (e.g. after adding 500 units + 2 modality
    tokens). Token ids (bos/eos/pad) are left unset: they belong to the tokenizer.
    """
    import transformers

    fields = config_fields(family, arch, vocab_size, max_position_embeddings)
    config_class = getattr(transformers, get_family(fields.pop("model_type")).config_class)
    return config_class(**fields)


def non_embedding_params(family: str, arch: Architecture) -> int:
    """Parameters outside the embedding and LM-head matrices (norms and biases included)."""
    own = get_family(family)
    d, hd = arch.hidden_size, arch.resolved_head_dim
    q_width, kv_width = arch.num_heads * hd, arch.num_kv_heads * hd
    attention = 2 * d * q_width + 2 * d * kv_width
    if own.qkv_bias:
        attention += q_width + 2 * kv_width
    per_layer = attention + 3 * d * arch.intermediate_size + 2 * d  # + two RMSNorm weights
    return arch.num_layers * per_layer + d  # + final RMSNorm


# ----------------------------------------------------------------------------- sizing rules

_SUFFIXES = {"": 1.0, "k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9, "t": 1e12}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?(?:e\d+)?)\s*([kmbgt]?)\s*$", re.IGNORECASE)
MIN_TARGET, MAX_TARGET = 50e3, 2e11
"""Non-embedding parameter targets :func:`resolve_architecture` can size."""
SIZE_TOLERANCE = 0.02
"""Largest relative gap between a sized model's non-embedding N and its target."""


def parse_size(size: str) -> float:
    """``"85M"`` → 85e6, ``"1.5B"`` → 1.5e9, ``"300k"`` → 3e5; ConfigError otherwise."""
    match = _SIZE_RE.match(size)
    if not match:
        raise ConfigError(
            f"size {size!r} is neither a preset nor a parameter count like "
            f"'85M' or '1.5B'; presets: {', '.join(_BY_NAME)}"
        )
    return float(match.group(1)) * _SUFFIXES[match.group(2).lower()]


def target_aspect_ratio(n_params: float) -> float:
    """Width/depth d/L aimed at for N non-embedding parameters: 64·(N/1e8)^0.1 in [16, 128].

    64 at 100M (GPT-3 Small 768/12, Pythia-160M, Cuervo & Marxer 85M), rising towards 128
    at ~10B (GPT-3 6.7B and Llama-2 13B). Kaplan et al. 2020 (Fig. 5) find loss within a few
    percent over aspect ratios 20–200 at fixed N, so this is a convention, not a tuned value.
    """
    return min(128.0, max(16.0, 64.0 * (n_params / 1e8) ** 0.1))


def head_dim_for(width: int) -> int:
    """Head width: 16 below width 256 (miniatures), 64 up to 2048, 128 above (Llama 3)."""
    return 16 if width < 256 else 64 if width <= 2048 else 128


def kv_heads_for(num_heads: int) -> int:
    """Grouped-query attention with 4 query heads per KV head (Llama-3 8B, Llama-3.2-1B);
    when 4 does not divide the heads, the largest divisor at most num_heads / 4, at least 1."""
    return max(k for k in range(1, max(1, num_heads // 4) + 1) if num_heads % k == 0)


def mlp_multiple(width: int) -> int:
    """MLP width granularity: the Llama reference code's 256, or width/2 for narrow models."""
    return min(256, width // 2)


def standard_mlp_width(width: int) -> int:
    """8/3·d rounded up to :func:`mlp_multiple` (Llama reference implementation)."""
    m = mlp_multiple(width)
    return m * math.ceil(8 * width / 3 / m)


def _widths() -> list[int]:
    """Candidate widths: multiples of 16 for miniatures, then of 4 heads (256, 512 from 2048)
    so that grouped-query attention keeps 4 query heads per KV head."""
    return [*range(32, 256, 16), *range(256, 2049, 256), *range(2560, 16385, 512)]


def _shape(width: int, layers: int, ffn: int, vocab: int) -> Architecture:
    heads = width // head_dim_for(width)
    return _arch(layers, width, heads, kv_heads_for(heads), ffn, vocab, True, None)


@functools.cache
def _fixed_per_layer(family: str, width: int) -> int:
    """Non-embedding parameters of one layer of ``width`` outside its MLP (attention, norms)."""
    step = 8
    one_layer = non_embedding_params(family, _shape(width, 1, step, 1))
    return one_layer - 3 * width * step - width  # minus the MLP and the final norm


def _best_ffn(family: str, width: int, layers: int, target: float) -> int | None:
    """The MLP width in [2d, 4d] (a multiple of 8, or of 64 from width 256) nearest the
    standard one whose N is within SIZE_TOLERANCE of target; None when there is none."""
    step = 8 if width < 256 else 64
    fixed = layers * _fixed_per_layer(family, width) + width
    per_unit = 3 * width * layers  # N grows by this per unit of MLP width
    lo = math.ceil(max(2 * width, (target * (1 - SIZE_TOLERANCE) - fixed) / per_unit) / step)
    hi = math.floor(min(4 * width, (target * (1 + SIZE_TOLERANCE) - fixed) / per_unit) / step)
    if lo > hi:
        return None
    std = standard_mlp_width(width)
    # std is a multiple of step, so clamping it gives the allowed width nearest to it.
    return min(max(std, lo * step), hi * step)


def size_architecture(family: str, n_params_non_embedding: float, vocab_size: int) -> Architecture:
    """The shape closest to the rules whose non-embedding N is within 2% of the target.

    Over widths from :func:`_widths` and depths 2–160, with the MLP width in [2d, 4d] nearest
    the standard one that hits the target, minimise
    |log(d/L / target_aspect_ratio)| + |log(f / standard f)| + 10·|log(N / target)|.
    """
    target = n_params_non_embedding
    if not MIN_TARGET <= target <= MAX_TARGET:
        raise ConfigError(
            f"size {target:.3g} non-embedding parameters is outside the range "
            f"{MIN_TARGET:.0e}..{MAX_TARGET:.0e} that can be sized; use a preset"
        )
    candidates = [
        _shape(width, layers, ffn, vocab_size)
        for width, layers, ffn in _fitting_shapes(family, target)
    ]
    if not candidates:
        raise ConfigError(
            f"no {family} shape has {target:.3g} non-embedding parameters "
            f"within {SIZE_TOLERANCE:.0%}; choose a nearby size or a preset"
        )
    return min(candidates, key=lambda arch: _shape_cost(family, arch, target))


@functools.lru_cache(maxsize=1024)
def _fitting_shapes(family: str, target: float) -> tuple[tuple[int, int, int], ...]:
    """(width, layers, MLP width) of every candidate within SIZE_TOLERANCE of ``target``."""
    return tuple(
        (width, layers, ffn)
        for width in _widths()
        for layers in range(2, 161)
        if (ffn := _best_ffn(family, width, layers, target)) is not None
    )


def _shape_cost(family: str, arch: Architecture, target: float) -> float:
    aspect = arch.hidden_size / arch.num_layers / target_aspect_ratio(target)
    mlp = arch.intermediate_size / standard_mlp_width(arch.hidden_size)
    miss = non_embedding_params(family, arch) / target
    return abs(math.log(aspect)) + abs(math.log(mlp)) + 10 * abs(math.log(miss))


def resolve_architecture(family: str, size: str, vocab_size: int | None = None) -> Architecture:
    """The architecture of ``size`` in ``family``: a preset name, or a target for N *without*
    embeddings (e.g. ``"85M"``); ``vocab_size`` replaces the preset's (default for targets:
    the units-only vocabulary)."""
    own = get_family(family)
    preset = _BY_NAME.get(size.strip().lower())
    if preset is not None:
        if preset.family is not None and preset.family != own:
            raise ConfigError(
                f"size {size!r} is a {preset.family.name} preset, not a {family} one; "
                f"presets for {family}: "
                f"{', '.join(p.name for p in list_presets(family))}"
            )
        arch = preset.arch
        return arch if vocab_size is None else dataclasses.replace(arch, vocab_size=vocab_size)
    target = parse_size(size)
    return size_architecture(family, target, vocab_size or UNITS_ONLY_VOCAB_SIZE)
