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

from sora.evaluation.baseline import fit_regressions
from sora.progress import progress


def column_idf(model) -> np.ndarray:
    """The model's idf buffers laid out as the design matrix's columns (unigrams, bigrams, character n-grams)."""
    parts = (model.idf_unigram, model.idf_bigram, model.idf_char[: model.wide_buckets])
    return torch.cat(parts).double().numpy()


def occurrences(model, id_lists: Sequence[Sequence[int]]) -> sparse.csr_matrix:
    """Term counts: one row per text, one column per wide feature (duplicates summed)."""
    rows, cols = model.wide_columns(id_lists)
    shape = (len(id_lists), model.encoder.vocab_size + 2 * model.wide_buckets)
    counts = sparse.csr_matrix((np.ones(len(cols)), (rows, cols)), shape=shape)
    counts.sum_duplicates()
    return counts


def design_matrix(model, id_lists: Sequence[Sequence[int]]) -> sparse.csr_matrix:
    """Rows of count x idf / sqrt(sum of idf^2 over occurrences): what wide() computes before the weights."""
    return weighted(model, occurrences(model, id_lists))


def weighted(model, counts: sparse.csr_matrix) -> sparse.csr_matrix:
    """The design matrix of texts whose `occurrences` are `counts`."""
    idf = column_idf(model)
    norm = np.sqrt(np.maximum(np.asarray(counts @ idf**2).ravel(), 1.0))
    return sparse.diags(1.0 / norm) @ counts @ sparse.diags(idf)


def set_idf(model, counts: sparse.csr_matrix) -> None:
    """Smoothed idf (scikit-learn's: ln((1 + n) / (1 + df)) + 1) of every feature seen in `counts`; features never
    seen get 0, so they stay out of the norm, as words outside a TfidfVectorizer's vocabulary do."""
    df = np.asarray((counts > 0).sum(0)).ravel()
    idf = np.where(df > 0, np.log((1 + counts.shape[0]) / (1 + df)) + 1, 0.0)
    vocab_size, buckets = model.encoder.vocab_size, model.wide_buckets
    as_tensor = lambda a: torch.as_tensor(a, dtype=torch.float32)
    with torch.no_grad():
        model.idf_unigram.copy_(as_tensor(idf[:vocab_size]))
        model.idf_bigram.copy_(as_tensor(idf[vocab_size : vocab_size + buckets]))
        model.idf_char[:buckets].copy_(as_tensor(idf[vocab_size + buckets :]))


def fit_wide(
    model,
    train_ids: Sequence[Sequence[int]],
    train_labels: np.ndarray,
    val_ids: Sequence[Sequence[int]],
    val_labels: np.ndarray,
    Cs: Sequence[float],
    max_iter: int = 2000,
    jobs: int = 1,
) -> dict[str, float]:
    """Set the model's idf from train, fit one logistic regression per C on train's tf-idf features (`jobs` at a
    time), keep the best on val accuracy (the first of equals, in the order of Cs), and copy it into the model's
    wide tables (weights x idf) and head bias. Returns {"C": chosen, "val_acc": its val accuracy}."""
    if not model.wide_buckets:
        raise ValueError("the model has no wide part (model.wide_buckets is 0)")
    train_counts = occurrences(model, train_ids)
    set_idf(model, train_counts)
    x_train, x_val = weighted(model, train_counts), design_matrix(model, val_ids)
    with progress("wide part: logistic regressions (C on val)", len(Cs)) as bar:
        fits = fit_regressions(x_train, train_labels, list(Cs), max_iter, jobs, bar)
    accs = [float((lr.predict(x_val) == val_labels).mean()) for lr in fits]
    best = int(np.argmax(accs))
    acc, C, lr = accs[best], Cs[best], fits[best]
    num_classes = model.head.out_features
    if lr.coef_.shape[0] == 1:  # binary: softmax over (-z/2, z/2) equals sigmoid(z)
        coef = np.stack([-lr.coef_[0] / 2, lr.coef_[0] / 2], axis=1)
        bias = np.array([-lr.intercept_[0] / 2, lr.intercept_[0] / 2])
    else:
        coef, bias = lr.coef_.T, lr.intercept_
    if coef.shape[1] != num_classes:
        raise ValueError(f"the labels have {coef.shape[1]} classes, the model {num_classes}")
    coef = coef * column_idf(model)[:, None]  # wide() multiplies no idf in: the tables carry it
    vocab_size, buckets = model.encoder.vocab_size, model.wide_buckets
    as_tensor = lambda a: torch.as_tensor(a, dtype=torch.float32)
    with torch.no_grad():
        model.wide_unigram.weight.copy_(as_tensor(coef[:vocab_size]))
        model.wide_bigram.weight.copy_(as_tensor(coef[vocab_size : vocab_size + buckets]))
        model.wide_char.weight[:buckets].copy_(as_tensor(coef[vocab_size + buckets :]))
        model.head.bias.copy_(torch.as_tensor(bias, dtype=torch.float32))
    return {"C": float(C), "val_acc": round(acc, 5)}
