"""Transformer encoder shared by the denoising autoencoder (pretraining) and the classifier (fine-tuning)."""

from __future__ import annotations

import torch
from torch import nn

from sora.config import ModelParams


class TransformerEncoder(nn.Module):
    def __init__(self, vocab_size: int, d_model: int, n_heads: int, n_layers: int, ff_dim: int,
                 dropout: float, max_len: int, pad_id: int):
        super().__init__()
        # Kept as attributes so the decoder and the adversarial code can size themselves from the encoder.
        self.vocab_size, self.d_model, self.n_heads, self.ff_dim = vocab_size, d_model, n_heads, ff_dim
        self.max_len, self.pad_id = max_len, pad_id
        self.tok = nn.Embedding(vocab_size, d_model, padding_idx=pad_id)
        self.pos = nn.Embedding(max_len, d_model)  # learned positions
        self.drop = nn.Dropout(dropout)
        layer = nn.TransformerEncoderLayer(d_model, n_heads, ff_dim, dropout, activation="gelu",
                                           batch_first=True, norm_first=True)
        # Pre-norm layers cannot use the nested-tensor fast path; saying so avoids a warning.
        self.layers = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)  # pre-norm stacks need a final norm
        # Small embedding init (GPT-2 style): with N(0,1) the tied decoder projection starts with huge logits
        # (loss ~20) and the embedding noise swamps the positions.
        nn.init.normal_(self.tok.weight, std=0.02)
        nn.init.normal_(self.pos.weight, std=0.02)
        with torch.no_grad():
            self.tok.weight[pad_id].zero_()

    @classmethod
    def from_params(cls, vocab_size: int, pad_id: int, model_params: ModelParams) -> "TransformerEncoder":
        p = model_params
        return cls(vocab_size, p.d_model, p.n_heads, p.n_layers, p.ff_dim, p.dropout, p.max_len, pad_id)

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        """Token embeddings only (B,T,D), before positions: the space adversarial training perturbs."""
        return self.tok(ids)

    def forward(self, ids: torch.Tensor, embeds: torch.Tensor | None = None) -> torch.Tensor:
        """ids (B,T) -> hidden states (B,T,D). `embeds` replaces embed(ids); ids still define the padding mask."""
        if ids.size(1) > self.max_len:
            raise ValueError(f"sequence length {ids.size(1)} exceeds max_len {self.max_len}")
        pad_mask = ids.eq(self.pad_id)  # True = ignore this key
        x = self.embed(ids) if embeds is None else embeds
        positions = torch.arange(ids.size(1), device=ids.device)
        x = self.drop(x + self.pos(positions))
        x = self.layers(x, src_key_padding_mask=pad_mask)
        return self.norm(x)
