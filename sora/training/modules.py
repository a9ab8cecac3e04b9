"""The classification LightningModule (fine-tuning, hardening, distillation, pruning recovery) and the optimizer
helpers the training modules share.

Hyperparameters are plain ints/floats/strs/dicts only, so checkpoints load with torch.load(weights_only=True).
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MetricCollection, SumMetric
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score

from sora.config import MISSING_LABEL, ModelParams, Params
from sora.models.classifier import build_classifier, plain_model_params
from sora.training.adversarial import METHODS, adversarial_loss
from sora.training.data import LANG_IDS
from sora.training.objective import DENOISE, JointObjective, masked_cross_entropy


def adamw(params, lr: float) -> torch.optim.AdamW:
    """AdamW with torch's fused kernel. Its step over the classifier's 5M parameters (mostly embedding tables,
    updated densely every step) takes 2.5 ms on 2 CPU threads against 18.6 ms for the default multi-tensor
    kernel, a fifth of a fine-tuning step (`python benchmarks/optimizer.py`); on GPUs it is the fast path too."""
    return torch.optim.AdamW(params, lr=lr, fused=True)


def warm_start(optimizer: torch.optim.Optimizer, state: dict, lr: float) -> None:
    """Load another run's optimizer state (Adam's moment estimates) and set this run's learning rate.

    For continued training of a converged model (`harden` after `finetune`): a fresh Adam's first steps move
    every weight by about lr whatever its gradient, which knocks a converged model off its optimum; with the
    moments carried over, steps stay in proportion to the gradients. `initial_lr` is set too, since a
    scheduler built afterwards would otherwise keep the old run's value from the state."""
    optimizer.load_state_dict(state)
    for group in optimizer.param_groups:
        group["lr"] = group["initial_lr"] = lr


def _warmup_linear(total_steps: float, warmup_ratio: float):
    """LR multiplier: linear warmup, then linear decay to 0 (constant if the step count is unknown)."""
    total = int(total_steps) if math.isfinite(total_steps) and total_steps > 0 else 0
    warmup = max(1, int(total * warmup_ratio)) if total else 1

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if not total:
            return 1.0
        return max(0.0, (total - step) / max(1, total - warmup))

    return factor


def log_train_loss(module: L.LightningModule, loss: torch.Tensor, batch_size: int) -> None:
    """Per step (train_loss_step, every trainer.log_every_n_steps) and per epoch (train_loss_epoch)."""
    module.log("train_loss", loss, on_step=True, on_epoch=True, prog_bar=True, sync_dist=True, batch_size=batch_size)


def _with_offset(offset: torch.Tensor | None):
    """Cross-entropy of the network's logits plus fixed per-row logits of another model (the n-gram model):
    the network is then trained on what that model gets wrong."""
    if offset is None:
        return F.cross_entropy
    return lambda logits, target: F.cross_entropy(logits + offset, target)


