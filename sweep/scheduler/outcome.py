"""How a run attempt ended, and how each cause is retried.

Causes (and what the scheduler does with them):

* the run returned a summary → ``SUCCEEDED``;
* the run's process or node went away — preemption, node loss, a SIGKILL/SIGTERM, a crashed
  worker (Ray's WorkerCrashedError, NodeDiedError, ActorDiedError, ...) — or the run stopped
  itself after checkpointing on SIGTERM → ``PREEMPTED``: resumed from its last checkpoint,
  retried without a limit (up to a large cap against crash loops);
* the run raised an error that running it again cannot cure → ``FATAL``: FAILED at its first
  attempt with the error. These are the errors the user must fix first, every
  :class:`~slscale.errors.SlscaleError` whose ``retryable`` is false — an invalid config or
  unknown field (:class:`~slscale.errors.ConfigError`), a bad data row
  (:class:`~slscale.errors.DataError`, naming its file and line), a missing TextLM or
  tokenizer, a model that fits no GPU, an unusable checkpoint — and a divergence
  (:class:`Diverged`: a resumed run replays the same steps);
* the run raised anything else, or a retryable error (:class:`~slscale.errors.StoreError`: the
  store was unreachable past the trainer's own wait; an out-of-memory error on a busy node; an
  unexpected exception, which may be a lost connection as well as a bug) → ``ERROR``: retried
  up to ``max_retries`` times, then FAILED with the error and the tail of its traceback;
* the task was cancelled (``slscale sweep cancel``) → ``CANCELLED``;
* a newer attempt of the run was started elsewhere (:mod:`slscale.fence`: the run folder
  names a newer attempt) → ``SUPERSEDED``: this attempt stopped without writing, and the run
  is the newer attempt's.

:func:`execute` runs inside the Ray task and turns the run's own exceptions into an
:class:`Outcome`, so that only failures of the process itself reach the driver as Ray errors
(:func:`from_ray_error`). It also watches the attempt's stop file (``STOP.attempt-<n>`` in
the run folder, on the file system every node shares): when the driver writes it, the run gets
a SIGINT (as from Ctrl-C), checkpoints at the end of its step and returns. The file names the
attempt, so a driver stopping its own attempt never stops a later one started elsewhere. The
driver asks runs to stop this way rather than through ``ray.cancel``, whose interruption of a
running task races with the task's own reply inside Ray's core worker (a fatal check failure,
seen when a sweep is stopped with Ctrl-C). The same watcher interrupts an attempt once its run
folder names a newer attempt; the run then finds itself superseded before its next write.
"""

from __future__ import annotations

import _thread
import dataclasses
import enum
import os
import signal
import socket
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from slscale import fence
from slscale.errors import SlscaleError

STOP_FILE = "STOP.attempt-{attempt}"
"""Written in a run's folder by the driver to stop that attempt of the run."""
STOP_POLL_SECONDS = 0.25
"""How often a run looks for its stop file."""
TRACEBACK_LINES = 25
"""Lines of traceback kept with a failed run's error."""

RunFunction = Callable[[dict[str, Any], str, str, str, int], Mapping[str, Any]]
"""``run_fn(spec_dict, run_id, workdir, store_url, attempt) -> summary``: trains one run to
its token budget (resuming from ``<workdir>/runs/<run_id>/`` if a checkpoint is there) and
returns its summary (n_params, tokens, loss, ...). Before each write to the run (checkpoint,
metrics, state) it calls ``slscale.fence.check(run_dir, attempt)``, which raises once a newer
attempt owns the run folder."""


class Kind(enum.StrEnum):
    SUCCEEDED = "succeeded"
    PREEMPTED = "preempted"
    ERROR = "error"
    FATAL = "fatal"
    CANCELLED = "cancelled"
    SUPERSEDED = "superseded"


class Preempted(Exception):
    """Raised by a run that stopped early on purpose (SIGTERM) after saving a checkpoint."""


class Diverged(Exception):
    """Raised by a run whose loss became NaN/inf or exceeded its limit."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class Outcome:
    """How one attempt of a run ended."""

    kind: Kind
    summary: dict[str, Any] = dataclasses.field(default_factory=dict)
    """The run's summary (SUCCEEDED only)."""
    error: str | None = None
    """One line: exception type and message, or the Ray failure."""
    traceback: str | None = None
    """Tail of the traceback (ERROR and FATAL)."""
    seconds: float = 0.0
    """Wall time of the attempt inside its process (0 when the process died)."""
    host: str | None = None
    unplaced: bool = False
    """PREEMPTED before it ran: its workers could not be placed in the time it was given."""

    def error_text(self) -> str | None:
        """What the store keeps as the run's error."""
        if self.error is None:
            return None
        return self.error if not self.traceback else f"{self.error}\n{self.traceback}"


