"""The joint objective of the classification stages: the tasks' losses, weighted statically or by learned
uncertainty, plus optionally pretraining's denoising reconstruction loss kept as an auxiliary task.

Static: sum of weight x loss. Uncertainty (Kendall, Gal and Cipolla 2018, "Multi-task learning using uncertainty
to weigh losses"): each term has a learned log-variance s, and contributes weight x (exp(-s) x loss + s / 2), the
form their paper derives for a softmax classifier (1 / sigma^2 x loss + log sigma). A task whose loss stays high
(noisy labels, a hard task) learns a large s and pulls the shared encoder less; s / 2 keeps s from growing without
bound. A term's s / 2 counts only on batches that have rows for the term: on the others its loss is 0, and s / 2
alone would push s down, so a task labeled on few rows would drift towards an ever larger weight. With a single
term there is nothing to balance (s would only rescale the learning rate), so it is weighted statically.

Denoising: the batch's texts, corrupted as in pretraining (masks, deletions, span infilling), are rebuilt by a small
decoder on the classifier's own encoder, so fine-tuning keeps modelling the language of every text it reads, not
only the features that separate the labels (the L_AE term of the design's joint objective)."""

from __future__ import annotations

import random
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from sora.config import MISSING_LABEL
from sora.models.autoencoder import DenoisingAutoencoder, corrupt
from sora.models.classifier import pad_ids
from sora.models.encoder import TransformerEncoder

WEIGHTINGS = ("static", "uncertainty")
DENOISE = "denoise"  # the auxiliary reconstruction term's name beside the tasks' label columns


def masked_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the rows that have a label (0 when none has: the term then adds nothing)."""
    total = F.cross_entropy(logits, labels, ignore_index=MISSING_LABEL, reduction="sum")
    return total / labels.ne(MISSING_LABEL).sum().clamp(min=1)


class JointObjective(nn.Module):
    """Combines named loss terms (a task's label column, or DENOISE) into the loss to minimise.

    `weights`: term -> static weight, in a fixed order (the log-variances follow it). `noise`: pretraining's
    corruption (mask_rate, delete_rate, span_rate, max_span, mask_id, loss_fraction) for the denoising term,
    which is on when `weights` has DENOISE."""

    def __init__(
        self,
        weights: dict[str, float],
        weighting: str = "static",
        encoder: TransformerEncoder | None = None,
        decoder_layers: int = 1,
        dropout: float = 0.1,
        noise: dict[str, Any] | None = None,
    ):
        super().__init__()
        if weighting not in WEIGHTINGS:
            raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")
        self.weights, self.weighting = dict(weights), weighting
        self.terms = list(self.weights)
        if weighting == "uncertainty" and len(self.terms) < 2:
            weighting = self.weighting = "static"
        if weighting == "uncertainty":
            self.log_vars = nn.Parameter(torch.zeros(len(self.terms)))  # s = log sigma^2, sigma = 1 at the start
        self.noise = dict(noise or {})
        self.denoiser = None
        if DENOISE in self.weights:
            if encoder is None or not self.noise:
                raise ValueError("the denoising term needs the classifier's encoder and pretraining's noise settings")
            # Tied output, as in pretraining: no second vocabulary-sized matrix to learn from a few epochs.
            self.denoiser = DenoisingAutoencoder(encoder, encoder.vocab_size, decoder_layers, dropout, tie_output=True)

    def forward(self, losses: dict[str, torch.Tensor], present: dict[str, torch.Tensor | bool]) -> torch.Tensor:
        """The weighted sum of `losses` (term -> scalar); `present` says which terms had rows in the batch. Every
        parameter takes part in every call (DDP expects the same graph on every rank)."""
        total = torch.zeros((), device=next(iter(losses.values())).device)
        for name, loss in losses.items():
            weight = self.weights.get(name, 1.0)
            if self.weighting == "static":
                total = total + weight * loss
                continue
            s = self.log_vars[self.terms.index(name)]
            seen = torch.as_tensor(present.get(name, True), dtype=loss.dtype, device=loss.device)
            total = total + weight * (torch.exp(-s) * loss + seen * s / 2)
        return total

    def sigmas(self) -> dict[str, float]:
        """Each term's learned sigma (uncertainty weighting only; empty otherwise), for the logs."""
        if self.weighting != "uncertainty":
            return {}
        return {name: float(torch.exp(s / 2)) for name, s in zip(self.terms, self.log_vars.detach())}

    def denoising_loss(self, ids: torch.Tensor, pad_id: int) -> torch.Tensor:
        """Reconstruction loss of the batch's texts (`ids`, [CLS] first, right-padded) from a corrupted copy."""
        n = self.noise
        # Seeded from torch's generator, so a run seeded by Lightning draws the same noise every time.
        rng = random.Random(int(torch.randint(0, 2**31 - 1, ())))
        clean = [row[row.ne(pad_id)].tolist() for row in ids.cpu()]
        noisy = [
            corrupt(seq, n["mask_rate"], n["delete_rate"], n["span_rate"], n["max_span"], n["mask_id"], rng)
            for seq in clean
        ]
        device = ids.device
        loss, _ = self.denoiser.loss_and_accuracy(
            pad_ids(noisy, pad_id).to(device), pad_ids(clean, pad_id).to(device), pad_id, n["loss_fraction"]
        )
        return loss
