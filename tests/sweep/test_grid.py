"""Grid expansion, generators and YAML round-trips (independent of model families)."""

import pytest

from slscale.errors import ConfigError
from slscale.identity import run_id
from slscale.spec import Modality
from slscale.sweep.generators import isoflop_grid, ratio_grid
from slscale.sweep.grid import GridSpec, expand
from slscale.sweep.io import grid_to_yaml, load_grid

SIZES = {"s1": 1_000_000, "s2": 2_000_000, "s4": 4_000_000}


def counter(partial):
    n = SIZES[partial["size"]]
    return {"n_params": n, "n_params_non_embedding": n // 2}


BASE = {
    "family": "llama",
    "modality": "textless",
    "recipe": {"global_batch_size": 4, "context_length": 250},
}  # 1,000 tokens per step


def test_ratio_grid_gives_sizes_times_ratios():
    grid = GridSpec(name="r", base=BASE, generators=[ratio_grid(["s1", "s2"], [2, 20])])
    runs = expand(grid, counter)
    assert [(r.size, r.tokens) for r in runs] == [
        ("s1", 2_000_000),
        ("s1", 20_000_000),
        ("s2", 4_000_000),
        ("s2", 40_000_000),
    ]


def test_isoflop_grid_keeps_cells_within_tolerance_and_ratio_bounds():
    # C = 6ND: at 1.2e14, s1 -> D = 2e7 (D/N 20), s2 -> 1e7 (5), s4 -> 5e6 (1.25).
    gen = isoflop_grid([1.2e14], ["s1", "s2", "s4"], tolerance=0.01, min_tokens_per_param=2)
    runs = expand(GridSpec(name="i", base=BASE, generators=[gen]), counter)
    assert [(r.size, r.tokens) for r in runs] == [("s1", 20_000_000), ("s2", 10_000_000)]
    for r in runs:
        assert abs(6 * SIZES[r.size] * r.tokens - 1.2e14) <= 0.01 * 1.2e14


def test_isoflop_rounding_to_steps_can_drop_a_cell():
    # s4 at 1e10: D = 416.7 tokens -> one step of 1,000 tokens -> 6ND = 2.4e10, 140% off.
    gen = isoflop_grid([1e10], ["s4"], tolerance=0.05, min_tokens_per_param=0)
    with pytest.raises(ConfigError, match="expands to no runs"):
        expand(GridSpec(name="i", base=BASE, generators=[gen]), counter)


def test_cartesian_axes_bundles_and_templates():
    grid = GridSpec(
        name="arms",
        base=BASE,
        axes={
            "seed": [0, 1],
            "arm": [
                {"modality": "textless"},
                {
                    "modality": "interleaved",
                    "init": "textlm-{size}",
                    "mix": {"text_share": 0.2, "interleaved_share": 0.6, "speech_share": 0.2},
                },
            ],
        },
        generators=[ratio_grid(["s1"], [10])],
    )
    runs = expand(grid, counter)
    assert len(runs) == 4
    inter = [r for r in runs if r.modality is Modality.INTERLEAVED]
    assert {r.init for r in inter} == {"textlm-s1"}
    assert {r.seed for r in inter} == {0, 1}
    assert len({run_id(r) for r in runs}) == 4


def test_generator_without_sizes_uses_the_runs_own_size():
    grid = GridSpec(
        name="own",
        base={**BASE, "size": "s2"},
        generators=[{"ratio_grid": {"tokens_per_param": [3]}}],
    )
    assert [(r.size, r.tokens) for r in expand(grid, counter)] == [("s2", 6_000_000)]


def test_duplicate_cells_are_kept_once():
    grid = GridSpec(
        name="dup",
        base=BASE,
        generators=[
            ratio_grid(["s1"], [2]),
            {"cells": {"cells": [{"size": "s1", "tokens": 2_000_000}]}},
        ],
    )
    assert len(expand(grid, counter)) == 1


def test_yaml_round_trip(tmp_path):
    grid = GridSpec(
        name="rt",
        description="round trip",
        base=BASE,
        axes={"recipe.lr": [1e-3, 3e-4]},
        generators=[isoflop_grid([1e14, 3e14], ["s1", "s2"], tolerance=0.5)],
    )
    path = tmp_path / "g.yaml"
    path.write_text(grid_to_yaml(grid))
    again = load_grid(path)
    assert again == grid
    assert [run_id(r) for r in expand(again, counter)] == [run_id(r) for r in expand(grid, counter)]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name: x\nbase: {family: llama\n", r"g\.yaml: line \d+, column \d+"),
        ("name: x\nbase: {}\nbogus: 1\n", "unknown key 'bogus'"),
        ("name: x\nbase: {}\naxes: {arm: [1, 2]}\n", "axis 'arm' is not a RunSpec field"),
        ("name: x\nbase: {}\ngenerators: [{magic_grid: {}}]\n", "unknown generator 'magic_grid'"),
        (
            "name: x\nbase: {family: llama, modality: textless, size: s1}\n"
            "generators: [{isoflop_grid: {budgets: [-1e12]}}]\n",
            r"g\.yaml: grid 'x'.*budgets = '-1e12'",
        ),
        (
            "name: x\nbase: {family: llama, modality: textless, size: s1}\n"
            "generators: [{isoflop_grid: {budgets: [0]}}]\n",
            "budgets = 0",
        ),
    ],
)
def test_bad_grid_files_name_file_and_field(tmp_path, text, message):
    path = tmp_path / "g.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        expand(load_grid(path), counter)


