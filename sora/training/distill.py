"""Knowledge distillation (知识蒸馏) and self-training: a student learns a stronger teacher's probabilities on the
labeled train texts and on unlabeled pool texts (Hinton et al. 2015; on unlabeled text this is self-training).

The teacher is an ensemble: the hardened Transformer and the tuned classical n-gram model, mixed with the weight
that scores best on val. The student is wide and deep: the same n-gram model plus a network trained on its
residual, so it can match the teacher where the n-grams already do and learn from it where they do not."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from sora.config import MISSING_LABEL


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
    task_columns: Sequence[str] = (),
    task_teacher: tuple[dict[str, np.ndarray], dict[str, np.ndarray]] | None = None,
) -> pd.DataFrame:
    """Rows the student learns from: every train text with target hard_weight * its label + (1 - hard_weight)
    * the teacher's probabilities, and every pool text with the teacher's probabilities alone (label -1).
    Offsets (the n-gram half's logits per row), when given, are added to the network's during training. The
    other tasks' label columns (`task_columns`) come along where a frame has them, -1 where it does not; with
    `task_teacher` (the teacher's probabilities per task column, for the train rows and for the pool rows),
    each task gets its own soft targets `soft_<column>`, mixed with its label the same way where a row has one."""
    num_classes = train_teacher.shape[1]
    onehot = np.eye(num_classes)[train["label"].to_numpy()]

    def with_tasks(frame: pd.DataFrame) -> pd.DataFrame:  # a column a frame lacks, or a row lacks, is -1
        out = frame.reindex(columns=["text", "tokens", "lang", *task_columns]).reset_index(drop=True)
        return out.fillna({c: MISSING_LABEL for c in task_columns}).astype({c: "int64" for c in task_columns})

    soft = hard_weight * onehot + (1 - hard_weight) * train_teacher
    labeled = with_tasks(train).assign(label=train["label"].to_numpy(), soft=list(soft))
    unlabeled = with_tasks(pool).assign(label=-1, soft=list(pool_teacher))
    if train_offsets is not None and pool_offsets is not None:
        labeled, unlabeled = labeled.assign(offset=list(train_offsets)), unlabeled.assign(offset=list(pool_offsets))
    out = pd.concat([labeled, unlabeled], ignore_index=True)
    for column in task_columns if task_teacher else ():
        teacher = np.concatenate([task_teacher[0][column], task_teacher[1][column]])
        labels = out[column].to_numpy()
        has = labels != MISSING_LABEL
        mixed = teacher.copy()
        mixed[has] = hard_weight * np.eye(teacher.shape[1])[labels[has]] + (1 - hard_weight) * teacher[has]
        out[f"soft_{column}"] = list(mixed)
    return out


def unlabeled_part(pool: pd.DataFrame, train: pd.DataFrame, max_texts: int, seed: int) -> pd.DataFrame:
    """Pool texts that are not train texts (those are in the transfer set with their labels), a seeded sample
    of at most max_texts."""
    rest = pool[~pool["text"].isin(set(train["text"]))]
    return rest.sample(n=max_texts, random_state=seed) if len(rest) > max_texts else rest
