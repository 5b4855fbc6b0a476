"""Attempt fencing: which attempt of a run owns its run folder.

Every attempt of a run has a number (the store's attempt count once it started). Before an
attempt is submitted, its driver leaves a marker ``ATTEMPT.<n>`` in the run folder
(:func:`mark`); the newest marker names the attempt that owns the folder. Markers only ever
grow: an older one is removed after a newer one exists. The store orders attempts (a driver
takes the run's lease and the next attempt number there before marking), so a driver's new
marker is always the newest, unless the store itself went back (see :func:`mark`).

An attempt whose folder holds a newer marker has been superseded: a retry was started
elsewhere — typically after Ray declared its node dead while its processes lived on (a network
partition), or after its driver lost the run's lease. A superseded attempt must write nothing
more to the run (no checkpoint, metric, state or result, which the newer attempt owns) and
stops: the trainer checks the marker before each of its writes and raises :class:`Superseded`;
the sweep's stop watcher interrupts a superseded attempt as soon as the marker appears.

The check and the write are two steps, not one: a write that had begun just before the newer
marker appeared can still land (a window of milliseconds, against the seconds to minutes an
orphaned attempt would otherwise go on writing).
"""

from __future__ import annotations

import os
from pathlib import Path

from slscale.errors import SlscaleError

MARKER_PREFIX = "ATTEMPT."


class Superseded(SlscaleError):
    """This attempt of a run was superseded by a newer one; it stopped without writing more."""

    def __init__(self, run_dir: Path | str, attempt: int, newer: int) -> None:
        super().__init__(
            f"run folder {run_dir}: attempt {attempt} was superseded by attempt {newer} "
            "(started elsewhere); it stopped and wrote nothing more"
        )
        self.run_dir, self.attempt, self.newer = str(run_dir), attempt, newer

    def __reduce__(self) -> tuple[type[Superseded], tuple[str, int, int]]:
        return (type(self), (self.run_dir, self.attempt, self.newer))  # crosses processes


def marker(run_dir: Path | str, attempt: int) -> Path:
    """The marker file of ``attempt`` in ``run_dir``."""
    return Path(run_dir, f"{MARKER_PREFIX}{attempt}")


def _markers(run_dir: Path | str) -> dict[int, Path]:
    """Every attempt marker in ``run_dir`` by attempt number ({} without a folder)."""
    found = {}
    try:
        with os.scandir(run_dir) as entries:
            for entry in entries:
                number = entry.name[len(MARKER_PREFIX) :]
                if entry.name.startswith(MARKER_PREFIX) and number.isdigit():
                    found[int(number)] = Path(entry.path)
    except FileNotFoundError:
        return {}
    return found


def owner(run_dir: Path | str) -> int | None:
    """The attempt that owns ``run_dir`` (its newest marker), or None where none was left."""
    return max(_markers(run_dir), default=None)


def newer_attempt(run_dir: Path | str, attempt: int) -> int | None:
    """The attempt that superseded ``attempt`` in ``run_dir``, or None while it owns it (one
    ``stat`` while its own marker is there: a newer marker is written before the older one is
    removed; the folder is listed only once it is gone, or where none was left)."""
    if marker(run_dir, attempt).exists():
        return None
    current = owner(run_dir)
    return current if current is not None and current > attempt else None


def check(run_dir: Path | str, attempt: int | None) -> None:
    """Raise :class:`Superseded` if a newer attempt owns ``run_dir`` (no-op for None: a run
    outside a sweep is not fenced)."""
    if attempt is None:
        return
    newer = newer_attempt(run_dir, attempt)
    if newer is not None:
        raise Superseded(run_dir, attempt, newer)


def note_node(run_dir: Path | str, attempt: int, node: str) -> None:
    """Record in ``attempt``'s marker the cluster node it runs on (while it owns the folder),
    so that a driver can tell when that node was declared dead (:func:`node_of`)."""
    if newer_attempt(run_dir, attempt) is not None:
        return
    try:  # "r+": never re-creates a marker a newer attempt's driver just removed
        with marker(run_dir, attempt).open("r+") as fh:
            fh.truncate()
            fh.write(node)
    except FileNotFoundError:
        pass


def node_of(run_dir: Path | str, attempt: int) -> str | None:
    """The node ``attempt`` noted it runs on, or None (not started yet, not noted, gone)."""
    try:
        return marker(run_dir, attempt).read_text().strip() or None
    except OSError:
        return None


def mark(run_dir: Path | str, attempt: int) -> int | None:
    """Make ``attempt`` the owner of ``run_dir`` (its driver calls this before submitting it,
    holding the run's lease, with the attempt count the store just gave it). Returns None, or
    the number of a newer marker found there and removed: the store's count is behind the
    folder (a store replaced or restored from an older copy), and the store decides."""
    run_dir = Path(run_dir)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        displaced = newer_attempt(run_dir, attempt)
        marker(run_dir, attempt).touch()
        for number, path in _markers(run_dir).items():  # the newest alone says who owns it
            if number != attempt:
                path.unlink(missing_ok=True)
    except OSError as exc:
        raise SlscaleError(
            f"cannot mark run folder {run_dir} for attempt {attempt}: {type(exc).__name__}: "
            f"{exc.strerror or exc}; the workdir must be writable from the driver's machine "
            "(and shared with every node)"
        ) from None
    return displaced