def test_missing_grid_file(tmp_path):
    with pytest.raises(ConfigError, match="no such grid file"):
        load_grid(tmp_path / "absent.yaml")


def test_shipped_yaml_grids_equal_their_functions():
    from slscale.sweep.examples import EXAMPLES
    from slscale.sweep.io import shipped_grids

    assert set(shipped_grids()) == set(EXAMPLES)
    for name, make in EXAMPLES.items():
        assert load_grid(name) == make(), f"sweep/grids/{name}.yaml differs from {make.__name__}"
        assert load_grid(f"slscale.sweep.examples:{make.__name__}") == make()


def _checkpoint(folder, **fields):
    """A real Llama checkpoint folder (save_pretrained of a small config)."""
    import transformers

    shape = dict(
        num_hidden_layers=2,
        hidden_size=64,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=160,
        vocab_size=300,
        tie_word_embeddings=True,
    )
    config = transformers.LlamaConfig(**{**shape, **fields})
    transformers.LlamaForCausalLM(config).save_pretrained(folder)
    return folder


def _init_grid(init, family="llama"):
    return GridSpec(
        name="from-folder",
        base={"family": family, "modality": "interleaved", "init": str(init)},
        axes={"tokens": [4096, 8192]},
    )


def test_an_init_folder_without_size_or_arch_gives_its_config_architecture(tmp_path):
    folder = _checkpoint(tmp_path / "lm")
    specs = expand(_init_grid(folder), counter)
    assert len(specs) == 2
    for spec in specs:
        assert spec.size is None and spec.arch is not None
        arch = spec.arch
        assert (arch.num_layers, arch.hidden_size, arch.num_heads, arch.num_kv_heads) == (
            2,
            64,
            4,
            2,
        )
        assert (arch.intermediate_size, arch.vocab_size, arch.tie_embeddings) == (160, 300, True)
        assert arch.head_dim is None
    # The run id hashes the architecture: another shape in the same folder is another run.
    other = _checkpoint(tmp_path / "lm2", intermediate_size=192)
    moved = expand(_init_grid(other), counter)
    assert moved[0].arch.intermediate_size == 192
    assert {run_id(s) for s in specs}.isdisjoint(run_id(s) for s in moved)


def test_an_init_folder_of_another_family_or_without_config_is_named(tmp_path):
    folder = _checkpoint(tmp_path / "lm")
    with pytest.raises(ConfigError, match=r"'llama' model but the run says family 'qwen2'"):
        expand(_init_grid(folder, family="qwen2"), counter)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConfigError, match=r"from-folder.*empty.*no config.json.*'size' or 'arch'"):
        expand(_init_grid(empty), counter)
