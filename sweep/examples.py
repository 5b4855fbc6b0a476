"""The shipped example grids, as Python functions (their YAML twins live in ``grids/``).

* :func:`mini_cpu`: the study in miniature for one CPU machine — four tiny Llama shapes at two
  IsoFLOP budgets, textless (units-only vocabulary, from scratch) vs interleaved (from a tiny
  TextLM pretrained on the miniature world's text).
* :func:`sims_paper`: a SIMS-like grid (Maimon et al. 2025, arXiv 2504.02398): Qwen2.5
  0.5B–7B and Llama-3.2 1B/3B TextLM initialisations, textless vs interleaved, IsoFLOP budgets
  from 2e18 to 7e20 FLOPs with the SIMS training recipe.

``slscale grid show mini-cpu`` prints the YAML; a test checks that each YAML file equals its
function, so either can be edited as the source of truth only together with the other.
"""

from __future__ import annotations

from slscale.models.families import get_preset
from slscale.sweep.generators import isoflop_grid
from slscale.sweep.grid import GridSpec

# Equal token shares of the three streams, the goal SlamKit's hand-set sample ratios
# (0.202 / 0.543 / 0.254) approximate; here the shares are token shares, met from the data.
EQUAL_STREAMS = {"text_share": 0.334, "interleaved_share": 0.333, "speech_share": 0.333}

MINI_SIZES = ("mini-25k", "mini-50k", "mini-100k", "mini-200k")


def mini_cpu() -> GridSpec:
    """16 runs: 4 sizes × 2 budgets × {textless, interleaved}, minutes on two CPU cores."""
    recipe = {
        "context_length": 128,
        "global_batch_size": 16,
        "lr": 3e-3,
        "lr_min": 3e-4,
        "warmup_fraction": 0.05,
    }
    arms = [
        {"modality": "textless", "init": "scratch", "units_only_vocab": True},
        {"modality": "interleaved", "init": "textlm-{size}", "mix": dict(EQUAL_STREAMS)},
    ]
    return GridSpec(
        name="mini-cpu",
        description="The scaling study in miniature on the offline synthetic world (CPU).",
        base={"family": "llama", "recipe": recipe, "mix": {"dataset": "mini"}},
        axes={"arm": arms},
        generators=[isoflop_grid([3e11, 1e12], MINI_SIZES, tolerance=0.1, min_tokens_per_param=1)],
    )


SIMS_MODELS = (
    "qwen2.5-0.5b",
    "qwen2.5-1.5b",
    "qwen2.5-3b",
    "qwen2.5-7b",
    "llama-3.2-1b",
    "llama-3.2-3b",
)
"""The TextLM inits of the SIMS grid: presets of published configs."""
SIMS_BUDGETS = (2e18, 6e18, 2e19, 6e19, 2e20, 7e20)


def _textlm_init(preset_name: str) -> dict[str, str | None]:
    """A model axis entry initialised from a published TextLM: its preset's family, the preset
    and the Hugging Face Hub id whose config.json it reproduces."""
    preset = get_preset(preset_name)
    family = preset.family.name if preset.family else None
    return {"family": family, "size": preset.name, "init": preset.hub_id}


def sims_paper() -> GridSpec:
    """TextLM-initialised SLMs (TWIST init for both arms), textless vs interleaved."""
    models = [_textlm_init(name) for name in SIMS_MODELS]
    arms = [
        {"modality": "textless", "mix": {"speech_share": 1.0}},
        {"modality": "interleaved", "mix": dict(EQUAL_STREAMS)},
    ]
    return GridSpec(
        name="sims-paper",
        description="SIMS-like grid: Qwen2.5 0.5B-7B and Llama-3.2 1B/3B inits, 2e18-7e20 FLOPs.",
        base={"mix": {"dataset": "sims"}},
        axes={"model": models, "arm": arms},
        generators=[
            isoflop_grid(
                SIMS_BUDGETS, tolerance=0.05, min_tokens_per_param=2, max_tokens_per_param=500
            )
        ],
    )


EXAMPLES = {"mini-cpu": mini_cpu, "sims-paper": sims_paper}
