"""How the scheduler treats WSD ladders, without a cluster: trunks go before their branches,
a branch is startable once its trunk's checkpoint at the branch point is complete, and which
trunk states leave a branch waiting and which fail it."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os

import pytest

from slscale.models.train.checkpoint import MANIFEST
from slscale.spec import RunState
from slscale.store.base import RunRecord
from slscale.sweep.scheduler.ladders import BranchGate, BranchPoint, trunks_first

NOW = dt.datetime(2026, 12, 6, tzinfo=dt.UTC)


def record(state: RunState, error: str | None = None, owner: str | None = None) -> RunRecord:
    return RunRecord(
        run_id="trunk",
        spec={},
        state=state,
        attempts=1,
        error=error,
        host=None,
        summary={},
        created_at=NOW,
        updated_at=NOW,
        lease_owner=owner,
    )


def write_checkpoint(path, payload: bytes = b"weights") -> None:
    path.mkdir(parents=True, exist_ok=True)
    (path / "model.pt").write_bytes(payload)
    files = {"model.pt": {"bytes": len(payload), "sha256": hashlib.sha256(payload).hexdigest()}}
    (path / MANIFEST).write_text(json.dumps({"format_version": 3, "files": files}))


@pytest.fixture
def gate(tmp_path):
    point = BranchPoint("trunk", 16, tmp_path / "runs" / "trunk" / "checkpoints" / "step-16")
    return BranchGate({"b1": point})


def test_trunks_go_just_before_their_first_branch():
    parents = {"b1": "t1", "b2": "t1", "c1": "t2"}
    queue = ["b1", "x", "c1", "t2", "b2", "t1"]
    assert trunks_first(queue, parents.get) == ["t1", "b1", "x", "t2", "c1", "b2"]
    assert trunks_first(["b1", "x"], parents.get) == ["b1", "x"]  # its trunk is not queued


def test_a_branch_is_startable_once_the_checkpoint_is_complete(gate):
    path = gate.points["b1"].checkpoint
    assert gate.ready("other")  # not a branch
    assert not gate.ready("b1")
    write_checkpoint(path)
    (path / "model.pt").write_bytes(b"half")  # a checkpoint still being written
    assert not gate.ready("b1")
    write_checkpoint(path)
    mtime = (path / MANIFEST).stat().st_mtime
    os.utime(path / MANIFEST, (mtime + 1, mtime + 1))  # a new manifest is verified again
    assert gate.ready("b1")


def test_which_trunks_leave_a_branch_waiting_and_which_fail_it(gate):
    assert gate.blocked("b1", None, launched=True, final=None) is None  # this launch trains it
    assert gate.blocked("b1", record(RunState.RUNNING), launched=False, final=None) is None
    leased = record(RunState.PENDING, owner="host/boot/ns/1/x")  # another live driver's
    assert gate.blocked("b1", leased, launched=False, final=None) is None

    failed = record(RunState.FAILED, error="ConnectionResetError: reset\nTraceback ...")
    reason = gate.blocked("b1", failed, launched=False, final=RunState.FAILED)
    assert reason == (
        "its trunk trunk FAILED before its branch point (step 16): ConnectionResetError: reset"
    )
    reason = gate.blocked("b1", record(RunState.SUCCEEDED), launched=False, final=None)
    assert reason.startswith("its trunk trunk SUCCEEDED but has no checkpoint at the branch point")
    assert "it was removed since" in reason
    reason = gate.blocked("b1", None, launched=False, final=None)
    assert reason == (
        "its trunk trunk is not registered in the store: launch the ladder's trunk with it"
    )
    reason = gate.blocked("b1", record(RunState.PREEMPTED), launched=False, final=None)
    assert reason.startswith("its trunk trunk is PREEMPTED and this launch does not run it")
