"""Wide-and-deep sequence classifier: a Transformer (masked mean pooling + linear head) whose logits are added
to those of a bag of token unigrams and hashed bigrams (the "wide" part, a fastText-style linear model).
Other tasks over the same texts get a linear head each on the same pooled state (multi-task learning): one
encoder pass answers them all.

Why both: on a few tens of thousands of labels a linear model over n-grams is very hard to beat, and the
Transformer alone stays below it; trained jointly, the wide part carries the lexical evidence and the deep
part learns what a bag of n-grams misses (order, negation scope, words it has only seen in pretraining)."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import chain
from typing import Any

import numpy as np
import torch
from torch import nn

from sora.config import ModelParams
from sora.models.encoder import Dropout, TransformerEncoder


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
    vocab_size: int,
    pad_id: int,
    model_params: ModelParams | dict[str, Any],
    num_classes: int,
    task_classes: dict[str, int] | None = None,
) -> Classifier:
    p = plain_model_params(model_params)
    encoder = build_encoder(vocab_size, pad_id, p)
    return Classifier(encoder, num_classes, p["dropout"], p["wide_buckets"], task_classes)


# Bigram (a, b) -> bucket (a * prime + b) mod buckets: computed from the ids inside the model, so every caller
# that has token ids (training, attacks, serving) gets the wide features without a second input.
_BIGRAM_PRIME = 1_000_003
# Character n-grams per token kept in the model's table (see Vocab.char_ngram_table): enough for a 9-letter word.
MAX_CHAR_GRAMS = 32


class Classifier(nn.Module):
    def __init__(
        self,
        encoder: TransformerEncoder,
        num_classes: int,
        dropout: float,
        wide_buckets: int = 0,
        task_classes: dict[str, int] | None = None,
    ):
        super().__init__()
        self.encoder = encoder
        self.drop = Dropout(dropout)
        self.head = nn.Linear(encoder.d_model, num_classes)  # the primary task
        # The other tasks, keyed by their label column: a linear head each on the pooled state, no wide part.
        self.task_heads = nn.ModuleDict({c: nn.Linear(encoder.d_model, k) for c, k in (task_classes or {}).items()})
        self.wide_buckets = wide_buckets
        if wide_buckets:
            # Zero init: the wide part starts silent and grows only where a feature carries label evidence.
            self.wide_unigram = nn.Embedding(encoder.vocab_size, num_classes)
            self.wide_bigram = nn.Embedding(wide_buckets, num_classes)
            # Hashed character n-grams of each token (the subword features of fastText, char_wb of scikit-learn):
            # row `wide_buckets` is the "no n-gram" filler. Which n-grams a token has is a buffer, filled from the
            # vocabulary's strings by set_char_ngrams and saved with the weights.
            self.wide_char = nn.Embedding(wide_buckets + 1, num_classes, padding_idx=wide_buckets)
            self.register_buffer("char_ngrams", torch.full((encoder.vocab_size, MAX_CHAR_GRAMS), wide_buckets))
            for table in (self.wide_unigram, self.wide_bigram, self.wide_char):
                nn.init.zeros_(table.weight)
            # Inverse document frequency of each feature, set by sora.training.wide.fit_wide (1 = plain counts; 0 =
            # never seen in training, left out of the norm as scikit-learn's vocabulary leaves it out). The tables
            # hold weight x idf, so these only scale the L2 norm of the text's tf-idf vector.
            self.register_buffer("idf_unigram", torch.ones(encoder.vocab_size))
            self.register_buffer("idf_bigram", torch.ones(wide_buckets))
            self.register_buffer("idf_char", torch.ones(wide_buckets + 1))

    def set_char_ngrams(self, table: torch.Tensor) -> None:
        """(vocab_size, MAX_CHAR_GRAMS) bucket ids per token, wide_buckets where a token has fewer n-grams."""
        self.char_ngrams.copy_(table)

    def wide_columns(self, id_lists: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
        """(row, column) of every wide feature of each encoded text in a (vocab + 2 x buckets) design matrix, one
        pair per occurrence: what wide() sums, so a linear model fitted outside (see sora.training.wide) can be
        copied into the tables. As in wide(), position 0 ([CLS]) and padding are not words, and a bigram is two
        adjacent words."""
        lengths = np.fromiter(map(len, id_lists), dtype=np.int64, count=len(id_lists))
        ids = np.fromiter(chain.from_iterable(id_lists), dtype=np.int64, count=int(lengths.sum()))
        row = np.repeat(np.arange(len(id_lists)), lengths)
        word = ids != self.encoder.pad_id
        word[(np.cumsum(lengths) - lengths)[lengths > 0]] = False
        pair = word[:-1] & word[1:] & (row[:-1] == row[1:])
        bigrams = (ids[:-1][pair] * _BIGRAM_PRIME + ids[1:][pair]) % self.wide_buckets
        grams = self.char_ngrams.cpu().numpy().astype(np.int32)[ids[word]]
        has_gram = grams != self.wide_buckets
        offset = self.encoder.vocab_size + self.wide_buckets
        rows = (row[word], row[:-1][pair], np.repeat(row[word], has_gram.sum(1)))
        cols = (ids[word], self.encoder.vocab_size + bigrams, offset + grams[has_gram])
        return np.concatenate(rows), np.concatenate(cols)

    def wide(self, ids: torch.Tensor) -> torch.Tensor:
        """Logits of the bag of n-grams (B, C): a linear model over the text's tf-idf vector, L2-normalised.
        The norm sums idf^2 once per occurrence (exact when no feature repeats), which needs no de-duplication
        inside the batch. Position 0 ([CLS]) and padding are not words."""
        real = ids.ne(self.encoder.pad_id)
        real[:, 0] = False
        pairs = real[:, :-1] & real[:, 1:]
        buckets = (ids[:, :-1] * _BIGRAM_PRIME + ids[:, 1:]) % self.wide_buckets
        grams = self.char_ngrams[ids]  # (B, T, MAX_CHAR_GRAMS)
        has_gram = grams.ne(self.wide_buckets) & real.unsqueeze(-1)
        total = (self.wide_unigram(ids) * real.unsqueeze(-1)).sum(1)
        total = total + (self.wide_bigram(buckets) * pairs.unsqueeze(-1)).sum(1)
        # Looked up as (B, T * grams): the int8 embedding kernel takes 1- or 2-d indices only.
        chars = self.wide_char(grams.flatten(1)).view(*grams.shape, -1)
        total = total + (chars * has_gram.unsqueeze(-1)).sum((1, 2))
        norm2 = (self.idf_unigram[ids].square() * real).sum(1) + (self.idf_bigram[buckets].square() * pairs).sum(1)
        norm2 = norm2 + (self.idf_char[grams].square() * has_gram).sum((1, 2))
        return total / norm2.clamp(min=1).sqrt().unsqueeze(-1).to(total.dtype)

    def pooled(self, ids: torch.Tensor, embeds: torch.Tensor | None = None) -> torch.Tensor:
        h = self.encoder(ids, embeds)
        # Mean over real tokens only, so appending padding never changes the prediction.
        keep = ids.ne(self.encoder.pad_id).unsqueeze(-1).to(h.dtype)
        return self.drop((h * keep).sum(1) / keep.sum(1).clamp(min=1.0))

    def forward(self, ids: torch.Tensor, embeds: torch.Tensor | None = None) -> torch.Tensor:
        """The primary task's logits (B, C)."""
        logits = self.head(self.pooled(ids, embeds))
        return logits + self.wide(ids) if self.wide_buckets else logits

    def all_tasks(self, ids: torch.Tensor, embeds: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Every task's logits from one encoder pass: the primary task's under `primary`, the others under
        their label column."""
        pooled = self.pooled(ids, embeds)
        primary = self.head(pooled)
        out = {"primary": primary + self.wide(ids) if self.wide_buckets else primary}
        return out | {column: head(pooled) for column, head in self.task_heads.items()}
