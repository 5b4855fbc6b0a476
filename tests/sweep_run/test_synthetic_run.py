"""The synthetic stand-in run keeps its curve whole when a stop lands anywhere in a step."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from sweep_run_helpers import curve, specs_of, write_grid

from slscale.identity import run_id
from slscale.spec import spec_to_dict
from slscale.store import open_store
from slscale.sweep.scheduler.outcome import Preempted
from slscale.sweep.scheduler.runners import SyntheticRun


@dataclasses.dataclass(frozen=True, kw_only=True)
class StoppedWhileLogging(SyntheticRun):
    """A stop (KeyboardInterrupt, as a stop file raises it) while step ``at`` is being logged:
    before the store has it, or just after."""

    at: int = 5
    logged: bool = False

    def _log(self, store: Any, rid: str, step: int, tokens: int, loss: float, attempt: int) -> None:
        if step == self.at and attempt == 1 and not self.logged:
            raise KeyboardInterrupt
        super()._log(store, rid, step, tokens, loss, attempt)
        if step == self.at and attempt == 1 and self.logged:
            raise KeyboardInterrupt


@pytest.mark.parametrize("logged", [False, True], ids=["before-the-log", "after-the-log"])
def test_a_stop_mid_step_resumes_to_a_whole_curve_equal_to_an_uninterrupted_one(tmp_path, logged):
    grid = write_grid(tmp_path / "grid.yaml", seeds=[0], steps=[9])
    spec = specs_of(grid)[0]
    rid = run_id(spec)
    runs = {}
    for name in ("stopped", "whole"):
        workdir = tmp_path / name
        workdir.mkdir()
        with open_store(workdir) as store:
            store.register({rid: spec_to_dict(spec)})
        runs[name] = workdir
    run = StoppedWhileLogging(checkpoint_every_steps=4, logged=logged)
    args = (spec_to_dict(spec), rid, str(runs["stopped"]), str(runs["stopped"]))
    with pytest.raises(Preempted, match="stopped at step 4"):
        run(*args, 1)
    run(*args, 2)
    SyntheticRun(checkpoint_every_steps=4)(
        spec_to_dict(spec), rid, str(runs["whole"]), str(runs["whole"]), 1
    )
    resumed = curve(runs["stopped"], rid)
    assert sorted(resumed) == list(range(1, 10))
    assert resumed == curve(runs["whole"], rid)
    # Step 5 was (re)written by the attempt that resumed from step 4's checkpoint.
    assert curve(runs["stopped"], rid, "attempt")[5] == 2
