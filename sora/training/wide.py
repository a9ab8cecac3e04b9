"""Warm start for the wide part: a logistic regression on exactly the features Classifier.wide() sums, fitted in
closed form by scikit-learn, copied into the wide tables before fine-tuning.

Why: jointly trained from zero with Adam for a couple of epochs, the n-gram tables stay below the same linear
model fitted to convergence (measured in docs/experiments.md). Starting from the fitted model, fine-tuning
begins at the classical model's accuracy and the Transformer learns what the n-grams miss."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from scipy import sparse
from sklearn.linear_model import LogisticRegression


def design_matrix(model, id_lists: Sequence[Sequence[int]]) -> sparse.csr_matrix:
    """Rows of counts / sqrt(feature count): the scaling wide() applies."""
    rows, cols, vals = [], [], []
    table = model.char_ngrams.tolist()
    for r, ids in enumerate(id_lists):
        columns = model.wide_columns(list(ids), table)
        if not columns:
            continue
        rows.extend([r] * len(columns))
        cols.extend(columns)
        vals.extend([1.0 / np.sqrt(len(columns))] * len(columns))
    shape = (len(id_lists), model.encoder.vocab_size + 2 * model.wide_buckets)
    return sparse.csr_matrix((vals, (rows, cols)), shape=shape)


def fit_wide(
    model,
    train_ids: Sequence[Sequence[int]],
    train_labels: np.ndarray,
    val_ids: Sequence[Sequence[int]],
    val_labels: np.ndarray,
    Cs: Sequence[float],
    max_iter: int = 2000,
) -> dict[str, float]:
    """Fit one logistic regression per C on train, keep the best on val accuracy, and copy it into the model's
    wide tables (and head bias). Returns {"C": chosen, "val_acc": its val accuracy}."""
    if not model.wide_buckets:
        raise ValueError("the model has no wide part (model.wide_buckets is 0)")
    x_train, x_val = design_matrix(model, train_ids), design_matrix(model, val_ids)
    best = None
    for C in Cs:
        lr = LogisticRegression(C=C, max_iter=max_iter).fit(x_train, train_labels)
        acc = float((lr.predict(x_val) == val_labels).mean())
        if best is None or acc > best[0]:
            best = (acc, C, lr)
    acc, C, lr = best
    num_classes = model.head.out_features
    if lr.coef_.shape[0] == 1:  # binary: softmax over (-z/2, z/2) equals sigmoid(z)
        coef = np.stack([-lr.coef_[0] / 2, lr.coef_[0] / 2], axis=1)
        bias = np.array([-lr.intercept_[0] / 2, lr.intercept_[0] / 2])
    else:
        coef, bias = lr.coef_.T, lr.intercept_
    if coef.shape[1] != num_classes:
        raise ValueError(f"the labels have {coef.shape[1]} classes, the model {num_classes}")
    vocab_size, buckets = model.encoder.vocab_size, model.wide_buckets
    as_tensor = lambda a: torch.as_tensor(a, dtype=torch.float32)
    with torch.no_grad():
        model.wide_unigram.weight.copy_(as_tensor(coef[:vocab_size]))
        model.wide_bigram.weight.copy_(as_tensor(coef[vocab_size : vocab_size + buckets]))
        model.wide_char.weight[:buckets].copy_(as_tensor(coef[vocab_size + buckets :]))
        model.head.bias.copy_(torch.as_tensor(bias, dtype=torch.float32))
    return {"C": float(C), "val_acc": round(acc, 5)}
