"""A WSD ladder of the interleaved arm, from a TextLM, on the generated world: the
``wsd_ladder`` generator's trunk and branch trained with ``slscale train`` reproduce, step for
step, one uninterrupted wsd run of the branch's length (weights, optimizer state and the
position of all three data streams, interleaving draws included, carry over at the branch
point)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from slscale.cli import main
from slscale.identity import run_id
from slscale.spec import RunSpec, spec_to_dict
from slscale.sweep.generators import wsd_ladder
from slscale.sweep.grid import GridSpec, expand
from slscale.sweep.plan import param_counts

STEP = 8 * 32  # tokens per optimizer step of the recipe below
BUDGETS = (12, 20)  # optimizer steps of the two branches (decay: their last 25 %)


@pytest.fixture(scope="module")
def ladder(dist: Any, tiny_world: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """(workdir, trunk, branches, straight): the ladder's runs and a wsd run of the longest
    budget trained straight through, all in one workdir."""
    work = tmp_path_factory.mktemp("ladder")
    textlm = work / "textlm"
    pretrain = ["world", "pretrain-textlm", "--world", str(tiny_world), "--size", "mini-25k"]
    assert main([*pretrain, "--out", str(textlm), "--steps", "20", "--threads", "1"]) == 0
    base = {
        "family": "llama",
        "size": "mini-25k",
        "modality": "interleaved",
        "init": str(textlm),
        "mix": {"text_share": 0.4, "interleaved_share": 0.3, "speech_share": 0.3},
        "recipe": {"global_batch_size": 8, "context_length": 32, "lr": 3e-3, "lr_min": 3e-4},
    }
    grid = GridSpec(
        name="ladder",
        base=base,
        generators=[wsd_ladder(tokens=[b * STEP for b in BUDGETS], decay_fraction=0.25)],
    )
    specs = expand(grid, param_counts)
    (trunk,) = [s for s in specs if s.is_trunk]
    branches = sorted((s for s in specs if s.branch is not None), key=lambda s: s.tokens)
    longest = branches[-1]
    straight = RunSpec(**{**vars(longest), "branch": None})
    workdir = work / "runs"
    for spec in (trunk, *branches, straight):
        path = work / f"{run_id(spec)}.yaml"
        path.write_text(yaml.safe_dump(spec_to_dict(spec)))
        argv = ["train", str(path), "--workdir", str(workdir), "--data", str(tiny_world)]
        assert main([*argv, "--micro-batch-size", "8", "--log-every", "1"]) == 0
    return workdir, trunk, branches, straight


def losses(workdir: Path, spec: RunSpec) -> dict[int, float]:
    lines = (workdir / "runs" / run_id(spec) / "metrics.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in lines]
    return {r["step"]: r["value"] for r in rows if r["name"] == "loss"}


def test_the_generator_makes_an_interleaved_ladder_from_the_textlm(ladder: Any) -> None:
    _, trunk, branches, _ = ladder
    assert trunk.modality == "interleaved" and trunk.from_textlm
    assert [b.tokens for b in branches] == [b * STEP for b in BUDGETS]
    assert [b.branch.from_tokens for b in branches] == [9 * STEP, 15 * STEP]
    assert trunk.branch_tokens == (9 * STEP, 15 * STEP)
    assert {b.init for b in branches} == {trunk.init}


def test_an_interleaved_branch_trains_like_one_uninterrupted_wsd_run(ladder: Any) -> None:
    workdir, trunk, branches, straight = ladder
    longest = branches[-1]
    reference = losses(workdir, straight)
    trunk_losses, branch_losses = losses(workdir, trunk), losses(workdir, longest)
    assert sorted(reference) == list(range(1, BUDGETS[-1] + 1))
    assert sorted(trunk_losses) == list(range(1, 16))
    assert sorted(branch_losses) == list(range(16, BUDGETS[-1] + 1))
    for step, loss in {**trunk_losses, **branch_losses}.items():
        assert loss == pytest.approx(reference[step], rel=1e-6, abs=0), f"step {step}"
    result = json.loads((workdir / "runs" / run_id(longest) / "result.json").read_text())
    expected = json.loads((workdir / "runs" / run_id(straight) / "result.json").read_text())
    assert result["tokens_by_stream"] == expected["tokens_by_stream"]
    assert set(result["tokens_by_stream"]) == {"text", "interleaved", "speech"}
    assert result["loss"] == pytest.approx(expected["loss"], rel=1e-6, abs=0)
