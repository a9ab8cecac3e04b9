"""Scoring texts with the attacked model: batched, with a count of the texts an attack scored."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

PredictProba = Callable[[list[str]], np.ndarray]


def predict(predict_proba: PredictProba, texts: Sequence[str], batch_size: int) -> np.ndarray:
    """Class probabilities of ``texts``, scored ``batch_size`` texts at a time."""
    out = []
    bs = max(1, int(batch_size))
    for s in range(0, len(texts), bs):
        chunk = list(texts[s : s + bs])
        p = np.asarray(predict_proba(chunk), dtype=float)
        if p.ndim != 2 or p.shape[0] != len(chunk):
            raise ValueError(f"predict_proba must return an (N, C) array; got shape {p.shape} for N={len(chunk)}")
        out.append(p)
    return np.concatenate(out) if out else np.zeros((0, 0))


class QueryCounter:
    """:func:`predict` that counts the texts it scored."""

    def __init__(self, predict_proba: PredictProba, batch_size: int):
        self.predict_proba, self.batch_size, self.queries = predict_proba, batch_size, 0

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        self.queries += len(texts)
        return predict(self.predict_proba, texts, self.batch_size)