def execute(
    run_fn: RunFunction,
    spec: dict[str, Any],
    run_id: str,
    workdir: str,
    store_url: str,
    attempt: int,
    threads: int = 1,
) -> Outcome:
    """Run one attempt in this process (the body of the Ray task)."""
    _limit_threads(threads)
    start = time.monotonic()
    previous = signal.signal(signal.SIGTERM, _raise_preempted) if _main_thread() else None
    path = stop_file(workdir, run_id, attempt)
    _note_node(path.parent, attempt)
    try:
        with stop_file_watched(path, attempt):
            summary = dict(run_fn(spec, run_id, workdir, store_url, attempt) or {})
        return Outcome(kind=Kind.SUCCEEDED, summary=summary, seconds=_since(start), host=_host())
    except BaseException as exc:  # every failure becomes an Outcome
        newer = fence.newer_attempt(path.parent, attempt)
        if newer is not None and not isinstance(exc, fence.Superseded):  # stopped for it
            exc = fence.Superseded(path.parent, attempt, newer)
        return from_exception(exc, seconds=_since(start))
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _note_node(run_dir: Path, attempt: int) -> None:
    """Note the Ray node this attempt runs on in its marker (nothing outside a Ray task)."""
    try:
        import ray

        if not ray.is_initialized():
            return
        node = ray.get_runtime_context().get_node_id()
    except Exception:  # not in a Ray worker: nothing to note
        return
    fence.note_node(run_dir, attempt, node)


def stop_file(workdir: str, run_id: str, attempt: int) -> Path:
    """The file whose existence asks an attempt of a run to stop."""
    return Path(workdir, "runs", run_id, STOP_FILE.format(attempt=attempt))


@contextmanager
def stop_file_watched(path: Path, attempt: int | None = None) -> Iterator[None]:
    """While inside, a SIGINT is raised in this (the main) thread once ``path`` exists or, with
    ``attempt``, once the folder of ``path`` names a newer attempt (:mod:`slscale.fence`)."""
    done = threading.Event()

    def watch() -> None:
        while not done.wait(STOP_POLL_SECONDS):
            superseded = attempt is not None and fence.newer_attempt(path.parent, attempt)
            if superseded or path.exists():
                _thread.interrupt_main(signal.SIGINT)
                return

    if not _main_thread():  # signals reach the main thread only
        yield
        return
    previous = signal.getsignal(signal.SIGINT)
    if not callable(previous):  # ignored or default in this process: raise KeyboardInterrupt
        signal.signal(signal.SIGINT, signal.default_int_handler)
    watcher = threading.Thread(target=watch, name="slscale-stop-file", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        done.set()
        if previous is not None and not callable(previous):
            signal.signal(signal.SIGINT, previous)


def from_exception(exc: BaseException, seconds: float = 0.0) -> Outcome:
    """The outcome of a run that raised ``exc`` in its own process."""
    if isinstance(exc, fence.Superseded):
        kind = Kind.SUPERSEDED
    elif isinstance(exc, (Preempted, KeyboardInterrupt, SystemExit)) or _named_preemption(exc):
        kind = Kind.PREEMPTED
    elif not retryable(exc):
        kind = Kind.FATAL
    else:
        kind = Kind.ERROR
    tail = None if kind in (Kind.PREEMPTED, Kind.SUPERSEDED) else traceback_tail(exc)
    return Outcome(kind=kind, error=one_line(exc), traceback=tail, seconds=seconds, host=_host())


def retryable(exc: BaseException) -> bool:
    """Whether an attempt that raised ``exc`` may succeed if run again unchanged: False for
    a divergence and for the user's errors that are not retryable (see the module docstring)."""
    if isinstance(exc, Diverged):
        return False
    return not isinstance(exc, SlscaleError) or exc.retryable


def from_ray_error(exc: BaseException) -> Outcome:
    """The outcome of an attempt whose ``ray.get`` raised ``exc`` (the process failed)."""
    from ray import exceptions as rex

    if isinstance(exc, rex.TaskCancelledError):
        return Outcome(kind=Kind.CANCELLED, error="cancelled")
    if isinstance(exc, rex.RayTaskError) and exc.cause is not None:
        return from_exception(exc.cause)
    if isinstance(exc, rex.OutOfMemoryError):  # a busy node, or a run too big: bounded
        return Outcome(kind=Kind.ERROR, error=one_line(exc))
    lost = (
        rex.WorkerCrashedError,
        rex.NodeDiedError,
        rex.ActorDiedError,
        rex.ActorUnavailableError,
        rex.ObjectLostError,
        rex.OwnerDiedError,
        rex.RaySystemError,
    )
    if isinstance(exc, lost):
        return Outcome(kind=Kind.PREEMPTED, error=one_line(exc))
    return Outcome(kind=Kind.ERROR, error=one_line(exc), traceback=traceback_tail(exc))


def one_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    message = lines[0] if lines else ""
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def traceback_tail(exc: BaseException, lines: int = TRACEBACK_LINES) -> str:
    text = "".join(traceback.format_exception(exc)).rstrip().splitlines()
    return "\n".join(text[-lines:])


def _named_preemption(exc: BaseException) -> bool:
    """A trainer's own "preempted" exception (any class named *Preempt*), without importing it."""
    return any("preempt" in cls.__name__.lower() for cls in type(exc).__mro__)


def _raise_preempted(signum: int, _frame: object) -> None:
    raise Preempted(f"received signal {signal.Signals(signum).name}")


def _limit_threads(threads: int) -> None:
    """One intra-op thread per reserved CPU: processes that share cores must not oversubscribe
    them (10-100x slower otherwise)."""
    os.environ["OMP_NUM_THREADS"] = str(max(1, threads))
    torch = __import__("sys").modules.get("torch")
    if torch is not None:
        torch.set_num_threads(max(1, threads))


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _since(start: float) -> float:
    return time.monotonic() - start


def _host() -> str:
    return socket.gethostname()
