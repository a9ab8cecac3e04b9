"""Denoising autoencoder (BART-style) used to pretrain the encoder on unlabeled text.

The encoder reads a corrupted sequence; a small causal decoder rebuilds the original from it.
"""

from __future__ import annotations

import random

import torch
import torch.nn.functional as F
from torch import nn

from sora.models.encoder import TransformerEncoder


def corrupt(
    ids: list[int],
    mask_rate: float,
    delete_rate: float,
    span_rate: float,
    max_span: int,
    mask_id: int,
    rng: random.Random,
) -> list[int]:
    """Noise one sequence. Per position (after CLS) one draw picks at most one action:
    span infilling (1..max_span tokens -> one mask) with prob span_rate, deletion with prob delete_rate,
    masking with prob mask_rate, otherwise the token is kept. Position 0 (CLS) is never touched."""
    if len(ids) < 2:
        return list(ids)
    out = [ids[0]]
    i = 1
    while i < len(ids):
        r = rng.random()
        if r < span_rate:
            out.append(mask_id)  # the whole span becomes one mask: the model must also infer its length
            i += rng.randint(1, max_span)
            continue
        if r < span_rate + delete_rate:
            pass  # deleted: the model must infer where something is missing
        elif r < span_rate + delete_rate + mask_rate:
            out.append(mask_id)
        else:
            out.append(ids[i])
        i += 1
    if len(out) == 1:  # everything was removed: leave one infill marker so there is something to read
        out.append(mask_id)
    return out


class DenoisingAutoencoder(nn.Module):
    def __init__(
        self, encoder: TransformerEncoder, vocab_size: int, n_decoder_layers: int, dropout: float, tie_output: bool
    ):
        super().__init__()
        self.encoder = encoder
        d = encoder.d_model
        layer = nn.TransformerDecoderLayer(
            d, encoder.n_heads, encoder.ff_dim, dropout, activation="gelu", batch_first=True, norm_first=True
        )
        self.decoder = nn.TransformerDecoder(layer, n_decoder_layers)
        self.norm = nn.LayerNorm(d)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(d, vocab_size, bias=False)
        if tie_output:
            # Tied to the encoder's token embedding, as in BART. With a vocabulary much larger than the tokens a
            # batch holds, the full softmax pushes every row down a little at each step; Adam scales those small
            # steady gradients to full-size steps, and the rows of rare words drift to one shared vector that
            # the classifier then inherits. Untied, a row moves only when its token is in the input.
            self.out.weight = encoder.tok.weight
        else:
            nn.init.normal_(self.out.weight, std=0.02)

    def forward(self, noisy_ids: torch.Tensor, target_ids: torch.Tensor) -> torch.Tensor:
        """Teacher forcing. target_ids start with CLS, which doubles as BOS: the decoder reads
        target[:, :-1] and predicts target[:, 1:]. Returns logits (B, T_target-1, V)."""
        return self.out(self.hidden(noisy_ids, target_ids))

    def hidden(self, noisy_ids: torch.Tensor, target_ids: torch.Tensor) -> torch.Tensor:
        """Decoder states before the vocabulary projection (B, T_target-1, D)."""
        pad = self.encoder.pad_id
        memory = self.encoder(noisy_ids)
        dec_in = target_ids[:, :-1]
        t = dec_in.size(1)
        x = self.drop(self.encoder.embed(dec_in) + self.encoder.pos(torch.arange(t, device=dec_in.device)))
        causal = torch.ones(t, t, dtype=torch.bool, device=dec_in.device).triu(1)  # True = may not attend
        x = self.decoder(
            x,
            memory,
            tgt_mask=causal,
            tgt_is_causal=True,
            tgt_key_padding_mask=dec_in.eq(pad),
            memory_key_padding_mask=noisy_ids.eq(pad),
        )
        return self.norm(x)

    def loss_and_accuracy(
        self,
        noisy_ids: torch.Tensor,
        target_ids: torch.Tensor,
        pad_id: int,
        loss_fraction: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Cross-entropy and token accuracy over non-pad target tokens.

        The vocabulary projection dominates the cost (B*T*V), so with loss_fraction < 1 only a random share
        of positions is projected and scored: an unbiased estimate of the full loss at a fraction of the cost."""
        states = self.hidden(noisy_ids, target_ids)
        gold = target_ids[:, 1:]
        keep = gold.ne(pad_id)
        if loss_fraction < 1.0:
            draw = torch.rand(gold.shape, generator=generator, device=gold.device) < loss_fraction
            keep = keep & draw if (keep & draw).any() else keep
        logits = self.out(states[keep])
        loss = F.cross_entropy(logits, gold[keep])
        acc = logits.argmax(-1).eq(gold[keep]).float().mean()
        return loss, acc
