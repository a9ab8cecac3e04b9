"""Transformer encoder shared by the denoising autoencoder (pretraining) and the classifier (fine-tuning)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from sora.config import ModelParams


def keep_mask(shape: torch.Size | tuple[int, ...], p: float, device: torch.device | str = "cpu") -> torch.Tensor:
    """A boolean mask, True with probability 1 - p rounded to a multiple of 1/65536. Each element is 16 random
    bits, four cut from one 64-bit integer: on CPU that is six times cheaper than a float per element from
    torch.rand, and the dropout masks were the largest cost of a CPU training step after the matrix products
    (benchmarks/dropout.py)."""
    if p >= 1.0:  # 65536 - 32768 is out of int16's range
        return torch.zeros(shape, dtype=torch.bool, device=device)
    n = math.prod(shape)
    words = torch.randint(-(2**63), 2**63 - 1, ((n + 3) // 4,), dtype=torch.int64, device=device)
    return words.view(torch.int16)[:n].view(shape) >= round(p * 65536) - 32768


def dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Inverted dropout. On CPU the mask comes from `keep_mask`: F.dropout draws it with bernoulli_, about twenty
    times slower there. Other devices keep F.dropout, a fused kernel."""
    if not training or p == 0.0:
        return x
    if x.device.type != "cpu":
        return F.dropout(x, p, True)
    kept = 1.0 - round(p * 65536) / 65536
    return x * (keep_mask(x.shape, p) / kept)


class Dropout(nn.Module):
    """nn.Dropout with the faster CPU mask of `dropout` (no parameters, so checkpoints are unchanged)."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class EncoderLayer(nn.Module):
    """Pre-norm Transformer layer: x + attention(norm(x)), then x + feed-forward(norm(x)).

    Written with plain nn.Linear projections (not nn.MultiheadAttention) so that pruning and dynamic int8
    quantisation reach every matrix multiply: MultiheadAttention keeps its packed input projection as a raw
    Parameter and its output projection un-quantisable, which left half of the layer's FLOPs in fp32.
    """

    def __init__(self, d_model: int, n_heads: int, ff_dim: int, dropout: float):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model {d_model} must be divisible by n_heads {n_heads}")
        self.n_heads, self.dropout = n_heads, dropout
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)
        self.ff1, self.ff2 = nn.Linear(d_model, ff_dim), nn.Linear(ff_dim, d_model)
        self.drop = Dropout(dropout)

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        if not (self.training and self.dropout > 0.0 and q.device.type == "cpu"):
            p = self.dropout if self.training else 0.0
            return F.scaled_dot_product_attention(q, k, v, attn_mask=keep, dropout_p=p)
        # Training on CPU: the same attention written out, so its dropout takes the faster mask.
        scores = (q @ k.transpose(-2, -1)).div_(math.sqrt(q.size(-1))).masked_fill_(~keep, float("-inf"))
        return dropout(scores.softmax(-1), self.dropout, True) @ v

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """x (B,T,D); keep (B,1,1,T) bool, True = a real token that queries may attend to."""
        b, t, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, t, 3, self.n_heads, d // self.n_heads).permute(2, 0, 3, 1, 4)
        attn = self.attend(q, k, v, keep)
        x = x + self.drop(self.out(attn.transpose(1, 2).reshape(b, t, d)))
        return x + self.drop(self.ff2(self.drop(F.gelu(self.ff1(self.norm2(x))))))


class TransformerEncoder(nn.Module):
    def __init__(
        self,
        vocab_size: int,
        d_model: int,
        n_heads: int,
        n_layers: int,
        ff_dim: int,
        dropout: float,
        max_len: int,
        pad_id: int,
    ):
        super().__init__()
        # Kept as attributes so the decoder and the adversarial code can size themselves from the encoder.
        self.vocab_size, self.d_model, self.n_heads, self.ff_dim = vocab_size, d_model, n_heads, ff_dim
        self.max_len, self.pad_id = max_len, pad_id
        self.tok = nn.Embedding(vocab_size, d_model, padding_idx=pad_id)
        self.pos = nn.Embedding(max_len, d_model)  # learned positions
        self.drop = Dropout(dropout)
        self.layers = nn.ModuleList(EncoderLayer(d_model, n_heads, ff_dim, dropout) for _ in range(n_layers))
        self.norm = nn.LayerNorm(d_model)  # pre-norm stacks need a final norm
        # Small embedding init (GPT-2 style): with N(0,1) the tied decoder projection starts with huge logits
        # (loss ~20) and the embedding noise swamps the positions.
        nn.init.normal_(self.tok.weight, std=0.02)
        nn.init.normal_(self.pos.weight, std=0.02)
        with torch.no_grad():
            self.tok.weight[pad_id].zero_()

    @classmethod
    def from_params(cls, vocab_size: int, pad_id: int, model_params: ModelParams) -> TransformerEncoder:
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
        keep = ~pad_mask[:, None, None, :]
        for layer in self.layers:
            x = layer(x, keep)
        return self.norm(x)
