"""``slscale demo``: the whole study in miniature, offline, on one CPU machine.

Like :mod:`slscale.cli`, this module sits above the stages and chains them:

1. world    — generate the synthetic speech-text world (text, pseudo-speech, eval sets);
2. textlms  — pretrain one tiny TextLM per model size on the world's text (the interleaved
              arm's initialisation);
3. sweep    — launch the grid through the Ray scheduler and the DeepSpeed trainer: IsoFLOP
              budgets × sizes × {textless from scratch, interleaved from the TextLM}, plus a
              synthetic-speech ablation (real only / both / synthetic only) on one cell;
4. eval     — score every finished run on the sSC/tSC/sBLIMP/sWUGGY-like sets (S→S, and the
              cross-modal variants for the interleaved arm), scores to the store;
5. figures  — fit every law per arm and draw every figure and table;
6. report   — ``report.md`` and ``report.html`` stating the findings with numbers.

Every stage is cached: a second run finds everything done and does nothing; an interrupted
run (Ctrl-C: one line saying so, exit status 130) resumes where it stopped when the same
command is run again (finished stages and runs stay finished, a run in flight resumes from the
checkpoint it wrote when stopped). Stage timings are written to ``timings.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from slscale.analysis.pipeline import draw_study, print_drawn
from slscale.errors import SlscaleError
from slscale.identity import run_id
from slscale.models.world.generate import WorldConfig, generate_world
from slscale.spec import RunSpec, RunState
from slscale.store import open_store
from slscale.sweep.examples import mini_cpu
from slscale.sweep.generators import isoflop_grid
from slscale.sweep.grid import GridSpec, expand
from slscale.sweep.io import save_grid
from slscale.sweep.launch import LaunchOptions, launch, prepare, trainer_run_function
from slscale.sweep.plan import param_counts
from slscale.sweep.scheduler.progress import ConsoleReporter
from slscale.workflows.demo_report import write_report


@dataclasses.dataclass(frozen=True, kw_only=True)
class DemoScale:
    """How big the miniature study is."""

    name: str
    world_words: int
    """Words of the world's text corpus (speech: as many; synthetic speech: half)."""
    eval_pairs: int
    """Pairs per evaluation set."""
    sizes: tuple[str, ...]
    """Model sizes (miniature presets)."""
    budgets: tuple[float, ...]
    """IsoFLOP budgets, FLOPs (6ND, N with embeddings)."""
    textlm_steps: int
    """Pretraining steps of each TextLM."""
    ablation: bool = True
    """Add the synthetic-speech ablation (two extra runs on one cell)."""
    arms: tuple[str, ...] = ("textless", "interleaved")
    world: tuple[tuple[str, int | float], ...] = ()
    """Extra world settings: (``slscale world generate`` flag without its dashes, value), each a
    :class:`~slscale.models.world.generate.WorldConfig` field (``speaker-spread``:
    ``speaker_spread``)."""
    recipe: tuple[tuple[str, int | float], ...] = ()
    """Recipe fields set over the mini-cpu grid's (e.g. context_length, global_batch_size)."""


SCALES = {
    # The default suite's end-to-end test: 4 runs through the same code path.
    "tiny": DemoScale(
        name="tiny",
        world_words=40_000,
        eval_pairs=40,
        sizes=("mini-25k", "mini-50k"),
        budgets=(6e10,),
        textlm_steps=60,
        ablation=False,
    ),
    "small": DemoScale(
        name="small",
        world_words=400_000,
        eval_pairs=1000,
        sizes=("mini4-25k", "mini4-50k", "mini4-100k", "mini4-200k"),
        budgets=(3e11, 6e11, 1.2e12),
        textlm_steps=400,
        world=(("topics", 4), ("objects-per-topic", 3), ("names", 4), ("speaker-spread", 0.3)),
        recipe=(("context_length", 256), ("global_batch_size", 4)),
    ),
    "medium": DemoScale(
        name="medium",
        world_words=2_000_000,
        eval_pairs=500,
        sizes=("mini-25k", "mini-50k", "mini-100k", "mini-200k", "mini-400k"),
        budgets=(3e11, 1e12, 3e12),
        textlm_steps=1500,
    ),
}

