"""The pretraining LightningModule: a denoising autoencoder over unlabeled text whose encoder initialises the
classifier (`pretrain.objective: denoise`).

Hyperparameters are plain ints/floats/strs/dicts only, so checkpoints load with torch.load(weights_only=True).
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch

from sora.config import ModelParams
from sora.models.autoencoder import DenoisingAutoencoder
from sora.models.classifier import build_encoder, plain_model_params
from sora.training.modules import adamw, log_train_loss


class PretrainModule(L.LightningModule):
    """Denoising-autoencoder pretraining. Batches: {noisy, target} from TextDataModule(mode='denoise')."""

    def __init__(
        self,
        vocab_size: int,
        pad_id: int,
        model_params: ModelParams | dict[str, Any],
        lr: float = 1e-3,
        loss_fraction: float = 1.0,
        tie_output: bool = True,
    ):
        super().__init__()
        model_params = plain_model_params(model_params)
        self.save_hyperparameters(
            {
                "vocab_size": vocab_size,
                "pad_id": pad_id,
                "model_params": model_params,
                "lr": lr,
                "loss_fraction": loss_fraction,
                "tie_output": tie_output,
            }
        )
        encoder = build_encoder(vocab_size, pad_id, model_params)
        self.autoencoder = DenoisingAutoencoder(
            encoder, vocab_size, model_params["decoder_layers"], model_params["dropout"], tie_output
        )

    def encoder_state_dict(self) -> dict[str, torch.Tensor]:
        """What ClassifierModule.load_encoder_state expects."""
        return self.autoencoder.encoder.state_dict()

    def on_train_epoch_start(self) -> None:
        # New noise every epoch, deterministic per (seed, epoch, item).
        dataset = getattr(self.trainer.train_dataloader, "dataset", None)
        if hasattr(dataset, "set_epoch"):
            dataset.set_epoch(self.current_epoch)

    def _step(
        self,
        batch: dict[str, torch.Tensor],
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return self.autoencoder.loss_and_accuracy(
            batch["noisy"], batch["target"], self.hparams.pad_id, self.hparams.get("loss_fraction", 1.0), generator
        )

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss, _ = self._step(batch)
        log_train_loss(self, loss, batch["target"].size(0))
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        # The same scored positions every epoch, so val_loss is comparable across epochs.
        generator = torch.Generator(device=batch["target"].device).manual_seed(batch_idx)
        loss, acc = self._step(batch, generator)
        n = batch["target"].size(0)
        self.log("val_loss", loss, on_epoch=True, prog_bar=True, sync_dist=True, batch_size=n)
        self.log("val_token_acc", acc, on_epoch=True, sync_dist=True, batch_size=n)

    def configure_optimizers(self):
        return adamw(self.parameters(), self.hparams.lr)
