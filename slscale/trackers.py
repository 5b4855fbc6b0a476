"""Mirror runs to the experiment trackers researchers watch: Weights & Biases and TensorBoard.

The results store stays the source of truth; a tracker is an opt-in copy of it. A run's
mirror receives the same metric rows the store gets (loss, lr, tokens, FLOPs, MFU,
validation losses, ...), keyed by the training step, its final summary, and its evals when
they are scored. Nothing is sent unless asked (``--wandb PROJECT``, ``--tensorboard DIR``).

A tracker that fails — not logged in, network down, quota, a package not installed — never
stops a run: the failure is logged once as a warning, that tracker is dropped for the rest of
the run, and the store still has everything.

Resumed attempts continue the same tracker run rather than starting a new one:

- W&B: the run is opened with ``resume="allow"`` and an id derived from the run id
  (:func:`wandb_run_id`), named by the run id and grouped by study. W&B's history is
  append-only by step: a step logged by an attempt that crashed before its checkpoint keeps
  that attempt's values there (the store keeps the re-run's).
- TensorBoard: one subfolder per run (``DIR/<run_id>``); a resumed attempt opens its writer
  with ``purge_step`` at its first new step, so TensorBoard drops what an earlier attempt wrote
  past the checkpoint and the curve reads as one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import re
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from slscale.compute import flops_6nd
from slscale.errors import ConfigError

if TYPE_CHECKING:
    from slscale.store.base import EvalResult, Metric

log = logging.getLogger(__name__)

WANDB_ID_CHARS = 64
"""Longest run id W&B takes; longer slscale ids are shortened with a hash suffix."""
_WANDB_BAD = re.compile(r"[/\\#?%:\s]")
"""Characters W&B does not allow in a run id."""


@dataclasses.dataclass(frozen=True)
class TrackerSettings:
    """Which trackers mirror a run (all off by default)."""

    wandb_project: str | None = None
    """W&B project; None: no W&B mirror."""
    wandb_entity: str | None = None
    """W&B entity (user or team); None: the logged-in default."""
    wandb_group: str | None = None
    """W&B group of the runs; None: the study's name (grid or workdir)."""
    wandb_tags: tuple[str, ...] = ()
    """W&B tags of every run."""
    wandb_dir: str | None = None
    """Where W&B keeps its local files (offline runs too); None: W&B's default (./wandb)."""
    tensorboard_dir: str | None = None
    """Folder of TensorBoard event files, one subfolder per run; None: no TensorBoard mirror."""

    def __post_init__(self) -> None:
        for name in ("wandb_project", "wandb_entity", "wandb_group", "tensorboard_dir"):
            value = getattr(self, name)
            if value is not None and not str(value).strip():
                raise ConfigError(f"tracker setting {name!r} is empty; leave it out instead")

    @property
    def enabled(self) -> bool:
        return bool(self.wandb_project or self.tensorboard_dir)


@dataclasses.dataclass(frozen=True)
class RunInfo:
    """What a tracker run is named, grouped and configured by."""

    run_id: str
    config: Mapping[str, Any]
    """Flat config: the run's spec with dotted names, N, D, FLOPs and the resources."""
    group: str | None = None
    resume_step: int = 0
    """Last step already logged by an earlier attempt (0: a fresh run)."""


class Tracker(Protocol):
    """One tracker's run."""

    name: str

    def log(self, step: int, values: Mapping[str, float]) -> None: ...

    def backfill(self, step: int, values: Mapping[str, float]) -> None:
        """Log a step an earlier attempt logged, if this tracker may have lost it."""

    def summary(self, values: Mapping[str, Any]) -> None: ...

    def evals(self, step: int, values: Mapping[str, float]) -> None:
        """Scores of the checkpoint at ``step``."""

    def close(self) -> None: ...


# ----------------------------------------------------------------------------- the mirror


