"""Progress of long loops that a person can follow wherever the output goes.

On a terminal: a rich bar. Through a pipe (`make pipeline > log`, DVC under the Prefect flow, whose lines
become the flow run's log in the UI) a bar shows only its last frame, so there it is one plain line every
SORA_PROGRESS_SECONDS (default 20) and one at the end: done/total, rate, ETA, and whatever the caller adds (a
loss). Lightning fits get the same through sora.training.progress_bar.LineProgressBar.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

DEFAULT_SECONDS = 20.0  # under the half minute a reader waits: a step of up to 10 s still shows in time


def interval_seconds() -> float:
    return float(os.environ.get("SORA_PROGRESS_SECONDS", DEFAULT_SECONDS))


def on_terminal() -> bool:
    return sys.stdout.isatty()


def _clock(seconds: float) -> str:
    hours, rest = divmod(int(max(seconds, 0)), 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


class ProgressLines:
    """Prints `label: done/total (pct), rate/s, elapsed, ETA[, extra]` every `interval` seconds: on an
    advance once the interval has passed, and, with `ticker`, from a background thread when one step takes
    longer than the interval (a slow fit still shows it is alive, with its elapsed time)."""

    def __init__(self, label: str, total: int | None, interval: float | None = None, out=None, ticker: bool = True):
        self.label, self.total = label, total
        self.interval = interval_seconds() if interval is None else interval
        self.out = out or sys.stdout
        self.done = 0
        self.extra: Callable[[], str] | None = None
        self.start = self.last = time.monotonic()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ticker = threading.Thread(target=self._tick, daemon=True) if ticker and self.interval > 0 else None
        if self._ticker is not None:
            self._ticker.start()

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

    def _print_if_due(self) -> None:
        with self._lock:
            now = time.monotonic()
            if now - self.last >= self.interval:
                self.last = now
                print(self.line(self.extra() if self.extra else ""), file=self.out, flush=True)

    def _tick(self) -> None:
        while not self._stop.wait(self.interval / 4):
            self._print_if_due()

    def advance(self, n: int = 1, extra: Callable[[], str] | None = None) -> None:
        self.done += n
        if extra is not None:
            self.extra = extra
        self._print_if_due()

    def close(self) -> None:
        """Stop the ticker without a closing line (the work failed)."""
        self._stop.set()
        if self._ticker is not None and self._ticker is not threading.current_thread():
            self._ticker.join()

    def finish(self, extra: str = "") -> None:
        self.close()
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
    try:
        yield lines
    except BaseException:
        lines.close()
        raise
    lines.finish()
