"""Resumable fits shared by the training stages: a work dir that survives a kill, the per-epoch CSV behind
the DVC plots, and the scoring of a classifier checkpoint per split and language."""

from __future__ import annotations

import csv
import shutil
import time
from pathlib import Path
from typing import Any

import pandas as pd
from lightning.pytorch.loggers.logger import Logger

from sora.config import TrainerParams
from sora.errors import DataError
from sora.io import atomic_path
from sora.ranks import is_rank_zero


class ResumableFit:
    """A work dir holding the checkpoints of an interrupted fit and the fingerprint of what produced them.
    A rerun with the same fingerprint resumes from last.ckpt; anything else starts fresh. On success the
    checkpoints are copied to the stage's output folder and the work dir is removed."""

    def __init__(self, work_dir: Path, print_fn=print):
        self.dir = Path(work_dir)
        self.print = print_fn

    def prepare(self, fp: str) -> str | None:
        stamp, last = self.dir / "fingerprint", self.dir / "last.ckpt"
        if is_rank_zero():
            if stamp.exists() and stamp.read_text() == fp and last.exists():
                self.print(f"resuming from {last} (params and deps unchanged since it was written)")
            else:
                shutil.rmtree(self.dir, ignore_errors=True)
                self.dir.mkdir(parents=True)
                stamp.write_text(fp)
        return str(last) if last.exists() and stamp.exists() and stamp.read_text() == fp else None

    def finish(self, out_dir: Path) -> None:
        if not is_rank_zero():
            return
        out_dir.mkdir(parents=True, exist_ok=True)
        for name in ("best.ckpt", "last.ckpt"):
            if (self.dir / name).exists():
                with atomic_path(out_dir / name) as tmp:
                    shutil.copyfile(self.dir / name, tmp)
        shutil.rmtree(self.dir, ignore_errors=True)


class EpochCSV(Logger):
    """One row per epoch (epoch-level metrics only) in a CSV: the DVC plot source. A copy in the fit's work
    dir lets a resumed fit keep the epochs it already has (DVC deletes the plot, a stage output, before
    rerunning the stage)."""

    def __init__(self, path: Path, work_copy: Path | None = None):
        super().__init__()
        self.path, self.work_copy = Path(path), work_copy
        self.rows: dict[int, dict[str, float]] = {}
        if work_copy is not None and Path(work_copy).exists():
            for row in pd.read_csv(work_copy).to_dict("records"):
                self.rows[int(row["epoch"])] = {k: v for k, v in row.items() if pd.notna(v)}

    @property
    def name(self) -> str:
        return "epoch_csv"

    @property
    def version(self) -> str:
        return "0"

    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        return None

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        if not is_rank_zero() or "epoch" not in metrics:
            return
        epoch = int(metrics["epoch"])
        row = self.rows.setdefault(epoch, {"epoch": epoch})
        row.update({k: float(v) for k, v in metrics.items() if k != "epoch" and not k.endswith("_step")})
        self._write()

    def _write(self) -> None:
        columns = sorted({k for r in self.rows.values() for k in r} - {"epoch"})
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for path in filter(None, (self.path, self.work_copy)):
            if not Path(path).parent.exists():  # the work dir is gone once the fit has finished
                continue
            with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
                writer = csv.DictWriter(fh, fieldnames=["epoch", *columns])
                writer.writeheader()
                for epoch in sorted(self.rows):
                    writer.writerow(self.rows[epoch])


def fit_resumable(
    module,
    datamodule,
    trainer_params: TrainerParams,
    max_epochs: int,
    work: ResumableFit,
    fp: str,
    curve: Path,
    monitor: str,
    mode: str,
    patience: int | None = None,
    loggers: list | None = None,
    val_checks_per_epoch: int = 1,
):
    """Fit with best/last checkpoints in the work dir, resuming an interrupted fit of the same fingerprint.
    Returns the trainer and the wall time in seconds."""
    from sora.training.trainer import build_trainer, checkpoint_callbacks

    resume = work.prepare(fp)
    trainer = build_trainer(
        trainer_params,
        max_epochs,
        work.dir,
        callbacks=checkpoint_callbacks(work.dir, monitor, mode, patience),
        logger=[*(loggers or []), EpochCSV(curve, work.dir / "epochs.csv")],
        val_check_interval=1 / val_checks_per_epoch,
    )
    start = time.perf_counter()
    trainer.fit(module, datamodule=datamodule, ckpt_path=resume)
    return trainer, time.perf_counter() - start


def epochs_to_best(curve: Path, monitor: str = "val_f1") -> int | None:
    """1-based epoch with the best monitored value, from the epoch CSV."""
    if not curve.exists():
        return None
    frame = pd.read_csv(curve)
    if monitor not in frame or frame[monitor].isna().all():
        return None
    return int(frame.loc[frame[monitor].idxmax(), "epoch"]) + 1


def class_count(train: pd.DataFrame, *others: pd.DataFrame, where: str = "train split") -> int:
    """max(label) + 1 over the splits; every class must have training examples (labels 0, 1, 7 would make an
    8-class head with 5 classes never seen)."""
    num_classes = int(max(s["label"].max() for s in (train, *others))) + 1
    missing = sorted(set(range(num_classes)) - set(train["label"].tolist()))
    if missing:
        raise DataError(
            f"{where}: no examples of label(s) {missing}; labels must be consecutive integers from 0 "
            f"(the classifier gets max(label) + 1 = {num_classes} classes)"
        )
    return num_classes