class Mirror:
    """The trackers of one run; a tracker that raises is warned about once and dropped."""

    def __init__(self, trackers: Sequence[Tracker] = (), run_id: str = "") -> None:
        self._trackers = list(trackers)
        self._run_id = run_id

    @classmethod
    def open(cls, settings: TrackerSettings | None, info: RunInfo) -> Mirror:
        """Open every tracker ``settings`` asks for (those that fail to open are skipped)."""
        if settings is None or not settings.enabled:
            return cls()
        openers: list[tuple[str, Callable[[], Tracker]]] = []
        if settings.wandb_project:
            # W&B may take up to its init timeout to connect: open it beside the run
            openers.append(
                ("wandb", lambda: Background("wandb", lambda: WandbTracker(settings, info)))
            )
        if settings.tensorboard_dir:
            openers.append(("tensorboard", lambda: TensorBoardTracker(settings, info)))
        trackers: list[Tracker] = []
        for name, opener in openers:
            try:
                trackers.append(opener())
            except Exception as exc:  # any failure: a tracker must never stop a run
                _warn(name, info.run_id, "cannot start", exc)
        return cls(trackers, info.run_id)

    @property
    def names(self) -> list[str]:
        return [t.name for t in self._trackers]

    def metrics(self, rows: Iterable[Metric]) -> None:
        """Log metric rows, one tracker step per training step (in step order)."""
        if not self._trackers:
            return
        by_step: dict[int, dict[str, float]] = {}
        for row in rows:
            by_step.setdefault(int(row.step), {})[row.name] = float(row.value)
        for step in sorted(by_step):
            self._each("log", step, by_step[step])

    def backfill(self, rows: Iterable[Metric]) -> None:
        """The rows earlier attempts logged up to the checkpoint this attempt resumed from:
        trackers that may have lost them (a W&B process killed with its run) log them again."""
        if not self._trackers:
            return
        by_step: dict[int, dict[str, float]] = {}
        for row in rows:
            by_step.setdefault(int(row.step), {})[row.name] = float(row.value)
        for step in sorted(by_step):
            self._each("backfill", step, by_step[step])

    def summary(self, values: Mapping[str, Any]) -> None:
        if self._trackers:
            self._each("summary", dict(values))

    def evals(self, rows: Iterable[EvalResult]) -> None:
        """Eval scores as ``eval/<benchmark>/<variant>/<convention>`` (and ``.../margin``), at
        the step of the checkpoint they score."""
        if not self._trackers:
            return
        by_step: dict[int, list[EvalResult]] = {}
        for row in rows:
            by_step.setdefault(int(row.step), []).append(row)
        for step in sorted(by_step):
            self._each("evals", step, eval_values(by_step[step]))

    def close(self) -> None:
        self._each("close")
        self._trackers = []

    def _each(self, method: str, *args: Any) -> None:
        for tracker in list(self._trackers):
            try:
                getattr(tracker, method)(*args)
            except NotStarted as exc:
                _warn(tracker.name, self._run_id, "cannot start", exc.cause)
                self._trackers.remove(tracker)
            except Exception as exc:  # any failure: a tracker must never stop a run
                _warn(tracker.name, self._run_id, f"failed ({method})", exc)
                self._trackers.remove(tracker)
                _quiet_close(tracker)


