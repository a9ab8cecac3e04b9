"""Sequence classifier: encoder + masked mean pooling + linear head."""

from __future__ import annotations

import torch
from torch import nn

from sora.models.encoder import TransformerEncoder


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
