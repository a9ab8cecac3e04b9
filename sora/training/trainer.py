"""Trainer construction, checkpoint callbacks and safe (weights_only) checkpoint loading."""

from __future__ import annotations

import os
import random
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint

from sora.config import TrainerParams
from sora.models.classifier import Classifier, build_classifier


def seed_and_threads(trainer_params: TrainerParams) -> None:
    """Seed python/numpy/torch (and dataloader workers); cap intra-op threads when threads > 0."""
    L.seed_everything(trainer_params.seed, workers=True, verbose=False)
    if trainer_params.threads > 0:
        torch.set_num_threads(trainer_params.threads)


def build_trainer(
    trainer_params: TrainerParams,
    max_epochs: int,
    default_root_dir: str | Path,
    callbacks: Iterable[Callback] = (),
    logger: Any = False,
    enable_progress_bar: bool = True,
    **extra: Any,
) -> L.Trainer:
    """L.Trainer from TrainerParams. `extra` goes straight to L.Trainer (e.g. limit_train_batches in tests).
    When the output is not a terminal the progress is timed lines (a bar would show only its last frame)."""
    from sora.progress import on_terminal
    from sora.training.progress_bar import LineProgressBar

    p = trainer_params
    if enable_progress_bar and not on_terminal():
        callbacks = [*callbacks, LineProgressBar()]
    return L.Trainer(
        accelerator=p.accelerator,
        devices=p.devices,
        num_nodes=p.num_nodes,
        strategy=p.strategy,
        precision=p.precision,
        accumulate_grad_batches=p.accumulate_grad_batches,
        log_every_n_steps=p.log_every_n_steps,
        max_epochs=max_epochs,
        default_root_dir=str(default_root_dir),
        callbacks=list(callbacks),
        logger=logger,
        enable_progress_bar=enable_progress_bar,
        enable_model_summary=False,
        # Deterministic kernels cost nothing on CPU; on GPUs they can be slow or unsupported, so only there.
        deterministic=p.accelerator == "cpu",
        **extra,
    )


class RandomState(Callback):
    """Carries the python, numpy and torch random states in every checkpoint and restores them on resume.

    The shuffle (torch's global generator draws each epoch's order), dropout and word dropout all draw from
    them; without this a resumed fit reseeded them and ended at other weights than an uninterrupted one. The
    states are stored as tensors and plain lists, so checkpoints still load with `weights_only=True`.
    """

    def state_dict(self) -> dict[str, Any]:
        kind, keys, pos, has_gauss, gauss = np.random.get_state()
        version, internal, gauss_next = random.getstate()
        state = {
            "python": [version, list(internal), gauss_next],
            "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss],
            "torch": torch.get_rng_state(),
        }
        if torch.cuda.is_available():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        version, internal, gauss_next = state["python"]
        random.setstate((version, tuple(internal), gauss_next))
        kind, keys, pos, has_gauss, gauss = state["numpy"]
        np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
        torch.set_rng_state(state["torch"])
        if "cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])


CHECKPOINT_PATH_FIELDS = ("dirpath", "best_model_path", "kth_best_model_path", "last_model_path")


def without_absolute_paths(ckpt: dict[str, Any]) -> dict[str, Any]:
    """The checkpoint with Lightning's ModelCheckpoint state made relative to the working directory (the repo
    root). Lightning records where it wrote as absolute paths: a moved checkout resumed with the old tree's
    paths (and removed its superseded best.ckpt there), and the same fit gave other bytes, so other DVC
    hashes, in another folder."""
    return _map_paths(ckpt, os.path.relpath)


def _map_paths(ckpt: dict[str, Any], to) -> dict[str, Any]:
    for key, state in (ckpt.get("callbacks") or {}).items():
        if not key.startswith("ModelCheckpoint"):
            continue
        for field in CHECKPOINT_PATH_FIELDS:
            if state.get(field):
                state[field] = to(state[field])
        if state.get("best_k_models"):
            state["best_k_models"] = {to(k): v for k, v in state["best_k_models"].items()}
    return ckpt