class NotStarted(Exception):
    """A tracker opened in the background failed to start (``cause`` says why)."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


class Background:
    """A tracker opened in a thread of its own, so that a slow or unreachable server does not
    hold the run's start: calls made before it is open wait in order and go out once it is;
    if it fails to open, the next call raises :class:`NotStarted`. Closing waits for the
    opening at most ``START_WAIT_SECONDS``."""

    START_WAIT_SECONDS = 40.0
    """W&B's init timeout (30 s) and a margin."""

    def __init__(self, name: str, opener: Callable[[], Tracker]) -> None:
        self.name = name
        self._tracker: Tracker | None = None
        self._error: BaseException | None = None
        self._pending: list[tuple[str, tuple[Any, ...]]] = []
        self._ready = threading.Event()
        threading.Thread(target=self._open, args=(opener,), daemon=True).start()

    def _open(self, opener: Callable[[], Tracker]) -> None:
        try:
            self._tracker = opener()
        except BaseException as exc:  # reported by the next call, from the run's thread
            self._error = exc
        finally:
            self._ready.set()

    def _call(self, method: str, *args: Any) -> None:
        if not self._ready.is_set():
            self._pending.append((method, args))
            return
        if self._error is not None:
            raise NotStarted(self._error)
        assert self._tracker is not None
        pending, self._pending = self._pending, []
        for name, queued in pending:
            getattr(self._tracker, name)(*queued)
        getattr(self._tracker, method)(*args)

    def log(self, step: int, values: Mapping[str, float]) -> None:
        self._call("log", step, values)

    def backfill(self, step: int, values: Mapping[str, float]) -> None:
        self._call("backfill", step, values)

    def summary(self, values: Mapping[str, Any]) -> None:
        self._call("summary", values)

    def evals(self, step: int, values: Mapping[str, float]) -> None:
        self._call("evals", step, values)

    def close(self) -> None:
        if not self._ready.wait(self.START_WAIT_SECONDS):
            raise TimeoutError(
                f"not started after {self.START_WAIT_SECONDS:.0f} s; left behind at the run's end"
            )
        self._call("close")


def eval_values(rows: Iterable[EvalResult]) -> dict[str, float]:
    """Flat tracker values of eval rows (the last score of each set and convention)."""
    values: dict[str, float] = {}
    for row in rows:
        key = f"eval/{row.benchmark}/{row.variant}/{row.convention}"
        values[key] = float(row.value)
        if row.margin is not None:
            values[f"{key}/margin"] = float(row.margin)
    return values


def _warn(tracker: str, run_id: str, what: str, exc: BaseException) -> None:
    where = f" for run {run_id}" if run_id else ""
    hint = " (pip install 'slscale[trackers]')" if isinstance(exc, ModuleNotFoundError) else ""
    log.warning(
        "%s mirror %s%s: %s: %s%s; it is off for this run (the results store has everything)",
        tracker,
        what,
        where,
        type(exc).__name__,
        exc,
        hint,
    )


def _quiet_close(tracker: Tracker) -> None:
    with contextlib.suppress(Exception):  # already warned about this tracker
        tracker.close()


# ----------------------------------------------------------------------------- W&B


def wandb_run_id(run_id: str) -> str:
    """The W&B id of a run: its slscale id where W&B takes it as is, else a shortened one with
    a hash of the full id (stable, so every attempt and every export finds the same W&B run)."""
    clean = _WANDB_BAD.sub("-", run_id)
    if clean == run_id and len(run_id) <= WANDB_ID_CHARS:
        return run_id
    digest = hashlib.sha1(run_id.encode()).hexdigest()[:8]
    return f"{clean[: WANDB_ID_CHARS - 9]}-{digest}"


class WandbTracker:
    """A W&B run per slscale run (``resume="allow"``: every attempt continues it)."""

    name = "wandb"

    def __init__(self, settings: TrackerSettings, info: RunInfo) -> None:
        import wandb

        if settings.wandb_dir:
            Path(settings.wandb_dir).mkdir(parents=True, exist_ok=True)
        self._run = wandb.init(
            project=settings.wandb_project,
            entity=settings.wandb_entity,
            group=settings.wandb_group or info.group,
            tags=list(settings.wandb_tags) or None,
            id=wandb_run_id(info.run_id),
            name=info.run_id,
            config=dict(info.config),
            dir=settings.wandb_dir,
            # offline, every attempt writes a file of the same id that `wandb sync` joins
            resume=None if _wandb_offline() else "allow",
            reinit="create_new",
            settings=wandb.Settings(silent=True, console="off", init_timeout=30),
        )
        # a resumed W&B run takes steps from the one after the last it has (0 offline)
        self._floor = max(info.resume_step, int(self._run.starting_step or 0))

    def log(self, step: int, values: Mapping[str, float]) -> None:
        if step < self._floor:
            return  # W&B refuses to go back in steps; the store keeps the re-run's values
        self._run.log(dict(values), step=step)
        self._floor = step

    def backfill(self, step: int, values: Mapping[str, float]) -> None:
        # a resumed W&B run starts at the step after the last one it has (0 offline)
        if step >= int(self._run.starting_step or 0):
            self._run.log(dict(values), step=step)

    def summary(self, values: Mapping[str, Any]) -> None:
        self._run.summary.update(dict(values))

    def evals(self, step: int, values: Mapping[str, float]) -> None:
        """In the run's summary: W&B's history cannot go back to an earlier step."""
        self._run.summary.update({**values, "eval/step": step})

    def close(self) -> None:
        self._run.finish()


