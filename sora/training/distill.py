"""Knowledge distillation (知识蒸馏) and self-training: a student learns a stronger teacher's probabilities on the
labeled train texts and on unlabeled pool texts (Hinton et al. 2015; on unlabeled text this is self-training).

The teacher is an ensemble: the hardened Transformer and the tuned classical n-gram model, mixed with the weight
that scores best on val. The student is wide and deep: the same n-gram model plus a network trained on its
residual, so it can match the teacher where the n-grams already do and learn from it where they do not."""

from __future__ import annotations

import numpy as np
import pandas as pd


def pick_weight(first: np.ndarray, second: np.ndarray, labels: np.ndarray, grid: int = 11) -> tuple[float, float]:
    """The weight w in [0, 1] (grid points) for w * first + (1 - w) * second with the best accuracy on
    `labels`, and that accuracy. Ties go to the weight nearest 0.5, the least tuned choice."""
    best = None
    for w in np.linspace(0.0, 1.0, grid):
        acc = float(((w * first + (1 - w) * second).argmax(1) == labels).mean())
        key = (acc, -abs(w - 0.5))
        if best is None or key > best[0]:
            best = (key, float(w), acc)
    return best[1], best[2]


def read_train_logits(path, train: pd.DataFrame, train_path: str) -> np.ndarray:
    """The n-gram model's out-of-fold logits (n, classes) for the rows of `train`, from the `baseline` stage's
    file; refuses a file written for another train split."""
    from sora.errors import DataError

    logits = pd.read_parquet(path)
    if not logits["text"].equals(train["text"]):
        raise DataError(f"{path} was computed for another train split than {train_path}: rerun baseline")
    return np.stack(logits["logits"].to_numpy())


def transfer_set(
    train: pd.DataFrame,
    train_teacher: np.ndarray,
    pool: pd.DataFrame,
    pool_teacher: np.ndarray,
    hard_weight: float,
    train_offsets: np.ndarray | None = None,
    pool_offsets: np.ndarray | None = None,
) -> pd.DataFrame:
    """Rows the student learns from: every train text with target hard_weight * its label + (1 - hard_weight)
    * the teacher's probabilities, and every pool text with the teacher's probabilities alone (label -1).
    Offsets (the n-gram half's logits per row), when given, are added to the network's during training."""
    num_classes = train_teacher.shape[1]
    onehot = np.eye(num_classes)[train["label"].to_numpy()]
    labeled = train[["text", "tokens", "lang", "label"]].assign(
        soft=list(hard_weight * onehot + (1 - hard_weight) * train_teacher)
    )
    unlabeled = pool[["text", "tokens", "lang"]].assign(label=-1, soft=list(pool_teacher))
    if train_offsets is not None and pool_offsets is not None:
        labeled, unlabeled = labeled.assign(offset=list(train_offsets)), unlabeled.assign(offset=list(pool_offsets))
    return pd.concat([labeled, unlabeled], ignore_index=True)


def unlabeled_part(pool: pd.DataFrame, train: pd.DataFrame, max_texts: int, seed: int) -> pd.DataFrame:
    """Pool texts that are not train texts (those are in the transfer set with their labels), a seeded sample
    of at most max_texts."""
    rest = pool[~pool["text"].isin(set(train["text"]))]
    return rest.sample(n=max_texts, random_state=seed) if len(rest) > max_texts else rest
