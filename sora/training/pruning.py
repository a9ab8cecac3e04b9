"""Gradual magnitude pruning during a fine-tune (Zhu & Gupta, 2017, "To prune, or not to prune").

Cutting 70 % of the weights at once and then fine-tuning costs more accuracy than reaching the same sparsity
in a few cuts with training in between: each cut removes weights the network has already learned to do
without. The sparsity follows the cubic schedule s_k = s_final * (1 - (1 - k/n)^3), k = 1..n, with the cuts
spread over the first half of the run and the second half spent at the final sparsity.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch

from sora.compression import global_magnitude_prune
from sora.config import Params


def cubic_sparsity(final: float, cut: int, cuts: int) -> float:
    """Target total sparsity after cut number `cut` (1-based) of `cuts`."""
    return final * (1.0 - (1.0 - cut / cuts) ** 3)


class GradualPruning(L.Callback):
    """Prunes `module.model` to `sparsity` in `cuts` steps over the first half of training (masks stay active,
    so pruned weights stay zero while the rest adapt). cuts=1 is one-shot pruning before the first step."""

    def __init__(self, sparsity: float, cuts: int = 4, include_embeddings: bool = True):
        if cuts < 1:
            raise ValueError(f"cuts must be >= 1, got {cuts}")
        self.sparsity, self.cuts, self.include_embeddings = sparsity, cuts, include_embeddings
        self.done = 0

    def _cut_to(self, module: L.LightningModule, cut: int) -> None:
        while self.done < cut:
            self.done += 1
            global_magnitude_prune(
                module.model,
                cubic_sparsity(self.sparsity, self.done, self.cuts),
                include_embeddings=self.include_embeddings,
                normalize=True,
            )

    def on_train_batch_start(self, trainer: L.Trainer, module: L.LightningModule, batch, batch_idx: int) -> None:
        half = max(1, int(trainer.estimated_stepping_batches) // 2)
        self._cut_to(module, min(self.cuts, 1 + trainer.global_step * self.cuts // half))

    def on_train_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._cut_to(module, self.cuts)  # a run shorter than planned still ends at the target sparsity


def prune_and_recover(params: Params, model: torch.nn.Module, vocab, train) -> None:
    """Gradual pruning to `prune.sparsity` in `prune.cuts` steps during a short recovery fine-tune (masks
    active, so pruned weights stay zero while the rest adapt); one-shot pruning when recovery_epochs is 0."""
    from sora.training.data import TextDataModule
    from sora.training.modules import classifier_module
    from sora.training.trainer import build_trainer

    p, t = params.prune, params.trainer
    if not p.recovery_epochs:
        global_magnitude_prune(model, p.sparsity, include_embeddings=p.include_embeddings, normalize=True)
        return
    # A multi-task model recovers on every task's rows (rows without a primary label have label -1).
    columns = list(getattr(model, "task_heads", {}))
    # No denoising term here: its decoder would read the embedding of the module's own encoder, not of the model
    # swapped in below, and the pruning masks would hide from it what they zero.
    module = classifier_module(
        params, vocab, model.head.out_features, p.lr, multitask=bool(columns), denoise_weight=0.0
    )
    module.model = model
    data = TextDataModule(
        train, vocab=vocab, max_len=params.model.max_len, batch_size=t.batch_size, num_workers=t.num_workers,
        seed=t.seed, task_columns=columns,
    )  # fmt: skip
    # One device: the masks are forward hooks on this process's module (nothing to gain from DDP here).
    single = t.model_copy(update={"devices": 1, "num_nodes": 1, "strategy": "auto"})
    trainer = build_trainer(
        single,
        p.recovery_epochs,
        Path(".sora/work/prune"),
        logger=False,
        enable_checkpointing=False,
        callbacks=[GradualPruning(p.sparsity, p.cuts, p.include_embeddings)],
    )
    trainer.fit(module, datamodule=data)
    model.eval()