def _wandb_offline() -> bool:
    import os

    return os.environ.get("WANDB_MODE", "").lower() in ("offline", "dryrun", "disabled")


# ----------------------------------------------------------------------------- TensorBoard


class TensorBoardTracker:
    """Event files in ``<tensorboard_dir>/<run_id>`` (scalars by training step)."""

    name = "tensorboard"

    def __init__(self, settings: TrackerSettings, info: RunInfo) -> None:
        from torch.utils.tensorboard import SummaryWriter

        folder = Path(str(settings.tensorboard_dir)) / info.run_id
        purge = info.resume_step + 1 if info.resume_step else None
        self._writer = SummaryWriter(log_dir=str(folder), purge_step=purge)
        if info.resume_step == 0:
            self._writer.add_text("config", _config_table(info.config), 0)

    def log(self, step: int, values: Mapping[str, float]) -> None:
        for key, value in values.items():
            self._writer.add_scalar(key, value, step)
        self._writer.flush()

    def backfill(self, step: int, values: Mapping[str, float]) -> None:
        """Nothing: every logged step was flushed to the event files at once."""

    def evals(self, step: int, values: Mapping[str, float]) -> None:
        self.log(step, values)

    def summary(self, values: Mapping[str, Any]) -> None:
        numbers = {k: float(v) for k, v in values.items() if _is_number(v)}
        for key, value in numbers.items():
            self._writer.add_scalar(f"summary/{key}", value, 0)
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


def _config_table(config: Mapping[str, Any]) -> str:
    lines = ["| key | value |", "|---|---|"]
    lines += [f"| {key} | {value} |" for key, value in config.items()]
    return "\n".join(lines)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# ----------------------------------------------------------------------------- command line


def add_tracker_arguments(parser: Any) -> None:
    """``--wandb PROJECT`` (with ``--wandb-entity``, ``--wandb-group``, ``--wandb-tags``,
    ``--wandb-dir``) and ``--tensorboard DIR`` on a command's parser."""
    group = parser.add_argument_group(
        "experiment trackers (opt-in mirrors; the results store stays the source of truth)"
    )
    group.add_argument("--wandb", metavar="PROJECT", help="mirror runs to this W&B project")
    group.add_argument(
        "--wandb-entity", metavar="ENTITY", help="W&B user or team (default: the logged-in one)"
    )
    group.add_argument(
        "--wandb-group", metavar="GROUP", help="W&B group (default: the study folder's name)"
    )
    group.add_argument("--wandb-tags", metavar="TAGS", help="W&B tags, comma-separated")
    group.add_argument("--wandb-dir", metavar="DIR", help="W&B's local folder (default: ./wandb)")
    group.add_argument("--tensorboard", metavar="DIR", help="write TensorBoard event files here")


def settings_from_args(args: Any) -> TrackerSettings | None:
    """The tracker settings of parsed ``add_tracker_arguments`` flags (None: no tracker)."""
    wandb_only = ("wandb_entity", "wandb_group", "wandb_tags", "wandb_dir")
    given = [name for name in wandb_only if getattr(args, name, None)]
    if given and not args.wandb:
        flags = ", ".join("--" + name.replace("_", "-") for name in given)
        raise ConfigError(f"{flags} need --wandb PROJECT")
    tags = tuple(t.strip() for t in (args.wandb_tags or "").split(",") if t.strip())
    settings = TrackerSettings(
        wandb_project=args.wandb,
        wandb_entity=args.wandb_entity,
        wandb_group=args.wandb_group,
        wandb_tags=tags,
        wandb_dir=None if args.wandb_dir is None else str(Path(args.wandb_dir).absolute()),
        tensorboard_dir=None
        if args.tensorboard is None
        else str(Path(args.tensorboard).absolute()),
    )
    return settings if settings.enabled else None


