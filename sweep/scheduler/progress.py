"""Progress of a sweep: a live table on a terminal, one line per event elsewhere.

The figures come from the store (every run logs its tokens there), so they include work done
by other drivers and by earlier launches: tokens and FLOPs done over the requested runs, and an
ETA from the rate since this driver started (FLOPs per second).
"""

from __future__ import annotations

import dataclasses
import sys
import time
from typing import TYPE_CHECKING, Any, TextIO

from slscale.identity import human_count
from slscale.spec import RunState

if TYPE_CHECKING:
    from slscale.sweep.scheduler.driver import Driver

REFRESH_SECONDS = 2.0
"""Least time between two reads of the store for the display."""


@dataclasses.dataclass
class Totals:
    """Work done over a sweep's requested runs."""

    tokens_done: float = 0.0
    tokens_total: float = 0.0
    flops_done: float = 0.0
    flops_total: float = 0.0


def totals(driver: Driver, tokens_done: dict[str, float]) -> Totals:
    """Tokens and FLOPs done (finished runs count whole) over the driver's requests."""
    out = Totals()
    for run_id, request in driver.requests.items():
        done = request.tokens if driver.final.get(run_id) == RunState.SUCCEEDED else 0.0
        done = max(done, min(tokens_done.get(run_id, 0.0), request.tokens))
        per_token = request.flops / request.tokens if request.tokens else 0.0
        out.tokens_done += done
        out.tokens_total += request.tokens
        out.flops_done += done * per_token
        out.flops_total += request.flops
    return out


class ConsoleReporter:
    """Shows a sweep's progress: a rich live table on a TTY, event lines otherwise."""

    def __init__(
        self, stream: TextIO | None = None, live: bool | None = None, quiet: bool = False
    ) -> None:
        self.stream = stream or sys.stdout
        self.live_enabled = self.stream.isatty() if live is None else live
        self.quiet = quiet
        self._live: Any = None
        self._last = 0.0
        self._start: tuple[float, float] | None = None  # (time, FLOPs done) at start
        self._events: list[str] = []

    def event(self, run_id: str, message: str) -> None:
        line = f"{time.strftime('%H:%M:%S')} {run_id}: {message}"
        if self.live_enabled:
            self._events = [*self._events[-4:], line]
        elif not self.quiet:
            print(line, file=self.stream, flush=True)

    def refresh(self, driver: Driver) -> None:
        if not self.live_enabled or time.monotonic() - self._last < REFRESH_SECONDS:
            return
        self._last = time.monotonic()
        frame = driver.store.progress_frame()
        done = dict(zip(frame["run_id"], frame["tokens_done"].fillna(0), strict=True))
        losses = dict(zip(frame["run_id"], frame["last_loss"], strict=True))
        figures = totals(driver, done)
        if self._start is None:
            self._start = (time.monotonic(), figures.flops_done)
        if self._live is None:
            from rich.console import Console
            from rich.live import Live

            self._live = Live(console=Console(file=self.stream), auto_refresh=False)
            self._live.start()
        self._live.update(self._render(driver, figures, done, losses), refresh=True)

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    def _render(
        self, driver: Driver, figures: Totals, done: dict[str, float], losses: dict[str, float]
    ) -> Any:
        from rich.console import Group
        from rich.table import Table

        table = Table(title=self._headline(figures), title_justify="left")
        for column in ("run", "state", "attempt", "tokens", "loss"):
            table.add_column(column)
        running = {f.request.run_id: f.attempt for f in driver.inflight.values()}
        shown = [*running, *driver.queue[:10]]
        for run_id in shown:
            request = driver.requests[run_id]
            state = "RUNNING" if run_id in running else "queued"
            loss = losses.get(run_id)
            table.add_row(
                run_id,
                state,
                str(running.get(run_id, "")),
                f"{human_count(done.get(run_id, 0))}/{human_count(request.tokens)}",
                "" if loss is None or loss != loss else f"{loss:.4f}",
            )
        return Group(table, *self._events)

    def _headline(self, figures: Totals) -> str:
        share = figures.flops_done / figures.flops_total if figures.flops_total else 1.0
        return (
            f"tokens {human_count(figures.tokens_done)}/{human_count(figures.tokens_total)}  "
            f"FLOPs {figures.flops_done:.3g}/{figures.flops_total:.3g} ({share:.0%})  "
            f"ETA {self._eta(figures)}"
        )

    def _eta(self, figures: Totals) -> str:
        if self._start is None:
            return "?"
        seconds = time.monotonic() - self._start[0]
        rate = (figures.flops_done - self._start[1]) / seconds if seconds > 0 else 0.0
        if rate <= 0:
            return "?"
        left = (figures.flops_total - figures.flops_done) / rate
        return (
            time.strftime("%H:%M:%S", time.gmtime(left)) if left < 86400 else f"{left / 3600:.0f} h"
        )