class RelativePaths(Callback):
    """Writes every checkpoint with relative paths (see without_absolute_paths) and makes them absolute again
    on resume, before ModelCheckpoint reads them: it keeps its best score only when the recorded folder is
    its own (resolved) one, and a forgotten best let a later tie replace best.ckpt."""

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        without_absolute_paths(checkpoint)
        for key, state in checkpoint.get("callbacks", {}).items():
            if key.startswith("ModelCheckpoint"):
                # the score of the latest save: Lightning never reads it back, and a resumed fit that saved
                # nothing since would write None where an uninterrupted one wrote a score
                state["current_score"] = None

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        _map_paths(checkpoint, os.path.realpath)


class PromoteLast(Callback):
    """Renames last-pending.ckpt, written at an epoch's end, to last.ckpt once that epoch is wholly done: when
    the next epoch starts, or the fit ends. Lightning logs the epoch's aggregated metrics after its callbacks
    save, so a fit killed in between resumed from a checkpoint whose epoch rows were never logged; and a
    rename never leaves a half-written last.ckpt."""

    def __init__(self, dirpath: str | Path):
        self.pending, self.last = Path(dirpath) / f"{PENDING}.ckpt", Path(dirpath) / "last.ckpt"

    def _promote(self, trainer: L.Trainer) -> None:
        if trainer.is_global_zero and self.pending.exists():
            os.replace(self.pending, self.last)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._promote(trainer)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._promote(trainer)


PENDING = "last-pending"


def checkpoint_callbacks(
    dirpath: str | Path, monitor: str, mode: str = "max", patience: int | None = None
) -> list[Callback]:
    """best.ckpt (top-1 on `monitor`, at every validation) and last.ckpt (at every epoch end) in dirpath, both
    carrying the random states; EarlyStopping too when patience is given. last.ckpt has its own callback:
    Lightning's `save_last` writes it only when a new best is saved, so a fit killed after its last improvement
    resumed epochs back. It is written at epoch ends only, because a fit resumed mid-epoch restarts that epoch's
    data and would not end where an uninterrupted one does, and becomes last.ckpt once the epoch is logged
    (PromoteLast).
    Files are overwritten rather than versioned (best-v1.ckpt...) so stages always find the same names."""
    callbacks: list[Callback] = [
        RandomState(),
        RelativePaths(),
        ModelCheckpoint(
            dirpath=str(dirpath),
            filename="best",
            monitor=monitor,
            mode=mode,
            save_top_k=1,
            enable_version_counter=False,
        ),
        ModelCheckpoint(
            dirpath=str(dirpath),
            filename=PENDING,
            save_top_k=1,
            save_on_train_epoch_end=True,
            enable_version_counter=False,
        ),
        PromoteLast(dirpath),
    ]
    if patience is not None:
        callbacks.append(EarlyStopping(monitor=monitor, mode=mode, patience=patience))
    return callbacks


def load_checkpoint(ckpt_path: str | Path) -> dict[str, Any]:
    """A Lightning checkpoint as a dict, loaded safely (tensors and plain containers only)."""
    return torch.load(ckpt_path, map_location="cpu", weights_only=True)


def _strip(state_dict: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :]: v for k, v in state_dict.items() if k.startswith(prefix)}


def classifier_state(ckpt: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(Classifier state dict, ClassifierModule hparams) from a loaded ClassifierModule checkpoint."""
    return _strip(ckpt["state_dict"], "model."), dict(ckpt["hyper_parameters"])


def load_classifier_state(ckpt_path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(Classifier state dict, ClassifierModule hparams) from a ClassifierModule checkpoint file."""
    return classifier_state(load_checkpoint(ckpt_path))


def load_classifier(ckpt_path: str | Path) -> tuple[Classifier, dict[str, Any]]:
    """Rebuilt Classifier in eval mode + hparams, from a ClassifierModule checkpoint."""
    state, h = load_classifier_state(ckpt_path)
    model = build_classifier(h["vocab_size"], h["pad_id"], h["model_params"], h["num_classes"], h.get("task_classes"))
    model.load_state_dict(state)
    return model.eval(), h
