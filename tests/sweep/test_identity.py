"""Run identity: readable, stable, and sensitive only to result-changing fields."""

import dataclasses
import subprocess
import sys

from slscale.identity import diff_specs, human_count, run_id, varying_fields
from slscale.spec import DataMix, Modality, Recipe, RunSpec


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
