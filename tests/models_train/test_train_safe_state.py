"""The trainer state of a checkpoint holds plain values and tensors only and is read with
``torch.load(weights_only=True)``: the RNG states survive it exactly, and a state file that
pickles anything else (an old-format checkpoint, a planted object) is refused, naming the file,
without running code from it."""

from __future__ import annotations

import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from train_helpers import tiny_job

from slscale.errors import SlscaleError
from slscale.models.train import train_worker
from slscale.models.train.checkpoint import (
    MANIFEST,
    check_plain,
    read_worker_state,
    worker_state_file,
    write_manifest,
)
from slscale.models.train.report import read_result
from slscale.models.train.state import rng_state, set_rng_state
from slscale.spec import RunState


def draws() -> list[float]:
    """A few numbers from every RNG the trainer restores (NumPy's cached Gaussian included)."""
    return [
        random.random(),
        random.gauss(0, 1),
        *np.random.standard_normal(3).tolist(),
        *torch.rand(3).tolist(),
    ]


def test_rng_state_survives_a_weights_only_file_exactly(tmp_path: Path) -> None:
    random.seed(5)
    np.random.seed(5)
    torch.manual_seed(5)
    draws()  # leaves Python and NumPy each holding a cached Gaussian
    file = tmp_path / "rng.pt"
    torch.save(rng_state(), file)
    expected = draws()

    random.seed(6)
    np.random.seed(6)
    torch.manual_seed(6)
    set_rng_state(torch.load(file, weights_only=True))
    assert draws() == expected


def plant(marker: str) -> None:
    Path(marker).touch()


class Planted:
    """Unpickling it calls :func:`plant`, which creates ``marker`` (code run by a load)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (plant, (str(self.marker),))


def test_a_pickled_object_is_refused_without_running_it(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    file = tmp_path / worker_state_file(0)
    torch.save({"progress": {"step": 3}, "source": Planted(marker)}, file)
    with pytest.raises(SlscaleError, match=r"trainer_state_rank00000\.pt: holds objects") as err:
        read_worker_state(file)
    assert "cannot be loaded safely (it needs test_train_safe_state.plant)" in str(err.value)
    assert not marker.exists()
    torch.load(file, weights_only=False)  # the same file, unpickled: the planted code runs
    assert marker.exists()


def test_only_plain_values_and_tensors_are_written() -> None:
    check_plain(
        {"a": [1, 2.5, None, True, "x", b"y", (3, 4)], 5: {"t": torch.ones(2)}}, "trainer state"
    )
    with pytest.raises(SlscaleError, match=r"trainer state\['source'\]\['rng'\] is a numpy\.ndarr"):
        check_plain({"source": {"rng": np.zeros(3)}}, "trainer state")
    with pytest.raises(SlscaleError, match=r"trainer state\[1\] is a numpy\.float64"):
        check_plain([1.0, np.float64(2.0)], "trainer state")


@pytest.fixture(scope="module")
def trained(dist: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished tiny run with a checkpoint at step 12 (the template of the resume tests)."""
    workdir = tmp_path_factory.mktemp("safe")
    job = tiny_job(
        workdir, run_id="safe", store=None, export_model=False, checkpoint_every_steps=12
    )
    assert train_worker(job).state == RunState.SUCCEEDED
    return workdir


def interrupted_copy(trained: Path, tmp_path: Path) -> Path:
    """A copy of the trained run that looks interrupted after step 12 (no result yet, the
    checkpoint of step 24 gone)."""
    workdir = tmp_path / "work"
    shutil.copytree(trained, workdir)
    run_dir = workdir / "runs" / "safe"
    (run_dir / "result.json").unlink()
    shutil.rmtree(run_dir / "checkpoints" / "step-000000024")
    return run_dir / "checkpoints" / "step-000000012"


def old_state() -> dict[str, Any]:
    """A trainer state as format 1 wrote it: NumPy's RNG state as a tuple with an ndarray."""
    return {"progress": {"step": 12}, "rng": {"numpy": np.random.get_state()}}


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        pytest.param(1, "written by an older slscale version", id="format1"),
        pytest.param(2, "numpy._core.multiarray._reconstruct", id="format2-with-pickles"),
    ],
)
def test_resuming_an_unsafe_checkpoint_fails_with_a_clear_error(
    dist: Any, trained: Path, tmp_path: Path, version: int, expected: str
) -> None:
    checkpoint = interrupted_copy(trained, tmp_path)
    file = checkpoint / worker_state_file(0)
    torch.save(old_state(), file)
    (checkpoint / MANIFEST).unlink()
    write_manifest(checkpoint, {"step": 12, "world_size": 1})
    if version == 1:
        manifest = (checkpoint / MANIFEST).read_text()
        (checkpoint / MANIFEST).write_text(
            manifest.replace('"format_version": 2', '"format_version": 1')
        )
    job = tiny_job(
        tmp_path / "work", run_id="safe", store=None, export_model=False, checkpoint_every_steps=12
    )
    with pytest.raises(SlscaleError) as err:
        train_worker(job)
    message = str(err.value)
    assert str(file) in message and expected in message and "\n" not in message


def test_an_intact_checkpoint_resumes(dist: Any, trained: Path, tmp_path: Path) -> None:
    interrupted_copy(trained, tmp_path)
    job = tiny_job(
        tmp_path / "work", run_id="safe", store=None, export_model=False, checkpoint_every_steps=12
    )
    result = train_worker(job)
    assert result.state == RunState.SUCCEEDED and result.steps == 25
    assert read_result(result.run_dir)["resumed_from_steps"] == [12]


def test_a_planted_object_in_deepspeeds_own_files_is_refused(
    dist: Any, trained: Path, tmp_path: Path
) -> None:
    """DeepSpeed's model-state file (not the trainer's) carries a planted object: resuming
    refuses it, naming the file and the global, and the object's code never runs."""
    checkpoint = interrupted_copy(trained, tmp_path)
    file = checkpoint / "mp_rank_00_model_states.pt"
    marker = tmp_path / "ran"
    states = torch.load(file, weights_only=False)
    states["planted"] = Planted(marker)
    torch.save(states, file)
    (checkpoint / MANIFEST).unlink()
    write_manifest(checkpoint, {"step": 12, "world_size": 1})
    job = tiny_job(
        tmp_path / "work", run_id="safe", store=None, export_model=False, checkpoint_every_steps=12
    )
    with pytest.raises(SlscaleError) as err:
        train_worker(job)
    message = str(err.value)
    assert str(file) in message and f"{__name__}.plant" in message, message
    assert not marker.exists()
