"""Resumable fits shared by the training stages: a work dir that survives a kill, the per-epoch CSV behind
the DVC plots, and the scoring of a classifier checkpoint per split and language."""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

import pandas as pd

from sora.config import TrainerParams
from sora.errors import DataError
from sora.io import atomic_path, write_torch
from sora.ranks import is_rank_zero
from sora.training.trainer import load_checkpoint


class ResumableFit:
    """A work dir holding the checkpoints and curves of an interrupted fit and the fingerprint of what produced
    them. A rerun with the same fingerprint resumes from last.ckpt; anything else starts fresh. On success the
    checkpoints are copied to the stage's output folder, the curves to its plots folder, and the work dir is
    removed. (DVC deletes a stage's outputs before it reruns the stage, so they cannot hold this state.)"""

    def __init__(self, work_dir: Path, print_fn=print):
        self.dir = Path(work_dir)
        self.print = print_fn

    def prepare(self, fp: str) -> str | None:
        stamp, last = self.dir / "fingerprint", self.dir / "last.ckpt"
        if is_rank_zero():
            if stamp.exists() and stamp.read_text() == fp and last.exists() and not _readable(last):
                # Lightning writes checkpoints in place: a kill during the write leaves a torn file
                self.print(f"{last} is unreadable (killed while it was written?): starting the fit afresh")
                last.unlink()
            if stamp.exists() and stamp.read_text() == fp and last.exists():
                self.print(f"resuming from {last} (params and deps unchanged since it was written)")
            else:
                shutil.rmtree(self.dir, ignore_errors=True)
                self.dir.mkdir(parents=True)
                stamp.write_text(fp)
        return str(last) if last.exists() and stamp.exists() and stamp.read_text() == fp else None

    @property
    def curves(self) -> Path:
        return self.dir / "dvclive"

    def finish(self, out_dir: Path, plots_dir: Path | None = None) -> None:
        if not is_rank_zero():
            return
        out_dir.mkdir(parents=True, exist_ok=True)
        for name in ("best.ckpt", "last.ckpt"):
            if (self.dir / name).exists():
                write_torch(canonical(load_checkpoint(self.dir / name)), out_dir / name)
        if plots_dir is not None:
            shutil.rmtree(plots_dir, ignore_errors=True)
            shutil.copytree(self.curves / "plots" / "metrics", plots_dir)
        shutil.rmtree(self.dir, ignore_errors=True)


def canonical(obj):
    """A copy with every string interned: pickle writes an object once and refers back to it after, by
    identity, so a resumed fit (whose optimizer state came from a file) pickled equal content as other bytes."""
    if isinstance(obj, dict):
        return {canonical(k): canonical(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(canonical(v) for v in obj)
    if isinstance(obj, str):
        return sys.intern(obj)
    return obj


def _readable(ckpt: Path) -> bool:
    try:
        load_checkpoint(ckpt)
    except Exception:  # a torn zip or pickle stream raises one of several types
        return False
    return True


def drop_curve_rows_from(curves: Path, step: int) -> None:
    """Cut the dvclive curves back to the checkpoint a fit resumes from (taken after `step` optimizer steps):
    the killed run had logged later steps, which the resumed run logs again (the plots would hold them twice,
    and differ from an uninterrupted run's). An epoch's own rows carry steps below `step`; the next epoch's
    first row carries `step` itself."""
    for tsv in (curves / "plots").rglob("*.tsv"):
        frame = pd.read_csv(tsv, sep="\t")
        if "step" in frame and (frame["step"] >= step).any():
            with atomic_path(tsv) as tmp:
                frame[frame["step"] < step].to_csv(tmp, sep="\t", index=False)


def fit_resumable(
    module,
    datamodule,
    trainer_params: TrainerParams,
    max_epochs: int,
    work: ResumableFit,
    fp: str,
    monitor: str,
    mode: str,
    patience: int | None = None,
    loggers: list | None = None,
    val_checks_per_epoch: int = 1,
):
    """Fit with best/last checkpoints in the work dir, resuming an interrupted fit of the same fingerprint.
    Curves go to MLflow (through `loggers`) and, per step, to dvclive TSVs in the work dir (the DVC plots).
    Returns the trainer and the wall time in seconds."""
    from dvclive.lightning import DVCLiveLogger
    from lightning.pytorch.callbacks import LearningRateMonitor

    from sora.training.trainer import build_trainer, checkpoint_callbacks

    resume = work.prepare(fp)
    if resume is not None:
        drop_curve_rows_from(work.curves, int(load_checkpoint(resume)["global_step"]))
    curves = DVCLiveLogger(
        dir=str(work.curves), resume=resume is not None, save_dvc_exp=False, dvcyaml=False, report=None
    )
    trainer = build_trainer(
        trainer_params,
        max_epochs,
        work.dir,
        callbacks=[*checkpoint_callbacks(work.dir, monitor, mode, patience), LearningRateMonitor("step")],
        logger=[*(loggers or []), curves],
        val_check_interval=1 / val_checks_per_epoch,
    )
    start = time.perf_counter()
    trainer.fit(module, datamodule=datamodule, ckpt_path=resume, weights_only=True)
    return trainer, time.perf_counter() - start


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