class ClassifierModule(L.LightningModule):
    """Fine-tuning / hardening. Batches: {ids, label, lang_id[, tasks]} from TextDataModule(mode='classify').
    Logs {stage}_acc, {stage}_f1 (macro) overall and per language (_zh, _en) for stage in val/test, for the
    primary task; with other tasks (`task_classes`, label column -> classes), {stage}_{column}_acc too.

    The joint loss (sora.training.objective) combines, per task, the mean cross-entropy over the batch rows
    labeled for it (`task_weights` by label column, the primary task's under `label`; `task_weighting` static or
    uncertainty), and with `denoise_weight` > 0 the reconstruction of the batch's texts corrupted by `noise`. A row
    without a primary label (label -1) trains the other heads only."""

    def __init__(
        self,
        vocab_size: int,
        pad_id: int,
        model_params: ModelParams | dict[str, Any],
        num_classes: int = 2,
        lr: float = 1e-3,
        weight_decay: float = 0.01,
        adv_method: str = "none",
        adv_epsilon: float = 1.0,
        adv_steps: int = 3,
        adv_step_size: float = 0.3,
        warmup_ratio: float = 0.1,
        token_dropout: float = 0.0,
        unk_id: int = 1,
        adv_token_budget: float = 0.0,
        embedding_lr_scale: float = 1.0,
        wide_lr_scale: float = 1.0,
        task_classes: dict[str, int] | None = None,
        task_weights: dict[str, float] | None = None,
        task_weighting: str = "static",
        denoise_weight: float = 0.0,
        noise: dict[str, Any] | None = None,
    ):
        super().__init__()
        if adv_method not in METHODS:
            raise ValueError(f"adv_method must be one of {METHODS}, got {adv_method!r}")
        model_params = plain_model_params(model_params)
        self.save_hyperparameters(
            {
                "vocab_size": vocab_size,
                "pad_id": pad_id,
                "model_params": model_params,
                "num_classes": num_classes,
                "lr": lr,
                "weight_decay": weight_decay,
                "adv_method": adv_method,
                "adv_epsilon": adv_epsilon,
                "adv_steps": adv_steps,
                "adv_step_size": adv_step_size,
                "warmup_ratio": warmup_ratio,
                "token_dropout": token_dropout,
                "unk_id": unk_id,
                "adv_token_budget": adv_token_budget,
                "embedding_lr_scale": embedding_lr_scale,
                "wide_lr_scale": wide_lr_scale,
                "task_classes": dict(task_classes or {}),
                "task_weights": dict(task_weights or {}),
                "task_weighting": task_weighting,
                "denoise_weight": denoise_weight,
                "noise": dict(noise or {}),
            }
        )
        self.model = build_classifier(vocab_size, pad_id, model_params, num_classes, task_classes)
        weights = {c: float((task_weights or {}).get(c, 1.0)) for c in ("label", *(task_classes or {}))}
        if denoise_weight > 0:
            weights[DENOISE] = denoise_weight
        # After the model, so its parameters are named model.* (the denoiser shares the encoder).
        self.objective = JointObjective(
            weights, task_weighting, self.model.encoder, model_params["decoder_layers"], model_params["dropout"], noise
        )
        # Pretrained word vectors move slowly, or not at all (scale 0): a few thousand labels would otherwise
        # pull the words they contain away from the words met only in unlabeled text, which is what pretraining
        # was for (ULMFiT's discriminative learning rates).
        self.model.encoder.tok.weight.requires_grad_(embedding_lr_scale > 0)
        # Optimizer state to continue from (harden sets the finetune run's); not a hyperparameter: it is big.
        self.warm_optimizer_state: dict | None = None
        # One metric set per stage and slice; states are not persistent, so checkpoints stay weights-only.
        self.metrics = nn.ModuleDict(
            {
                f"{stage}{suffix}": MetricCollection(
                    {
                        "acc": MulticlassAccuracy(num_classes, average="micro"),
                        "f1": MulticlassF1Score(num_classes, average="macro"),
                        "n": SumMetric(),  # examples seen, to skip a language absent from the split
                    },
                    compute_groups=False,
                )
                for stage in ("val", "test")
                for suffix in ("", "_zh", "_en")
            }
            | {
                f"{stage}_{column}": MetricCollection(
                    {"acc": MulticlassAccuracy(k, average="micro"), "n": SumMetric()}, compute_groups=False
                )
                for stage in ("val", "test")
                for column, k in (task_classes or {}).items()
            }
        )

    def forward(self, ids: torch.Tensor, embeds: torch.Tensor | None = None) -> torch.Tensor:
        return self.model(ids, embeds)

    def load_encoder_state(self, state_dict: dict[str, torch.Tensor]) -> None:
        """Initialise the encoder from a pretrained one (PretrainModule.encoder_state_dict())."""
        self.model.encoder.load_state_dict(state_dict)

    def load_objective_state(self, state_dict: dict[str, torch.Tensor]) -> None:
        """The objective's learned parts (log-variances, the denoising decoder) from a checkpoint of a module with
        the same objective, as harden continues finetune's run; nothing when that module had none."""
        own = {k.removeprefix("objective."): v for k, v in state_dict.items() if k.startswith("objective.")}
        if own:
            self.objective.load_state_dict(own)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        h = self.hparams
        ids = batch["ids"]
        if h.get("token_dropout", 0.0) > 0:
            # Word dropout: hide random tokens behind <unk> so no single word decides (the model otherwise
            # memorises rare words within an epoch). Position 0 (CLS) and padding are never touched.
            hide = torch.rand(ids.shape, device=ids.device) < h.token_dropout
            hide[:, 0] = False
            ids = ids.masked_fill(hide & ids.ne(h.pad_id), h.unk_id)
        # A distilled student learns the teacher's probabilities (cross-entropy accepts them as targets).
        target = batch["soft"] if "soft" in batch else batch["label"]
        offset, tasks = batch.get("offset"), batch.get("tasks")

        def attacked(rows) -> torch.Tensor:  # the primary task's loss under the adversary, on `rows`
            return adversarial_loss(
                h.adv_method,
                self.model,
                ids[rows],
                target[rows],
                h.adv_epsilon,
                h.adv_steps,
                h.adv_step_size,
                loss_fn=_with_offset(offset[rows] if offset is not None else None),
                token_budget=h.get("adv_token_budget", 0.0),
                unk_id=h.unk_id,
            )

        losses: dict[str, torch.Tensor] = {}
        present: dict[str, torch.Tensor | bool] = {}  # which terms had rows in this batch
        if tasks is None:
            losses["label"] = attacked(slice(None))
        else:
            # Soft targets (a distilled student): every row has the teacher's probabilities for the primary task.
            soft = "soft" in batch
            out = self.model.all_tasks(ids)  # every head from one encoder pass
            rows = torch.ones(len(ids), dtype=torch.bool, device=ids.device) if soft else target.ne(MISSING_LABEL)
            present["label"] = rows.any()
            if h.adv_method == "none" and not h.get("adv_token_budget", 0.0):
                primary = out["primary"] + offset if offset is not None else out["primary"]
                losses["label"] = (F.cross_entropy if soft else masked_cross_entropy)(primary, target)
            else:  # the adversary attacks the primary task on its labeled rows; the heads learn from the clean pass
                # A batch without primary labels still touches the primary head (with zero gradient): DDP expects
                # every parameter in every step's graph.
                losses["label"] = 0.0 * out["primary"].sum()
                if rows.any():
                    losses["label"] = losses["label"] + attacked(rows)
            task_soft = batch.get("task_soft", {})  # a student learns the teacher's heads on every row
            for i, column in enumerate(h.task_classes):
                if column in task_soft:
                    losses[column] = F.cross_entropy(out[column], task_soft[column])
                else:
                    losses[column] = masked_cross_entropy(out[column], tasks[:, i])
                    present[column] = tasks[:, i].ne(MISSING_LABEL).any()
        if self.objective.denoiser is not None:  # rebuilt from the texts as they came, before word dropout
            losses[DENOISE] = self.objective.denoising_loss(batch["ids"], h.pad_id)
            self.log("train_denoise_loss", losses[DENOISE], on_epoch=True, sync_dist=True, batch_size=ids.size(0))
        loss = self.objective(losses, present)
        log_train_loss(self, loss, ids.size(0))
        return loss

    def on_train_epoch_end(self) -> None:
        # The learned uncertainty of each term (uncertainty weighting): which task the encoder listens to most.
        for name, sigma in self.objective.sigmas().items():
            self.log(f"sigma_{name}", sigma)

    def _update(self, stage: str, batch: dict[str, torch.Tensor]) -> None:
        out = self.model.all_tasks(batch["ids"])
        logits = out["primary"]
        if "offset" in batch:
            logits = logits + batch["offset"]
        labels, langs = batch["label"], batch["lang_id"]
        labeled = labels.ne(MISSING_LABEL)
        for suffix, rows in (
            ("", labeled),
            ("_zh", labeled & langs.eq(LANG_IDS["zh"])),
            ("_en", labeled & langs.eq(LANG_IDS["en"])),
        ):
            if rows.any():
                m = self.metrics[stage + suffix]
                m["acc"].update(logits[rows], labels[rows])
                m["f1"].update(logits[rows], labels[rows])
                m["n"].update(rows.sum().float())
        if "tasks" in batch:
            for i, column in enumerate(self.hparams.task_classes):
                rows = batch["tasks"][:, i].ne(MISSING_LABEL)
                if rows.any():
                    m = self.metrics[f"{stage}_{column}"]
                    m["acc"].update(out[column][rows], batch["tasks"][rows, i])
                    m["n"].update(rows.sum().float())
        # Logged for every batch, so every DDP rank syncs the same keys; a batch without primary labels counts
        # as one row of loss 0.
        loss = masked_cross_entropy(logits, labels)
        self.log(f"{stage}_loss", loss, on_epoch=True, sync_dist=True, batch_size=max(int(labeled.sum()), 1))

    def _log_epoch(self, stage: str) -> None:
        # compute() syncs across DDP ranks; every rank then sees the same counts and logs the same keys.
        slices = [(stage + suffix, suffix) for suffix in ("", "_zh", "_en")]
        slices += [(f"{stage}_{column}", None) for column in self.hparams.get("task_classes", {})]
        # What checkpoints are chosen by: the primary task's macro-F1, averaged with every other task's accuracy
        # (so a student whose primary task is right from the start, through its n-gram half, still keeps
        # training its other heads); with one task it is the macro-F1.
        score = []
        for key, suffix in slices:
            m = self.metrics[key]
            with warnings.catch_warnings():  # a rank may have seen no rows of a language: not an error
                warnings.filterwarnings("ignore", message=".*compute.*before.*update.*")
                values = m.compute()
            if values["n"] > 0 and suffix is None:
                self.log(f"{key}_acc", values["acc"], sync_dist=True)
                score.append(values["acc"])
            elif values["n"] > 0:
                self.log(f"{stage}_acc{suffix}", values["acc"], sync_dist=True)
                self.log(f"{stage}_f1{suffix}", values["f1"], sync_dist=True)
                if suffix == "":
                    score.insert(0, values["f1"])
            m.reset()
        if score:
            self.log(f"{stage}_score", torch.stack([torch.as_tensor(v) for v in score]).mean(), sync_dist=True)

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._update("val", batch)

    def on_validation_epoch_end(self) -> None:
        self._log_epoch("val")

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._update("test", batch)

    def on_test_epoch_end(self) -> None:
        self._log_epoch("test")

    def configure_optimizers(self):
        # No weight decay on biases, LayerNorms and embeddings (the usual transformer recipe).
        # The wide n-gram tables get their own learning rate: each row is updated only by the few batches that
        # contain its n-gram, so at the Transformer's rate a linear model over them would barely move.
        h = self.hparams
        decay, no_decay, tok, wide = [], [], [], []
        for name, p in self.named_parameters():
            if not p.requires_grad:
                continue
            if name.endswith("encoder.tok.weight"):
                tok.append(p)
            elif ".wide_" in f".{name}":
                wide.append(p)
            else:
                (decay if p.ndim >= 2 and not name.endswith("pos.weight") else no_decay).append(p)
        # Named, so the learning-rate curves (LearningRateMonitor) say which group they follow.
        groups = [
            {"params": decay, "weight_decay": h.weight_decay, "name": "weights"},
            {"params": no_decay, "weight_decay": 0.0, "name": "biases_norms"},
        ]
        scaled = (("embeddings", tok, h.get("embedding_lr_scale", 1.0)), ("wide", wide, h.get("wide_lr_scale", 1.0)))
        for group, params, scale in scaled:
            if params:
                groups.append({"params": params, "weight_decay": 0.0, "lr": h.lr * scale, "name": group})
        opt = adamw(groups, h.lr)
        if self.warm_optimizer_state is not None:
            warm_start(opt, self.warm_optimizer_state, self.hparams.lr)
        factor = _warmup_linear(self.trainer.estimated_stepping_batches, self.hparams.warmup_ratio)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def classifier_module(
    params: Params, vocab, num_classes: int, lr: float, adversarial: bool = False, multitask: bool = False, **changes
):
    """The classifier as the stages build it from params: model shape and regularisation from `model` and
    `finetune`, for hardening the adversary from `harden`, and with `multitask` a head and a loss weight for
    every task in `tasks`. `changes` override single arguments."""
    kwargs: dict[str, Any] = {
        "num_classes": num_classes,
        "lr": lr,
        "weight_decay": params.finetune.weight_decay,
        "token_dropout": params.finetune.token_dropout,
        "unk_id": vocab.unk_id,
        "embedding_lr_scale": params.finetune.embedding_lr_scale,
        "wide_lr_scale": params.finetune.wide_lr_scale,
    }
    f = params.finetune
    kwargs |= {"task_weighting": f.task_weighting, "denoise_weight": f.denoise_weight}
    if f.denoise_weight > 0:
        pre = params.pretrain  # the denoising term corrupts texts as pretraining does
        noise = ("mask_rate", "delete_rate", "span_rate", "max_span", "loss_fraction")
        kwargs["noise"] = {key: getattr(pre, key) for key in noise} | {"mask_id": vocab.mask_id}
    if multitask:
        others = params.other_tasks.values()
        kwargs |= {"task_classes": {t.column: len(t.classes) for t in others},
                   "task_weights": {t.column: t.weight for t in params.tasks.values()}}  # fmt: skip
    if adversarial:
        h = params.harden
        kwargs |= {"adv_method": h.method, "adv_epsilon": h.epsilon, "adv_steps": h.steps,
                   "adv_step_size": h.step_size, "adv_token_budget": h.token_budget}  # fmt: skip
    return ClassifierModule(len(vocab), vocab.pad_id, params.model, **(kwargs | changes))
