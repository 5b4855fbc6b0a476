"""Reading a study: canonical benchmark names, final scores, conventions, filters."""

from __future__ import annotations

import pandas as pd
import pytest

from slscale.analysis.matching import trained_alike
from slscale.analysis.study import (
    canonical_benchmark,
    canonical_variant,
    load_study,
    study_from_frames,
    variant_label,
)
from slscale.analysis.tables import Unsupported
from slscale.errors import ConfigError
from slscale.models.evaluate import suite


@pytest.mark.parametrize(
    ("name", "canonical"),
    [("ssc", "sSC"), ("tSC", "tSC"), ("sblimp", "sBLIMP"), ("SWUGGY", "sWUGGY"),
     ("ms_ssc", "MS-sSC"), ("MS-tSC", "MS-tSC"), ("salmon", "salmon")],
)  # fmt: skip
def test_benchmark_names_meet(name, canonical):
    assert canonical_benchmark(name) == canonical


@pytest.mark.parametrize(
    ("name", "canonical"),
    [("S", ("S", False)), ("ss", ("S", False)), ("speech", ("S", False)), ("s-s", ("S", False)),
     ("S2T", ("S2T", False)), ("st", ("S2T", False)), ("S→T", ("S2T", False)),
     ("s-t", ("S2T", False)), ("T2S", ("T2S", False)), ("ts", ("T2S", False)),
     ("t→s", ("T2S", False)), ("tt", ("T", False)), ("t", ("T", False)), ("text", ("T", False)),
     ("ms_ss", ("S", True)), ("prosody", ("prosody", False))],
)  # fmt: skip
def test_variant_names_meet(name, canonical):
    assert canonical_variant(name) == canonical


def test_the_evaluators_spellings_are_kept_as_stored():
    # What `slscale eval` writes (suite.find_manifests) reads back unchanged, so filters on the
    # study and on the store (`slscale fit --variant S2T`) use one spelling.
    for task, benchmark in suite.BENCHMARKS.items():
        assert canonical_benchmark(benchmark) == canonical_benchmark(task) == benchmark
        assert canonical_benchmark(suite.multi_speaker(benchmark)) == f"MS-{benchmark}"
    for variant, codes in suite.VARIANT_CODES.items():
        assert {canonical_variant(v) for v in (variant, *codes)} == {(variant, False)}
    assert suite.VARIANTS == ("S", "S2T", "T2S", "T")
    assert [variant_label(v) for v in suite.VARIANTS] == ["S", "S→T", "T→S", "T"]
    assert variant_label("prosody2") == "prosody2"


def test_runs_table_of_the_synthetic_study(workdir):
    study = load_study(str(workdir), where=["family=llama", "mix.synthetic_share=0"])
    assert study.notes == ("left out 1 run(s) that have not SUCCEEDED",)
    assert study.arms == ["interleaved", "textless"]
    assert len(study.runs) == 47 and len(study.scaling_ids) == 40
    runs = study.runs.set_index("run_id")
    assert ((runs["flops"] / (6 * runs["n_params"] * runs["tokens"]) - 1).abs() < 1e-9).all()
    assert set(runs.loc[runs["arm"] == "textless", "init_name"]) == {"scratch"}
    assert runs.loc[runs["arm"] == "interleaved", "init_name"].str.startswith("textlm-").all()


def test_scores_keep_each_runs_final_step(workdir):
    study = load_study(str(workdir))
    ssc = study.scores[(study.scores["benchmark"] == "sSC") & (study.scores["variant"] == "S")]
    assert ssc["run_id"].is_unique and len(ssc) == 47
    final_step = study.curves.groupby("run_id")["step"].max()
    assert (ssc.set_index("run_id")["step"] == final_step[ssc["run_id"]]).all()
    assert set(study.scores["variant"]) == {"S", "S2T", "T2S", "T"}


def frames(conventions=("nll_all", "nll_continuation", "nll_continuation")):
    runs = pd.DataFrame({
        "run_id": ["a", "b", "c"], "state": ["SUCCEEDED", "SUCCEEDED", "SUCCEEDED"],
        "modality": ["interleaved"] * 3, "tokens": [10, 20, 30], "summary.tokens": [10, 20, 30],
        "n_params": [1.0, 2.0, None], "loss": [3.0, 2.5, 2.0], "flops_6nd": [60.0, 240.0, 0.0],
    })  # fmt: skip
    metrics = pd.DataFrame(columns=["run_id", "step", "tokens", "flops", "name", "value"])
    evals = pd.DataFrame({
        "run_id": ["a", "a", "b"], "step": [5, 5, 7], "benchmark": ["ssc"] * 3,
        "variant": ["ss"] * 3, "value": [0.6, 0.7, 0.8], "n_items": [10] * 3,
        "convention": list(conventions),
    })  # fmt: skip
    return runs, metrics, evals


