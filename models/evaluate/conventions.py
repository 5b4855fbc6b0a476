"""Scoring conventions of likelihood evaluations, and the name each result is recorded under.

Papers score minimal pairs differently, and the numbers are not comparable across conventions:

* SlamKit (Maimon et al. 2025): mean NLL over the whole sequence, prompt included
  (``nll=mean,span=sequence``).
* Cuervo & Marxer (EMNLP 2024): mean NLL of the continuation only
  (``nll=mean,span=continuation``).
* Summed NLL (``nll=sum``) is the plain sequence likelihood; for continuations of equal length
  it orders pairs like the mean.
* ``softmax=speech`` / ``softmax=text`` renormalises the next-token distribution over one
  modality's tokens and scores only the positions whose target is such a token (the modality
  markers and the other modality's tokens drop out); ``softmax=full`` uses the whole vocabulary.

The first scored position is 1 (token 0 has no prediction); "continuation" starts at the
continuation's first token (a modality marker before it belongs to the prompt).
"""

from __future__ import annotations

import dataclasses

from slscale.errors import ConfigError

REDUCTIONS = ("mean", "sum")
SPANS = ("sequence", "continuation")
SOFTMAXES = ("full", "speech", "text")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Convention:
    """How a candidate's log-likelihood becomes one score (lower NLL wins)."""

    reduction: str = "mean"
    """mean | sum of the per-token NLL."""
    span: str = "sequence"
    """sequence (prompt + continuation, SlamKit) | continuation (Cuervo & Marxer)."""
    softmax: str = "full"
    """full | speech | text: the tokens the next-token distribution is normalised over."""

    def __post_init__(self) -> None:
        for field, allowed in (("reduction", REDUCTIONS), ("span", SPANS), ("softmax", SOFTMAXES)):
            value = getattr(self, field)
            if value not in allowed:
                raise ConfigError(
                    f"convention field '{field}' = {value!r}: must be one of {', '.join(allowed)}"
                )

    @property
    def name(self) -> str:
        """The string stored with every result, e.g. ``nll=mean,span=sequence,softmax=full``."""
        return f"nll={self.reduction},span={self.span},softmax={self.softmax}"

    @classmethod
    def parse(cls, text: str) -> Convention:
        """Inverse of :attr:`name`; also accepts the presets ``slamkit`` and ``cuervo-marxer``."""
        preset = PRESETS.get(text.strip().lower())
        if preset is not None:
            return preset
        keys = {"nll": "reduction", "span": "span", "softmax": "softmax"}
        fields: dict[str, str] = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            key, sep, value = part.partition("=")
            if not sep or key.strip() not in keys:
                raise ConfigError(
                    f"convention {text!r}: expected comma-separated nll=mean|sum, "
                    "span=sequence|continuation, softmax=full|speech|text, or a preset "
                    f"({', '.join(PRESETS)})"
                )
            fields[keys[key.strip()]] = value.strip()
        return cls(**fields)


SLAMKIT = Convention(reduction="mean", span="sequence")
CUERVO_MARXER = Convention(reduction="mean", span="continuation")
PRESETS = {"slamkit": SLAMKIT, "cuervo-marxer": CUERVO_MARXER}