# ----------------------------------------------------------------------------- after the fact


@dataclasses.dataclass(frozen=True)
class Pushed:
    """What :func:`push_study` sent."""

    runs: int
    metric_rows: int
    eval_rows: int
    fits: int


def push_study(
    store: Any, settings: TrackerSettings, group: str, fits: Sequence[Path] = ()
) -> Pushed:
    """Mirror a study's store to the trackers of ``settings`` after the fact (for sweeps run
    without the flags): each run's config, curve, summary and evals, then one ``fits-<group>``
    tracker run whose summary holds each fit result's parameters, exponents and intervals."""
    from slscale.store.base import EvalResult, Metric

    evals = store.evals_frame()
    metric_rows = eval_rows = 0
    runs = store.list_runs()
    for run in runs:
        summary = dict(run.summary)
        config = run_config(run.spec, summary.get("n_params"), run.spec.get("tokens"))
        mirror = Mirror.open(settings, RunInfo(run.run_id, config, group))
        frame = store.metrics_frame(run_ids=[run.run_id])
        rows = [
            Metric(run.run_id, int(r.step), str(r.name), float(r.value))
            for r in frame.itertuples(index=False)
        ]
        mine = evals[evals["run_id"] == run.run_id] if len(evals) else evals
        scores = [
            EvalResult(
                run.run_id, int(r.step), str(r.benchmark), str(r.variant), float(r.value),
                int(r.n_items), str(r.convention), _optional(getattr(r, "margin", None)),
            )
            for r in mine.itertuples(index=False)
        ]  # fmt: skip
        mirror.metrics(rows)
        mirror.summary({**summary, "state": str(run.state)})
        mirror.evals(scores)
        mirror.close()
        metric_rows, eval_rows = metric_rows + len(rows), eval_rows + len(scores)
    if fits:
        mirror = Mirror.open(settings, RunInfo(f"fits-{group}", {"study": group}, group))
        mirror.summary({k: v for path in fits for k, v in fit_values(path).items()})
        mirror.close()
    return Pushed(len(runs), metric_rows, eval_rows, len(fits))


def fit_values(path: Path) -> dict[str, float]:
    """``fit/<label>/<params|exponents>/<name>`` (and ``.../ci_low``, ``ci_high``) of a fit
    result JSON (``slscale fit ... --json``)."""
    import json

    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"--fits {path}: cannot read it as a fit result ({exc})") from None
    if not isinstance(raw, dict) or not str(raw.get("schema", "")).startswith("slscale.fit/"):
        raise ConfigError(f"--fits {path}: not a fit result (no 'schema': 'slscale.fit/...')")
    label = str(raw.get("label") or Path(path).stem)
    out: dict[str, float] = {}
    for part in ("params", "exponents"):
        for name, value in (raw.get(part) or {}).items():
            if _is_number(value):
                out[f"fit/{label}/{part}/{name}"] = float(value)
    for name, bounds in (raw.get("ci") or {}).items():
        for side, value in zip(("ci_low", "ci_high"), bounds, strict=False):
            if _is_number(value):
                out[f"fit/{label}/params/{name}/{side}"] = float(value)
    return out


def run_config(
    spec: Mapping[str, Any], n_params: Any, tokens: Any, extra: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """A run's tracker config: its spec flattened as the export does (dotted names), N, D,
    6·N·D and ``extra`` (the resources it ran on, say)."""
    from slscale.store.frames import flatten

    out: dict[str, Any] = flatten(dict(spec))
    if _is_number(n_params):
        out["N"] = n_params
    if _is_number(tokens):
        out["D"] = tokens
    if _is_number(n_params) and _is_number(tokens):
        out["flops_6nd"] = flops_6nd(float(n_params), float(tokens))
    return {**out, **(extra or {})}


def _optional(value: Any) -> float | None:
    if value is None or not _is_number(value) or value != value:  # None or NaN
        return None
    return float(value)
