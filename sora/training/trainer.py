"""Trainer construction, checkpoint callbacks and safe (weights_only) checkpoint loading."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import lightning as L
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
    """L.Trainer from TrainerParams. `extra` goes straight to L.Trainer (e.g. limit_train_batches in tests)."""
    p = trainer_params
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


def checkpoint_callbacks(
    dirpath: str | Path, monitor: str, mode: str = "max", patience: int | None = None
) -> list[Callback]:
    """best.ckpt (top-1 on `monitor`) + last.ckpt in dirpath; EarlyStopping too when patience is given.
    Files are overwritten rather than versioned (best-v1.ckpt...) so stages always find the same names."""
    callbacks: list[Callback] = [
        ModelCheckpoint(
            dirpath=str(dirpath),
            filename="best",
            monitor=monitor,
            mode=mode,
            save_top_k=1,
            save_last=True,
            enable_version_counter=False,
        )
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
    model = build_classifier(h["vocab_size"], h["pad_id"], h["model_params"], h["num_classes"])
    model.load_state_dict(state)
    return model.eval(), h
