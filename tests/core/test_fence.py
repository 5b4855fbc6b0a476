"""Attempt markers in a run folder: the newest owns it, and older attempts find themselves
superseded."""

from __future__ import annotations

import pickle

import pytest

from slscale import fence
from slscale.errors import SlscaleError


def markers(run_dir):
    return sorted(p.name for p in run_dir.iterdir() if p.name.startswith("ATTEMPT."))


def test_the_newest_marker_owns_the_folder_and_supersedes_older_attempts(tmp_path):
    run_dir = tmp_path / "runs" / "r"
    assert fence.owner(run_dir) is None  # no folder yet
    fence.check(run_dir, 1)  # nothing newer: no error
    assert fence.mark(run_dir, 1) is None
    assert fence.owner(run_dir) == 1 and fence.newer_attempt(run_dir, 1) is None
    assert fence.mark(run_dir, 12) is None
    assert markers(run_dir) == ["ATTEMPT.12"]  # the older marker is gone
    for old in (1, 11):
        assert fence.newer_attempt(run_dir, old) == 12
        with pytest.raises(fence.Superseded, match=f"attempt {old} was superseded by attempt 12"):
            fence.check(run_dir, old)
    fence.check(run_dir, 12)
    fence.check(run_dir, None)  # a run outside a sweep is never fenced
    (run_dir / "ATTEMPT.notes").write_text("")  # not a marker
    assert fence.owner(run_dir) == 12


def test_a_store_behind_the_folder_takes_it_over_and_says_so(tmp_path):
    run_dir = tmp_path / "r"
    fence.mark(run_dir, 5)
    assert fence.mark(run_dir, 2) == 5  # e.g. a store restored from an older copy
    assert markers(run_dir) == ["ATTEMPT.2"] and fence.owner(run_dir) == 2


def test_superseded_crosses_processes_whole():
    exc = fence.Superseded("/w/runs/r", 3, 4)
    back = pickle.loads(pickle.dumps(exc))
    assert isinstance(back, fence.Superseded)
    assert (back.run_dir, back.attempt, back.newer, str(back)) == (
        "/w/runs/r",
        3,
        4,
        str(exc),
    )


def test_a_folder_the_driver_cannot_write_is_named(tmp_path):
    blocker = tmp_path / "runs"
    blocker.write_text("a file where the runs folder should be")
    with pytest.raises(SlscaleError, match=r"cannot mark run folder .*runs/r for attempt 1"):
        fence.mark(blocker / "r", 1)


def test_an_attempt_notes_its_node_in_its_own_marker_only(tmp_path):
    run_dir = tmp_path / "r"
    fence.note_node(run_dir, 1, "node-a")  # no marker yet: nothing noted
    assert fence.node_of(run_dir, 1) is None
    fence.mark(run_dir, 1)
    fence.note_node(run_dir, 1, "node-a")
    assert fence.node_of(run_dir, 1) == "node-a"
    fence.mark(run_dir, 2)
    fence.note_node(run_dir, 1, "node-b")  # superseded: its marker is gone, nothing written
    assert fence.node_of(run_dir, 1) is None and fence.node_of(run_dir, 2) is None
    assert fence.owner(run_dir) == 2
