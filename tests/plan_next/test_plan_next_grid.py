"""The grid side of planning (slscale.workflows.plan_next): the arm's base, sizes, candidate
cells, the written grid and the nearest buildable model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from plan_next_helpers import STEP_TOKENS, spec, study_cells, write_study

from slscale.errors import ConfigError
from slscale.models import families
from slscale.spec import Modality
from slscale.store import open_store
from slscale.sweep.grid import expand
from slscale.sweep.io import load_grid
from slscale.sweep.plan import param_counts
from slscale.workflows import plan_next


def _frame(workdir) -> pd.DataFrame:
    with open_store(workdir) as store:
        frame = store.runs_frame()
    return frame[frame["state"] == "SUCCEEDED"]


@pytest.fixture(scope="module")
def two_arms(tmp_path_factory):
    """One store with a textless and an interleaved arm (TextLM init named after the size)."""
    workdir = tmp_path_factory.mktemp("arms")
    cells = study_cells()[:8]
    write_study(workdir, cells=cells, pending=False)
    write_study(workdir, cells=cells, modality="interleaved", pending=False)
    return _frame(workdir)


def test_base_of_one_arm(two_arms):
    textless = plan_next.arm_from_runs(two_arms[two_arms["modality"] == "textless"], "store")
    assert dict(textless.base) == {
        "family": "llama",
        "modality": "textless",
        "recipe": {"context_length": 128, "global_batch_size": 8},
        "seed": 0,
        "units_only_vocab": True,
    }
    assert textless.tokens_per_step == STEP_TOKENS
    interleaved = plan_next.arm_from_runs(two_arms[two_arms["modality"] == "interleaved"], "s")
    assert interleaved.base["init"] == "textlm-{size}"
    assert interleaved.spec("12M", 4096).init == "textlm-12M"
    assert interleaved.base["mix"]["interleaved_share"] == 0.4


def test_init_template_needs_every_run(two_arms):
    runs = two_arms[two_arms["modality"] == "interleaved"].copy()
    runs.loc[runs.index[0], "init"] = "scratch"  # one run not initialised from its TextLM
    with pytest.raises(ConfigError, match="differ in 'init'"):
        plan_next.arm_from_runs(runs, "store")


def test_runs_of_two_arms_are_refused(two_arms):
    with pytest.raises(ConfigError, match=r"differ in 'modality' \('interleaved', 'textless'\)"):
        plan_next.arm_from_runs(two_arms, "store x")


def test_mixed_seeds_keep_the_most_common(two_arms):
    runs = two_arms[two_arms["modality"] == "textless"].copy()
    runs["seed"] = [0, 0, 0, 1, 2, 0, 0, 0]
    arm = plan_next.arm_from_runs(runs, "store")
    assert arm.base["seed"] == 0 and "seeds [0, 1, 2]" in arm.notes[0]


def test_base_from_a_grid_with_two_arms(tmp_path):
    grid = load_grid("mini-cpu")
    with pytest.raises(ConfigError, match="differ in"):
        plan_next.arm_from_grid("mini-cpu", [])
    arm = plan_next.arm_from_grid("mini-cpu", ["modality=interleaved"])
    assert arm.base["init"] == "textlm-{size}" and arm.base["family"] == "llama"
    assert arm.base["recipe"].items() >= dict(grid.base["recipe"]).items()  # defaults spelt out
    with pytest.raises(ConfigError, match="no run matches"):
        plan_next.arm_from_grid("mini-cpu", ["modality=text"])


def test_candidate_cells_are_whole_steps_in_the_ratio_range():
    base = {k: v for k, v in spec("1M", 1024).items() if k not in ("size", "tokens")}
    arm = plan_next.Arm(base=base, source="test")
    sizes = plan_next.size_table(arm, ["1M", "4M", "16M"], "total")
    levels = plan_next.flops_levels(1e15, 1e17, 4)
    assert levels[0] == pytest.approx(1e15) and levels[-1] == pytest.approx(1e17)
    assert np.allclose(np.diff(np.log10(levels)), 0.25)
    done = (sizes["n_fit"].to_numpy()[:1], np.array([1e15 / 6 / sizes["n_params"].iloc[0]]))
    cells = plan_next.candidate_cells(
        sizes,
        levels,
        tokens_per_step=STEP_TOKENS,
        tokens_per_param=(2.0, 200.0),
        min_tokens=2e7,
        done=done,
    )
    ratio = cells["tokens"] / cells["n_fit"]
    assert (cells["tokens"] % STEP_TOKENS == 0).all() and (cells["tokens"] >= 2e7 - 1024).all()
    assert ratio.between(2.0, 200.0).all()
    assert np.allclose(cells["flops_6nd"], 6 * cells["n_params"] * cells["tokens"])
    assert np.allclose(cells["flops_6nd"] / cells["level"], 1, atol=0.01)  # rounding only
    first = cells[(cells["size"] == "1M") & np.isclose(cells["level"], 1e15)]
    assert first.empty  # the done run
    assert len(cells) == len(cells.drop_duplicates(["size", "tokens"]))


def test_ladder_and_cheapest_cell():
    np.testing.assert_allclose(plan_next.ladder(2e6, 1e8, 4), 10 ** np.arange(6.5, 8.01, 0.25))
    np.testing.assert_allclose(plan_next.ladder(1e7, 1e7, 8), [1e7])
    assert plan_next.cheapest_flops(1e7, 5e8, 1.0) == 6 * 1e7 * 5e8
    assert plan_next.cheapest_flops(1e9, 5e8, 1.0) == 6 * 1e9 * 1e9  # D/N ≥ 1 binds


def test_unbuildable_size_is_named():
    arm = plan_next.arm_from_family("llama", "textless")
    with pytest.raises(ConfigError, match="--sizes 10: llama cannot build it"):
        plan_next.size_table(arm, ["10"], "total")
    with pytest.raises(ConfigError, match="builds no size between"):
        plan_next.default_ladder(arm, 1e13, 1e14)  # beyond the sizing range and every preset
    smallest = plan_next.default_ladder(arm, 1e2, 1e3)  # none in range: the next one up
    assert len(smallest) == 1 and smallest["n_fit"].iloc[0] > 1e3


def test_default_ladder_is_buildable_and_log_spaced():
    arm = plan_next.arm_from_family("llama", "textless")
    ladder = plan_next.default_ladder(arm, 2e6, 2e8, per_decade=4)
    n = ladder["n_fit"].to_numpy()
    assert n.min() >= 2e6 and n.max() <= 2e8 and np.all(np.diff(n) > 0)
    assert "cm-20m" in set(ladder["size"]) and "cm-85m" in set(ladder["size"])
    targets = ladder[~ladder["size"].str.startswith("cm-")]
    assert len(targets) >= 8  # 4 per decade over two decades
    done = plan_next.default_ladder(arm, 2e6, 2e8, per_decade=4, also=["7.77M", "nope"])
    ran = param_counts({**arm.base, "size": "7.77M"})["n_params"]
    near = set(ladder["size"][np.abs(np.log10(ladder["n_fit"] / ran)) < 1 / 8])
    assert near == {"10M"}  # the rung within an eighth of a decade of the size run
    assert set(done["size"]) == set(ladder["size"]) - near | {"7.77M"}


def test_written_grid_expands_to_the_chosen_cells(tmp_path, two_arms):
    arm = plan_next.arm_from_runs(two_arms[two_arms["modality"] == "interleaved"], "store")
    chosen = pd.DataFrame({"size": ["2M", "5.62M", "cm-20m"], "tokens": [4096, 81920, 1024000]})
    path = tmp_path / "next.yaml"
    grid = plan_next.next_grid(arm, chosen, "next", "three cells")
    assert plan_next.write_grid(grid, str(path)) == 3
    loaded = load_grid(path)
    assert loaded == grid
    specs = expand(loaded, param_counts)
    assert sorted((s.size, s.tokens) for s in specs) == sorted(
        zip(chosen["size"], chosen["tokens"], strict=True)
    )
    assert {s.init for s in specs} == {"textlm-2M", "textlm-5.62M", "textlm-cm-20m"}
    assert all(s.modality == Modality.INTERLEAVED and s.recipe.context_length == 128 for s in specs)


def test_nearest_architecture_is_the_nearest_buildable():
    arm = plan_next.arm_from_family("llama", "textless")
    for convention, key in (("total", "n_params"), ("non_embedding", "n_params_non_embedding")):
        for target in (3.3e6, 4.7e7, 2.2e8):
            best = plan_next.nearest_architecture(arm, target, convention)
            built = param_counts({**arm.base, "size": best["size"]})[key]
            assert built == best["n_fit"]
            miss = abs(np.log(built / target))
            assert miss < np.log(1.02)  # the sizing rule's tolerance
            others = [plan_next.size_label(target * f) for f in (0.97, 0.99, 1.01, 1.03)]
            others += [p.name for p in families.list_presets("llama")]
            for size in others:
                try:
                    n = param_counts({**arm.base, "size": size})[key]
                except ConfigError:
                    continue
                assert miss <= abs(np.log(n / target)) + 1e-12, size
