"""The wrapper every stage module runs under: `python -m sora.stages.<name> --<role> PATH ...`.

It reads the stage's declaration from dvc.yaml, parses the path arguments dvc.yaml passes, loads params,
opens the stage's MLflow child run (global rank zero only: one run per stage whatever the process count),
and turns known input and config problems into one line on stderr with exit status 1.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sora.config import ConfigError, Params, load_params
from sora.errors import DataError
from sora.pipeline.processes import die_with_parent
from sora.pipeline.spec import StageSpec, stage_spec

WORK_ROOT = Path(".sora/work")
INPUT_ERRORS = Path(".sora/input-errors")  # <stage>: the one-line error of its last run, when input was bad


class StageArgs:
    """Paths given on the command line as `--role path`, read as attributes (`args.train`)."""

    def __init__(self, stage: str, argv: list[str]):
        self._stage = stage
        self._paths: dict[str, Path] = {}
        if len(argv) % 2:
            raise ConfigError(f"stage '{stage}': arguments must be --role PATH pairs, got {argv}")
        for flag, value in zip(argv[::2], argv[1::2]):
            if not flag.startswith("--"):
                raise ConfigError(f"stage '{stage}': expected --role before {value!r}")
            self._paths[flag[2:].replace("-", "_")] = Path(value)

    def __getattr__(self, role: str) -> Path:
        if role.startswith("_"):
            raise AttributeError(role)
        try:
            return self._paths[role]
        except KeyError:
            raise ConfigError(
                f"stage '{self._stage}' needs --{role.replace('_', '-')} PATH in its dvc.yaml cmd"
            ) from None


def declared_args(stage: str) -> StageArgs:
    """The paths a stage's dvc.yaml cmd passes it: what benchmarks and notebooks read to use the same files."""
    import shlex

    words = shlex.split(stage_spec(stage).cmd)
    return StageArgs(stage, words[words.index("-m") + 2 :])


@dataclass
class StageContext:
    spec: StageSpec
    params: Params
    args: StageArgs
    mlflow: Any = None  # the mlflow module with this stage's child run active; None off rank zero

    @property
    def work_dir(self) -> Path:
        """Scratch space that survives a killed run (checkpoints to resume from); not a DVC output."""
        return WORK_ROOT / self.spec.name

    def log_metrics(self, metrics: dict[str, Any]) -> None:
        """Nested metrics as MLflow metrics with dotted names under `summary/` (`summary/finetuned.zh.acc`);
        numbers only. The prefix gives the stage's one-value results their own section of the run's charts,
        apart from the training curves."""
        if self.mlflow is not None:
            from sora.tracking.runs import flat_params

            numbers = {
                k: v for k, v in flat_params(metrics).items() if isinstance(v, int | float) and not isinstance(v, bool)
            }
            self.mlflow.log_metrics({f"{SUMMARY}/{k}": v for k, v in numbers.items()})

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        if self.mlflow is not None:
            self.mlflow.log_artifact(str(path), artifact_path=artifact_path)

    def lightning_loggers(self) -> list:
        """An MLflow logger writing into this stage's child run (none off rank zero)."""
        if self.mlflow is None:
            return []
        from sora.tracking.runs import lightning_logger

        return [lightning_logger(self.params, self.mlflow.active_run().info.run_id)]


def require(*paths: Path) -> None:
    missing = [str(p) for p in paths if not Path(p).exists()]
    if missing:
        raise FileNotFoundError(f"missing input {', '.join(missing)}: run the upstream stage first (dvc repro)")


def read_frames(args: StageArgs, *roles: str, columns: list[str] | None = None) -> dict[str, Any]:
    """The parquet files given as --<role> PATH, read into DataFrames keyed by role."""
    import pandas as pd

    paths = {role: getattr(args, role) for role in roles}
    require(*paths.values())
    return {role: pd.read_parquet(path, columns=columns) for role, path in paths.items()}


@contextmanager
def _tracked(spec: StageSpec, params: Params) -> Iterator[Any]:
    from sora.ranks import is_rank_zero
    from sora.tracking.runs import stage_run

    with stage_run(spec, params) if is_rank_zero() else nullcontext(None) as mlflow:
        yield mlflow


SUMMARY = "summary"  # MLflow metric prefix of a stage's final numbers

# Library warnings seen in every run that ask nothing of a Sora user (they repeat in each stage's log)
KNOWN_WARNINGS = (
    r".*isinstance\(treespec, LeafSpec\)` is deprecated",  # Lightning's own use of a torch API
    r"Hint: Inferred schema contains integer column",  # the served model's output has an int label column
    r"The specified dataset source can be interpreted in multiple ways",  # MLflow datasets from local paths
)


def stage_main(name: str, run: Callable[[StageContext], None], argv: list[str] | None = None) -> None:
    """Run stage `name`; known input/config problems become one line on stderr and exit 1 (no traceback)."""
    (INPUT_ERRORS / name).unlink(missing_ok=True)
    for message in KNOWN_WARNINGS:
        warnings.filterwarnings("ignore", message=message)
    logging.getLogger("mlflow.system_metrics").setLevel(logging.WARNING)  # "started/stopped monitoring" lines
    # SIGTERM (a task timeout, `kill`) unwinds like Ctrl-C, so the stage's MLflow run is closed as KILLED
    # instead of left RUNNING; kill -9 cannot be caught, and the next start closes those runs.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    die_with_parent(signal.SIGTERM, os.getppid())  # its dvc (or flow) killed with -9: stop writing outputs
    try:
        spec = stage_spec(name)
        params = load_params()
        args = StageArgs(name, sys.argv[1:] if argv is None else argv)
        with _tracked(spec, params) as mlflow:
            run(StageContext(spec, params, args, mlflow))
    except (ConfigError, DataError, FileNotFoundError) as err:
        # Bad input fails the same way every time: the marker tells the flow not to retry the stage.
        INPUT_ERRORS.mkdir(parents=True, exist_ok=True)
        (INPUT_ERRORS / name).write_text(str(err), encoding="utf-8")
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
