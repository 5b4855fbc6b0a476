"""WSD ladders in the scheduler: a branch waits for its trunk's checkpoint at its branch point.

A decay branch (``RunSpec.branch``) starts from ``<workdir>/runs/<trunk>/checkpoints/step-<K>``
(:func:`~slscale.models.train.branch.trunk_checkpoint`), which the trunk writes, and keeps,
once it has trained ``K`` steps — while it is still RUNNING. So the driver watches that folder,
not the store's step count: a branch becomes startable once the checkpoint is complete
(:func:`~slscale.models.train.checkpoint.verify_checkpoint`, checked again only when its
manifest changes). Until then it stays queued, PENDING, and takes no slot; its trunk goes
before it in the queue (:func:`trunks_first`).

A branch whose checkpoint is absent while its trunk can no longer write it — the trunk FAILED,
or SUCCEEDED and the checkpoint was removed since, or is not registered, or is left over by
no launch (not in this one, not RUNNING, not leased by a live driver) — is FAILED with a
reason naming the trunk (:meth:`BranchGate.blocked`). It never started, so it has no attempt.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from slscale.models.train.branch import trunk_checkpoint
from slscale.models.train.checkpoint import MANIFEST, verify_checkpoint
from slscale.models.train.config import TrainConfig
from slscale.spec import RunState, spec_from_dict
from slscale.sweep.scheduler.leases import is_dead_owner

if TYPE_CHECKING:
    from slscale.store.base import RunRecord

TRUNK_NOT_READY = "TrunkNotReady"
"""Name of the trainer's error for a branch started before its trunk's checkpoint exists."""


@dataclasses.dataclass(frozen=True)
class BranchPoint:
    """Where a branch starts: its trunk and the trunk's checkpoint at the branch point."""

    parent: str
    step: int
    checkpoint: Path


def branch_point(spec: Mapping[str, Any], workdir: str) -> BranchPoint | None:
    """The branch point of the run of ``spec`` (a RunSpec as a dict), or None for a run that
    is not a branch."""
    if not spec.get("branch"):
        return None
    config = TrainConfig.from_spec(spec_from_dict(spec), workdir=workdir)
    assert config.branch is not None
    return BranchPoint(config.branch.parent, config.branch_step, trunk_checkpoint(config))


def trunks_first(queue: Sequence[str], parent_of: Callable[[str], str | None]) -> list[str]:
    """``queue`` with every trunk moved just before its first branch, if it came later."""
    ordered: list[str] = []
    placed: set[str] = set()
    members = set(queue)
    for run_id in queue:
        parent = parent_of(run_id)
        if parent is not None and parent in members and parent not in placed:
            ordered.append(parent)
            placed.add(parent)
        if run_id not in placed:
            ordered.append(run_id)
            placed.add(run_id)
    return ordered


class BranchGate:
    """Which queued branches may start, and which can never start."""

    def __init__(self, points: Mapping[str, BranchPoint]) -> None:
        self.points = dict(points)
        self._checked: dict[str, tuple[float, bool]] = {}
        """Checkpoint folder -> (its manifest's mtime, complete) when last verified."""

    def parent(self, run_id: str) -> str | None:
        point = self.points.get(run_id)
        return None if point is None else point.parent

    def ready(self, run_id: str) -> bool:
        """Whether the run may start now: not a branch, or its trunk's checkpoint at the
        branch point is complete."""
        point = self.points.get(run_id)
        return point is None or self.checkpoint_complete(point.checkpoint)

    def checkpoint_complete(self, path: Path) -> bool:
        try:
            mtime = (path / MANIFEST).stat().st_mtime
        except OSError:
            self._checked.pop(str(path), None)
            return False
        seen = self._checked.get(str(path))
        if seen is None or seen[0] != mtime:
            seen = (mtime, verify_checkpoint(path) is None)
            self._checked[str(path)] = seen
        return seen[1]

    def forget(self, run_id: str) -> None:
        """Verify the run's trunk checkpoint again at the next look (the trainer found it
        missing or incomplete)."""
        point = self.points.get(run_id)
        if point is not None:
            self._checked.pop(str(point.checkpoint), None)

    def blocked(
        self, run_id: str, trunk: RunRecord | None, launched: bool, final: RunState | None
    ) -> str | None:
        """Why the branch ``run_id``, whose checkpoint is absent, can never start (None: it
        waits). ``trunk``: the trunk's record; ``launched``: whether this launch runs the trunk
        and has not finished it; ``final``: how this launch finished it."""
        point = self.points[run_id]
        where = f"its trunk {point.parent}"
        missing = f"has no checkpoint at the branch point (step {point.step}, {point.checkpoint})"
        state = final or (trunk.state if trunk is not None else None)
        if launched and final is None:
            return None
        if state is RunState.FAILED:
            error = (trunk.error or "").splitlines()[0] if trunk is not None and trunk.error else ""
            why = f": {error}" if error else ""
            return f"{where} FAILED before its branch point (step {point.step}){why}"
        if state is RunState.SUCCEEDED:
            return (
                f"{where} SUCCEEDED but {missing}: it was removed since; restore it or train "
                "the trunk again"
            )
        if trunk is None:
            return f"{where} is not registered in the store: launch the ladder's trunk with it"
        if state is RunState.RUNNING or (
            trunk.lease_owner is not None and not is_dead_owner(trunk.lease_owner)
        ):
            return None  # another driver trains it
        return (
            f"{where} is {state} and this launch does not run it, nor does any other driver: "
            "launch the ladder's trunk with its branches"
        )