SUITES = "sSC,tSC,sBLIMP,sWUGGY"
EXIT_INTERRUPTED = 130
"""Exit status after Ctrl-C (128 + SIGINT, as shells report it)."""
INTERRUPTED = (
    "slscale: demo interrupted; run the same command again to resume it "
    "(finished stages and runs are kept): {command}"
)
CROSS_MODAL = "S,S2T,T2S,T"


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("demo", help="the whole study in miniature on this machine (CPU, offline)")
    p.add_argument("--workdir", required=True, type=Path, help="folder of the study")
    p.add_argument("--scale", default="small", choices=sorted(SCALES), help="size of the study")
    p.add_argument("--seed", type=int, default=0, help="seed of the world and the runs")
    p.add_argument("--num-cpus", type=int, default=None, help="CPUs for Ray (default: all)")
    p.add_argument("--quiet", action="store_true", help="no live progress display")
    p.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    demo = Demo(
        args.workdir.resolve(),
        SCALES[args.scale],
        seed=args.seed,
        num_cpus=args.num_cpus,
        quiet=args.quiet,
    )
    try:
        demo.run()
    except KeyboardInterrupt:
        # Every stage keeps what it finished and a run in flight is left resumable (PREEMPTED,
        # checkpointed), so the same command picks up where this one stopped.
        print(INTERRUPTED.format(command=_command_line(args)), file=sys.stderr)
        return EXIT_INTERRUPTED
    print(
        f"report: {demo.workdir / 'report.md'} (and report.html); figures: "
        f"{demo.workdir / 'figures'}"
    )
    return 0


