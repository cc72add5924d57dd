"""Progress of a run with an ETA: a rich progress bar on a terminal, plain lines otherwise."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)


def format_duration(seconds: float) -> str:
    """A short human duration: 45s, 3m05s, 1h02m."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def notice_stream() -> TextIO:
    """Where progress and notices go: stdout at a terminal, else stderr, so that what a command
    prints as its result (a plan, a report) can be piped clean."""
    return sys.stdout if sys.stdout.isatty() else sys.stderr


class RunProgress:
    """Counts finished runs and estimates the time left from the plan's estimate and the pace so far."""

    def __init__(self, total: int, estimate_s: float, *, console: Console | None = None) -> None:
        self.total = total
        self.done = 0
        self._estimate_left = estimate_s
        self._estimate_done = 0.0
        self._started = time.monotonic()
        self._console = console or Console(file=notice_stream())
        self._bar: tuple[Progress, TaskID] | None = None
        if self._console.is_terminal:
            bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("ETA {task.fields[eta]}"),
                console=self._console,
                transient=True,
            )
            self._bar = bar, bar.add_task("starting", total=total, eta=format_duration(estimate_s))
            bar.start()

    def eta_s(self) -> float:
        """Seconds left: the remaining estimate, scaled by how the estimate has held up so far."""
        if self._estimate_done <= 0:
            return self._estimate_left
        pace = (time.monotonic() - self._started) / self._estimate_done
        return self._estimate_left * pace

    def extend(self, runs: int, estimate_s: float) -> None:
        """More runs to do than planned at the start (`repeat: auto` added a repetition)."""
        self.total += runs
        self._estimate_left += estimate_s
        if self._bar:
            bar, task = self._bar
            bar.update(task, total=self.total)

    def message(self, text: str) -> None:
        """A line that stays on screen (above the bar on a terminal)."""
        if self._bar:
            self._bar[0].console.print(text, markup=False, highlight=False)
        else:
            print(text, file=self._console.file, flush=True)

    def start_run(self, label: str) -> None:
        """Show what runs now."""
        if self._bar:
            bar, task = self._bar
            bar.update(task, description=label)

    def finish_run(self, line: str, estimate_s: float) -> None:
        """Count one run as done (its share of the estimate is `estimate_s`) and report it."""
        self.done += 1
        self._estimate_done += estimate_s
        self._estimate_left = max(0.0, self._estimate_left - estimate_s)
        eta = format_duration(self.eta_s())
        if self._bar:
            bar, task = self._bar
            bar.update(task, advance=1, eta=eta)
            bar.console.print(f"[{self.done}/{self.total}] {line}", markup=False, highlight=False)
        else:
            print(f"[{self.done}/{self.total}] {line} (ETA {eta})", file=self._console.file, flush=True)

    def close(self) -> None:
        """Remove the bar; messages already printed stay."""
        if self._bar:
            self._bar[0].stop()
            self._bar = None
