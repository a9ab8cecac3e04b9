"""Sequence classifier: encoder + masked mean pooling + linear head."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from sora.config import ModelParams
from sora.models.encoder import TransformerEncoder


def pad_ids(seqs: list[list[int]], pad_id: int) -> torch.Tensor:
    """Right-pad to the longest sequence in the batch (not to max_len: short batches stay cheap)."""
    out = torch.full((len(seqs), max(len(s) for s in seqs)), pad_id, dtype=torch.long)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = torch.tensor(s, dtype=torch.long)
    return out


def plain_model_params(model_params: ModelParams | dict[str, Any]) -> dict[str, Any]:
    """ModelParams -> dict, validated, so checkpoint hparams and bundle configs hold only plain types."""
    return ModelParams.model_validate(
        dict(model_params) if isinstance(model_params, dict) else model_params.model_dump()
    ).model_dump()


def build_encoder(vocab_size: int, pad_id: int, model_params: ModelParams | dict[str, Any]) -> TransformerEncoder:
    return TransformerEncoder.from_params(
        vocab_size, pad_id, ModelParams.model_validate(plain_model_params(model_params))
    )


def build_classifier(
    vocab_size: int, pad_id: int, model_params: ModelParams | dict[str, Any], num_classes: int
) -> Classifier:
    p = plain_model_params(model_params)
    return Classifier(build_encoder(vocab_size, pad_id, p), num_classes, p["dropout"])


class Classifier(nn.Module):
    def __init__(self, encoder: TransformerEncoder, num_classes: int, dropout: float):
        super().__init__()
        self.encoder = encoder
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(encoder.d_model, num_classes)

    def forward(self, ids: torch.Tensor, embeds: torch.Tensor | None = None) -> torch.Tensor:
        h = self.encoder(ids, embeds)
        # Mean over real tokens only, so appending padding never changes the prediction.
        keep = ids.ne(self.encoder.pad_id).unsqueeze(-1).to(h.dtype)
        pooled = (h * keep).sum(1) / keep.sum(1).clamp(min=1.0)
        return self.head(self.drop(pooled))
