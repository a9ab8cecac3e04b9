"""What every stage entry point shares: params loading, one-line errors, rich progress, paths."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from sora.config import ConfigError, Params, load_params
from sora.data.sources import DataError

RAW = Path("data/raw")
PROCESSED = Path("data/processed")
VOCAB = Path("data/vocab.json")
METRICS = Path("metrics")
PLOTS = Path("plots")
MODELS = Path("models")


def main(stage: Callable[[Params], None]) -> None:
    """Run a stage; known input/config problems become one line on stderr and exit 1 (no traceback)."""
    try:
        stage(load_params())
    except (ConfigError, DataError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)


def progress():
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        transient=False,
        refresh_per_second=2,
    )


def require(*paths: Path) -> None:
    missing = [str(p) for p in paths if not Path(p).exists()]
    if missing:
        raise FileNotFoundError(f"missing input {', '.join(missing)}: run the upstream stage first (dvc repro)")
