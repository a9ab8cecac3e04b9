"""Lightning's progress as timed lines when the output is not a terminal (see sora.progress)."""

from __future__ import annotations

import lightning as L
from lightning.pytorch.callbacks import ProgressBar

from sora.progress import ProgressLines


class LineProgressBar(ProgressBar):
    """Lightning's progress as timed lines (for output that is not a terminal): epoch, step of the epoch,
    overall ETA and the latest training loss; a line after each validation with its metrics."""

    def __init__(self, interval: float | None = None):
        super().__init__()
        self.interval = interval
        self._enabled = True
        self.lines: ProgressLines | None = None

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        total = trainer.estimated_stepping_batches
        self.lines = ProgressLines("train", int(total) if total != float("inf") else None, self.interval)

    def _loss(self, trainer: L.Trainer) -> str:
        loss = trainer.callback_metrics.get("train_loss_step", trainer.callback_metrics.get("train_loss"))
        # after the last epoch Lightning has already counted one more
        epoch = f"epoch {min(trainer.current_epoch + 1, trainer.max_epochs)}/{trainer.max_epochs}"
        return epoch + (f", loss {float(loss):.4f}" if loss is not None else "")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self._enabled and self.lines is not None and trainer.is_global_zero:
            self.lines.advance(1, lambda: self._loss(trainer))

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not (self._enabled and trainer.is_global_zero) or trainer.sanity_checking:
            return
        shown = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val_")}
        if shown:
            metrics = ", ".join(f"{k} {v:.4f}" for k, v in sorted(shown.items()))
            print(f"validation after epoch {trainer.current_epoch + 1}: {metrics}", flush=True)

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if self.lines is not None:
            self.lines.close()

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._enabled and self.lines is not None and trainer.is_global_zero:
            self.lines.finish(self._loss(trainer))
