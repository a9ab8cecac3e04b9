"""Gradual pruning callback: cubic schedule, cuts during training, final sparsity reached, masks hold."""

import pytest
import torch

from sora.compression import make_permanent, sparsity_report
from sora.training.data import TextDataModule
from sora.training.modules import ClassifierModule
from sora.training.pruning import GradualPruning, cubic_sparsity
from sora.training.trainer import build_trainer


def test_cubic_schedule_is_increasing_and_ends_at_target():
    steps = [cubic_sparsity(0.7, k, 4) for k in range(1, 5)]
    assert steps == sorted(steps) and steps[0] > 0
    assert steps[-1] == pytest.approx(0.7)
    assert cubic_sparsity(0.7, 1, 1) == pytest.approx(0.7)  # one cut = one shot
    with pytest.raises(ValueError):
        GradualPruning(0.7, cuts=0)


class Recorder(GradualPruning):
    """Records the global sparsity seen at every training step."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.seen: list[float] = []

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        super().on_train_batch_start(trainer, module, batch, batch_idx)
        self.seen.append(round(sparsity_report(module.model)["global"], 3))


def test_gradual_pruning_cuts_during_training_and_reaches_target(tmp_path, synthetic, tiny_model, trainer_params):
    train, val, vocab = synthetic
    torch.manual_seed(0)
    module = ClassifierModule(len(vocab), vocab.pad_id, tiny_model, lr=1e-3)
    callback = Recorder(0.7, cuts=3)
    dm = TextDataModule(train, val, vocab=vocab, max_len=tiny_model.max_len, batch_size=8, seed=0)
    build_trainer(
        trainer_params(threads=1),
        2,
        tmp_path,
        callbacks=[callback],
        enable_progress_bar=False,
        enable_checkpointing=False,
        limit_val_batches=0,
    ).fit(module, datamodule=dm)
    distinct = sorted(set(callback.seen))
    assert len(distinct) == 3, callback.seen  # three cuts, each at a higher sparsity
    assert callback.seen.index(distinct[-1]) <= len(callback.seen) // 2 + 1  # all cuts in the first half
    pruned = make_permanent(module.model)
    assert sparsity_report(pruned)["global"] == pytest.approx(0.7, abs=0.01)
