"""Run identity: readable, stable, and sensitive only to result-changing fields."""

import dataclasses
import subprocess
import sys

from slscale.identity import diff_specs, human_count, identity_fields, run_id, varying_fields
from slscale.spec import DECAY_SHAPES, Branch, DataMix, Modality, Recipe, RunSpec


def _spec(**kw) -> RunSpec:
    base = dict(family="llama", size="cm-85m", modality=Modality.TEXTLESS, tokens=1_700_000_000)
    base.update(kw)
    return RunSpec(**base)


def test_run_id_is_readable_and_hashed():
    rid = run_id(_spec())
    assert rid.startswith("llama-cm-85m-textless-D1.7B-s0-")
    assert len(rid.rsplit("-", 1)[1]) == 8


def test_every_result_changing_field_changes_the_id():
    base = _spec()
    variants = [
        _spec(seed=1),
        _spec(tokens=1_700_000_001),
        _spec(size="cm-155m"),
        _spec(family="qwen2"),
        _spec(recipe=dataclasses.replace(Recipe(), lr=1e-4)),
        _spec(recipe=dataclasses.replace(Recipe(), context_length=1024)),
        _spec(mix=DataMix(synthetic_share=0.5)),
        _spec(init="/x/TinyLM"),
        _spec(units_only_vocab=True),
    ]
    ids = {run_id(base)} | {run_id(v) for v in variants}
    assert len(ids) == len(variants) + 1


def test_checkpoint_location_does_not_change_the_id():
    a = _spec(
        init="/data/ckpts/Qwen2.5-0.5B",
        modality=Modality.INTERLEAVED,
        mix=DataMix(interleaved_share=1.0, speech_share=0.0),
    )
    b = dataclasses.replace(a, init="/other/place/Qwen2.5-0.5B/")
    c = dataclasses.replace(a, init="Qwen/Qwen2.5-0.5B")
    assert run_id(a) == run_id(b) == run_id(c)
    assert "from-qwen2.5-0.5b" in run_id(a)


def test_run_id_is_stable_across_processes():
    code = (
        "from slscale.identity import run_id; from slscale.spec import RunSpec;"
        "print(run_id(RunSpec(family='llama', size='cm-85m', modality='textless',"
        " tokens=1700000000)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "123"},
    )
    assert out.stdout.strip() == run_id(_spec())


def test_diff_and_varying_fields():
    a, b = _spec(), _spec(seed=2, recipe=dataclasses.replace(Recipe(), lr=1e-3))
    assert [d[0] for d in diff_specs(a, b)] == ["recipe.lr", "seed"]
    assert varying_fields([a, b, _spec(tokens=5)]) == ["recipe.lr", "seed", "tokens"]


def test_human_count():
    assert human_count(1_700_000_000) == "1.7B"
    assert human_count(2048) == "2.05k"
    assert human_count(679_940) == "680k"
    assert human_count(12) == "12"


def test_ids_of_runs_without_ladder_fields_keep_their_pre_ladder_values():
    """The WSD fields were added after these ids were handed out (pinned from that version)."""
    assert run_id(_spec()) == "llama-cm-85m-textless-D1.7B-s0-5ff0e2c4"
    linear = _spec(recipe=dataclasses.replace(Recipe(), schedule="linear", lr=1e-3))
    assert run_id(linear) == "llama-cm-85m-textless-D1.7B-s0-ba04912c"


WSD = Recipe(schedule="wsd", warmup_fraction=0.0, min_warmup_steps=10, global_batch_size=8)


def _branch(tokens: int = 100 * 8 * 2048, parent: str = "trunk-id", **recipe) -> RunSpec:
    wsd = dataclasses.replace(WSD, **recipe)
    steps = tokens // wsd.tokens_per_step
    start = wsd.decay_start(steps) * wsd.tokens_per_step
    return _spec(tokens=tokens, recipe=wsd, branch=Branch(parent=parent, from_tokens=start))


def test_a_wsd_run_hashes_its_decay_whatever_the_defaults():
    fields = identity_fields(_spec(recipe=WSD))
    assert fields["recipe"]["decay_fraction"] == 0.2
    assert fields["recipe"]["decay_shape"] == "1-sqrt"
    assert "decay_fraction" not in identity_fields(_spec())["recipe"]
    assert "branch" not in fields and "branch_tokens" not in fields
    shapes = {run_id(_spec(recipe=dataclasses.replace(WSD, decay_shape=s))) for s in DECAY_SHAPES}
    assert len(shapes) == 2


def test_a_branch_id_hashes_its_parent_and_branch_point():
    branch = _branch()
    assert run_id(branch) == run_id(_branch())  # stable
    assert "-branch-D" in run_id(branch)
    assert run_id(_branch(parent="another-trunk")) != run_id(branch)
    moved = _branch(decay_fraction=0.25)  # the same D decayed from another point
    assert moved.branch != branch.branch and run_id(moved) != run_id(branch)
    assert [d[0] for d in diff_specs(branch, moved)] == [
        "branch.from_tokens",
        "recipe.decay_fraction",
    ]


def test_a_trunk_is_named_and_hashes_its_branch_points():
    step = WSD.tokens_per_step
    trunk = _spec(tokens=80 * step, recipe=WSD, branch_tokens=(40 * step, 80 * step))
    assert trunk.is_trunk and "-trunk-D" in run_id(trunk)
    fewer = dataclasses.replace(trunk, branch_tokens=(80 * step,))
    assert run_id(fewer) != run_id(trunk)