def test_several_conventions_show_the_most_common_and_say_so():
    study = study_from_frames(*frames())
    assert study.notes[-1] == (
        "scores use several conventions (nll_all, nll_continuation); showing "
        "'nll_continuation' (pick one with --convention)"
    )
    assert study.scores[["run_id", "value"]].values.tolist() == [["a", 0.7], ["b", 0.8]]
    chosen = study_from_frames(*frames(), convention="nll_all")
    assert chosen.scores[["run_id", "value"]].values.tolist() == [["a", 0.6]]


def test_sims_convention_is_shown_first_even_when_rarer():
    sims, cuervo_marxer = "nll=mean,span=sequence,softmax=full", "nll=mean,span=continuation"
    study = study_from_frames(*frames((sims, cuervo_marxer, cuervo_marxer)))
    assert f"showing '{sims}'" in study.notes[-1]
    assert study.scores[["run_id", "value"]].values.tolist() == [["a", 0.6]]


def test_runs_without_a_size_are_left_out_with_a_note():
    study = study_from_frames(*frames())
    assert study.notes[0] == "left out 1 run(s) without n_params/tokens/loss: c"
    assert study.runs["run_id"].tolist() == ["a", "b"]


def test_where_matches_numbers_by_value(workdir):
    study = load_study(str(workdir), where=["mix.synthetic_share=1", "arm=interleaved"])
    assert len(study.scaling_ids) == 2
    with pytest.raises(ConfigError, match=r"no succeeded runs match --where mix.synthetic_share=x"):
        load_study(str(workdir), where=["mix.synthetic_share=x"])


def family_runs() -> pd.DataFrame:
    rows = [
        ("llama", 1e8, 1e9, 0.0),
        ("llama", 2e8, 1e9, 0.0),
        ("qwen2", 1e8, 1.02e9, 0.0),  # within 0.05 dex: the same token count
        ("qwen2", 3e8, 1e9, 0.0),
        ("qwen2", 2e8, 1e9, 0.5),  # an ablation: another data mix
        ("llama", 4e8, 5e9, 0.0),
    ]
    frame = pd.DataFrame(rows, columns=["family", "n_params", "tokens", "mix.synthetic_share"])
    run_ids = [f"r{i}" for i in range(len(rows))]
    return frame.assign(run_id=run_ids, flops=6 * frame["n_params"] * frame["tokens"])


def test_families_are_compared_at_a_shared_token_count_without_ablations():
    runs, setting = trained_alike(family_runs())
    assert runs["run_id"].tolist() == ["r0", "r1", "r2", "r3"]
    assert (setting.kind, setting.text, setting.tex) == ("tokens", "D ≈ 1e+09", "$D$ ≈ 1B")


def test_families_need_two_sizes_each():
    with pytest.raises(Unsupported, match="no token count or compute budget has runs"):
        trained_alike(family_runs().iloc[[0, 1, 2, 5]])


def test_wsd_trunks_are_left_out_unless_asked_for():
    runs, metrics, evals = frames()
    trunk = {"run_id": "t", "state": "SUCCEEDED", "modality": "interleaved", "tokens": 40,
             "summary.tokens": 40, "n_params": 1.0, "loss": 2.9, "flops_6nd": 240.0}  # fmt: skip
    runs = pd.concat([runs, pd.DataFrame([trunk])], ignore_index=True)
    runs["branch_tokens"] = [None, None, None, [20, 40]]
    study = study_from_frames(runs, metrics, evals)
    assert study.runs["run_id"].tolist() == ["a", "b"]
    assert "left out 1 WSD trunk(s), whose rate never decayed (--include-trunks keeps them)" in (
        study.notes
    )
    kept = study_from_frames(runs, metrics, evals, include_trunks=True)
    assert kept.runs["run_id"].tolist() == ["a", "b", "t"] and "t" in kept.scaling_ids
