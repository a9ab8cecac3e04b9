"""Progress of long loops that a person can follow wherever the output goes.

On a terminal: a rich bar. Through a pipe (`make pipeline > log`, DVC under the Prefect flow, whose lines
become the flow run's log in the UI) a bar shows only its last frame, so there it is one plain line every
SORA_PROGRESS_SECONDS (default 20) and one at the end: done/total, rate, ETA, and whatever the caller adds (a
loss). Lightning fits get the same through sora.training.progress_bar.LineProgressBar.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

DEFAULT_SECONDS = 20.0  # under the half minute a reader waits: a step of up to 10 s still shows in time


def interval_seconds() -> float:
    return float(os.environ.get("SORA_PROGRESS_SECONDS", DEFAULT_SECONDS))


def on_terminal() -> bool:
    return sys.stdout.isatty()


def _clock(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    return (
        f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
        if seconds >= 3600
        else (f"{seconds // 60}:{seconds % 60:02d}")
    )


class ProgressLines:
    """Prints `label: done/total (pct), rate/s, elapsed, ETA[, extra]` at most every `interval` seconds."""

    def __init__(self, label: str, total: int | None, interval: float | None = None, out=None):
        self.label, self.total = label, total
        self.interval = interval_seconds() if interval is None else interval
        self.out = out or sys.stdout
        self.done = 0
        self.start = self.last = time.monotonic()

    def line(self, extra: str = "") -> str:
        elapsed = time.monotonic() - self.start
        rate = self.done / elapsed if elapsed > 0 else 0.0
        parts = [f"{self.label}: {self.done}" + (f"/{self.total} ({self.done / self.total:.0%})" if self.total else "")]
        parts.append(f"{rate:.1f}/s, {_clock(elapsed)} elapsed")
        if self.total and rate > 0:
            parts.append(f"ETA {_clock((self.total - self.done) / rate)}")
        return ", ".join(parts + ([extra] if extra else []))

    def describe(self, label: str) -> None:
        self.label = label

    def advance(self, n: int = 1, extra: Callable[[], str] | None = None) -> None:
        self.done += n
        now = time.monotonic()
        if now - self.last >= self.interval:
            self.last = now
            print(self.line(extra() if extra else ""), file=self.out, flush=True)

    def finish(self, extra: str = "") -> None:
        print(self.line(extra), file=self.out, flush=True)


class _RichTask:
    def __init__(self, bar, task):
        self.bar, self.task = bar, task

    def describe(self, label: str) -> None:
        self.bar.update(self.task, description=label)

    def advance(self, n: int = 1, extra: Callable[[], str] | None = None) -> None:
        self.bar.advance(self.task, n)


@contextmanager
def progress(label: str, total: int | None) -> Iterator[ProgressLines | _RichTask]:
    """`with progress("attacks", n) as p: ... p.advance(k)`: a rich bar on a terminal, timed lines otherwise;
    p.describe(text) renames what is being done."""
    if on_terminal():
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
        with Progress(*columns) as bar:
            yield _RichTask(bar, bar.add_task(label, total=total))
        return
    lines = ProgressLines(label, total)
    yield lines
    lines.finish()
