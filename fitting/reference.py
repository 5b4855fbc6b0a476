"""Published scaling laws shipped as data, with citations.

Each ``reference/<name>.json`` is a :class:`~slscale.fitting.results.FitResult` with
``method="reference"`` and the citation in ``source``, so baselines are drawn and compared
exactly like fresh fits:

* ``chinchilla_hoffmann2022`` / ``chinchilla_epoch2024``: text Approach 3 as published and as
  refitted by Besiroglu et al. 2024;
* ``textless_cuervo_marxer2024`` / ``text_muennighoff2023``: the speech-unit and text laws of
  Cuervo & Marxer 2024, Table 5;
* ``sims2025_{interleaved,textless,pythia}_{ssc,tsc}``: the metric laws Q = a·C^b of SIMS
  Fig. 1;
* ``cuervo_marxer2024_textless_{sblimp,tsc,ssc}`` / ``cuervo_marxer2024_pythia_{blimp,tsc,ssc}``:
  the exponents γ_q of Q ∝ C^γ_q from Cuervo & Marxer 2024, Table 4. The paper publishes no
  prefactor, so ``a`` is NaN (``predict_metric`` gives NaN) and a warning says so; the
  exponents still give score ratios (C2/C1)^b and, through :func:`compare_arms`, the paper's
  text-over-speech ratios (BLIMP 3.14, tSC 1.56, sSC 2.7; Section 4.3.1).
"""

from __future__ import annotations

from importlib import resources

from slscale.errors import ConfigError
from slscale.fitting.results import FitResult


def list_references() -> list[str]:
    """Names of the shipped reference laws."""
    folder = resources.files("slscale.fitting") / "reference"
    return sorted(p.name[: -len(".json")] for p in folder.iterdir() if p.name.endswith(".json"))


def load_reference(name: str) -> FitResult:
    """The reference law ``name`` (see :func:`list_references`)."""
    names = list_references()
    if name not in names:
        raise ConfigError(f"unknown reference law {name!r}; available: {', '.join(names)}")
    path = resources.files("slscale.fitting") / "reference" / f"{name}.json"
    return FitResult.from_json(path.read_text(encoding="utf-8"), source=f"reference {name}")