class Demo:
    """The six stages over one workdir; each is skipped when its output is there."""

    def __init__(
        self,
        workdir: Path,
        scale: DemoScale,
        *,
        seed: int = 0,
        num_cpus: int | None = None,
        quiet: bool = False,
    ) -> None:
        self.workdir, self.scale, self.seed = workdir, scale, seed
        self.num_cpus, self.quiet = num_cpus, quiet
        self.world = workdir / "world"
        self.textlms = workdir / "textlms"
        self.timings: dict[str, float] = {}

    def run(self) -> None:
        """Run every stage; a stage with nothing to do keeps the time it took when it ran, and
        a stage that was interrupted counts the time it spent before (``<stage> interrupted``
        in ``timings.json`` until it finishes)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._check_scale()
        path = self.workdir / "timings.json"
        self.timings = json.loads(path.read_text()) if path.exists() else {}
        for name, stage in (
            ("world", self.make_world),
            ("textlms", self.make_textlms),
            ("sweep", self.sweep),
            ("eval", self.evaluate),
            ("figures", self.figures),
            ("report", self.report),
        ):
            start = time.perf_counter()
            before = self.timings.get(f"{name} interrupted", 0.0)
            self._say(f"[{name}]")
            try:
                ran = stage()
            except BaseException:
                self._time(path, f"{name} interrupted", before + time.perf_counter() - start)
                raise
            if ran:
                self.timings.pop(f"{name} interrupted", None)
                self._time(path, name, before + time.perf_counter() - start)
            elif f"{name} interrupted" in self.timings:  # it finished its work when stopped
                self.timings.pop(f"{name} interrupted")
                self._time(path, name, self.timings.get(name, before))
        self._say("stage seconds: " + ", ".join(f"{k} {v}" for k, v in self.timings.items()))

    def _time(self, path: Path, key: str, seconds: float) -> None:
        """Record a stage's seconds and the total (last), kept on disk at once."""
        self.timings[key] = round(seconds, 1)
        stages = {k: v for k, v in self.timings.items() if k != "total"}
        self.timings = {**stages, "total": round(sum(stages.values()), 1)}
        path.write_text(json.dumps(self.timings, indent=1) + "\n")

    def _check_scale(self) -> None:
        marker = self.workdir / "demo.json"
        settings = {"scale": dataclasses.asdict(self.scale), "seed": self.seed}
        if marker.exists() and json.loads(marker.read_text()) != json.loads(json.dumps(settings)):
            raise SlscaleError(
                f"{self.workdir} holds a demo of another scale or seed "
                f"({marker}); use a new --workdir"
            )
        marker.write_text(json.dumps(settings, indent=1) + "\n")

    def _say(self, text: str) -> None:
        print(text, flush=True)

    # ------------------------------------------------------------------------- 1. world

    def make_world(self) -> bool:
        if (self.world / "world.json").exists():
            self._say("  world: cached")
            return False
        settings = {key.replace("-", "_"): value for key, value in self.scale.world}
        config = WorldConfig(
            words=self.scale.world_words,
            eval_pairs=self.scale.eval_pairs,
            seed=self.seed,
            **settings,  # type: ignore[arg-type]  # DemoScale.world: WorldConfig fields
        )
        record = generate_world(self.world, config)
        self._say(f"  world: {len(record['eval_sets'])} evaluation sets, {record['seconds']} s")
        return True

    # ------------------------------------------------------------------------- 2. TextLMs

    def textlm_dir(self, size: str) -> Path:
        return self.textlms / f"textlm-{size}"

    def make_textlms(self) -> bool:
        todo = [s for s in self.scale.sizes if not (self.textlm_dir(s) / "pretrain.json").exists()]
        if not todo:
            self._say("  textlms: cached")
            return False
        # One thread each, two at a time: two single-thread jobs beat one two-thread job.
        with ThreadPoolExecutor(max_workers=max(1, min(2, os.cpu_count() or 1))) as pool:
            list(pool.map(self._pretrain, todo))
        return True

    def _pretrain(self, size: str) -> None:
        out = self.textlm_dir(size)
        tmp = out.with_name(out.name + ".partial")
        _run_cli(
            [
                "world",
                "pretrain-textlm",
                "--world",
                str(self.world),
                "--family",
                "llama",
                "--size",
                size,
                "--out",
                str(tmp),
                "--steps",
                str(self.scale.textlm_steps),
                "--seed",
                str(self.seed),
                "--threads",
                "1",
            ],
            quiet=True,
        )
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)  # a folder named textlm-<size> is always complete
        self._say(f"  textlm-{size}: {json.loads((out / 'pretrain.json').read_text())}")

    # ------------------------------------------------------------------------- 3. sweep

    def grid_specs(self) -> list[RunSpec]:
        """The scaling grid and the ablation, with TextLM inits in this workdir."""
        base = mini_cpu()
        arms = [a for a in base.axes["arm"] if a["modality"] in self.scale.arms]
        arms = [
            {**a, "init": str(self.textlms / a["init"])} if a["init"] != "scratch" else a
            for a in arms
        ]
        recipe = {**base.base["recipe"], **dict(self.scale.recipe)}
        scaling = dataclasses.replace(
            base,
            name=f"demo-{self.scale.name}",
            base={**base.base, "recipe": recipe},
            axes={"arm": arms, "seed": [self.seed]},
            generators=[
                isoflop_grid(
                    self.scale.budgets, self.scale.sizes, tolerance=0.1, min_tokens_per_param=0.25
                )
            ],
        )
        grids = [scaling]
        if self.scale.ablation:
            grids.append(self._ablation(scaling))
        for grid in grids:
            save_grid(grid, self.workdir / f"{grid.name}.yaml")
        # The ablation's real-only run is a cell of the scaling grid: same id, kept once.
        specs = {run_id(s): s for g in grids for s in expand(g, param_counts)}
        return list(specs.values())

    def _ablation(self, scaling: GridSpec) -> GridSpec:
        """Interleaved runs of one cell with real, mixed and synthetic speech (SIMS Table 1);
        the real-only run is the scaling grid's own cell."""
        inter = [a for a in scaling.axes["arm"] if a["modality"] == "interleaved"]
        size = self.scale.sizes[len(self.scale.sizes) // 2]
        budget = self.scale.budgets[-1]
        return GridSpec(
            name=f"demo-{self.scale.name}-ablation",
            description="Synthetic-speech ablation: real only / both / synthetic only.",
            base=scaling.base,
            axes={"arm": inter, "seed": [self.seed], "mix.synthetic_share": [0.0, 0.5, 1.0]},
            generators=[isoflop_grid([budget], [size], tolerance=0.1, min_tokens_per_param=0.25)],
        )

    def sweep(self) -> bool:
        specs = self.grid_specs()
        options = LaunchOptions(workdir=str(self.workdir), num_cpus=self.num_cpus)
        if not self._runs_left(specs, options):
            self._say(f"  sweep: all {len(specs)} runs done")
            return False
        run_fn = trainer_run_function(str(self.world))
        reporter = ConsoleReporter(quiet=self.quiet)
        try:
            report = launch(specs, options, run_fn=run_fn, reporter=reporter)
        finally:
            reporter.close()
        failed = {k: v for k, v in report.states.items() if v is not RunState.SUCCEEDED}
        if failed:
            raise SlscaleError(
                f"{len(failed)} of {len(specs)} runs did not succeed "
                f"({', '.join(sorted(failed))}); see `slscale status --workdir {self.workdir}`"
            )
        return True

    def _runs_left(self, specs: list[RunSpec], options: LaunchOptions) -> bool:
        """Register the runs; True if any still has to run (no Ray start-up otherwise)."""
        with open_store(self.workdir) as store:
            return bool(prepare(specs, options, store).to_run)

    # ------------------------------------------------------------------------- 4. eval

    def evaluate(self) -> bool:
        with open_store(self.workdir) as store:
            runs = store.runs_frame()
            done = set(store.evals_frame()["run_id"])
        todo = [
            (r["run_id"], r["modality"])
            for _, r in runs.iterrows()
            if r["state"] == RunState.SUCCEEDED and r["run_id"] not in done
        ]
        if not todo:
            self._say("  eval: cached")
            return False
        with ThreadPoolExecutor(max_workers=max(1, min(2, os.cpu_count() or 1))) as pool:
            list(pool.map(lambda item: self._eval_run(*item), todo))
        return True

    def _eval_run(self, run_id: str, modality: str) -> None:
        variants = "S" if modality == "textless" else CROSS_MODAL
        model = self.workdir / "runs" / run_id / "model"
        _run_cli(
            [
                "eval",
                str(model),
                "--workdir",
                str(self.workdir),
                "--suite",
                SUITES,
                "--variants",
                variants,
                "--manifest-dir",
                str(self.world / "eval"),
                "--conventions",
                "slamkit;cuervo-marxer",
            ],
            quiet=True,
            env={"OMP_NUM_THREADS": "1"},
        )
        self._say(f"  evaluated {run_id}")

    # ------------------------------------------------------------------------- 5. figures

    def figures(self) -> bool:
        out = self.workdir / "figures"
        stamp, fingerprint = out / "source.txt", self._store_fingerprint()
        if stamp.exists() and stamp.read_text() == fingerprint:
            self._say("  figures: cached")
            return False
        # the scaling laws: real speech only (the ablation's synthetic runs are tables' rows)
        print_drawn(draw_study(str(self.workdir), out, where=["mix.synthetic_share=0.0"]))
        stamp.write_text(fingerprint)
        return True

    def _store_fingerprint(self) -> str:
        """What the figures were drawn from: every run's state and time, and the scores."""
        with open_store(self.workdir) as store:
            runs = store.runs_frame()[["run_id", "state", "updated_at"]].astype(str)
            evals = store.evals_frame()
        text = runs.sort_values("run_id").to_csv(index=False) + f"evals={len(evals)}"
        return hashlib.sha256(text.encode()).hexdigest()

    # ------------------------------------------------------------------------- 6. report

    def report(self) -> bool:
        write_report(self.workdir, self.scale.name, self.timings)
        return True


def _command_line(args: argparse.Namespace) -> str:
    """The demo command of ``args``, as the user can type it again."""
    argv = ["slscale", "demo", "--workdir", str(args.workdir), "--scale", args.scale]
    argv += ["--seed", str(args.seed)] if args.seed else []
    argv += ["--num-cpus", str(args.num_cpus)] if args.num_cpus is not None else []
    return shlex.join(argv + (["--quiet"] if args.quiet else []))


def _run_cli(argv: Sequence[str], *, quiet: bool, env: dict[str, str] | None = None) -> None:
    """Run a slscale command in its own process: the TextLMs and the evaluations run two at a
    time with one torch thread each, which one process cannot do (torch's thread count is
    per process)."""
    proc = subprocess.run(
        [sys.executable, "-m", "slscale.cli", *argv],
        capture_output=quiet,
        text=True,
        env={**os.environ, **(env or {})},
    )
    if proc.returncode in (EXIT_INTERRUPTED, -signal.SIGINT):
        raise KeyboardInterrupt  # Ctrl-C reached the command (its process group's signal)
    if proc.returncode != 0:
        tail = (proc.stderr or "").strip().splitlines()[-3:] if quiet else []
        raise SlscaleError(f"`slscale {' '.join(argv[:2])} …` failed: {' | '.join(tail)}")
