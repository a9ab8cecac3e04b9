"""Label sets over the same texts (params `tasks:`): every task has one int column in the labeled data and the
splits, and MISSING where a text has no label for it. A text needs a label for at least one task."""

from __future__ import annotations

import pandas as pd

from sora.config import MISSING_LABEL as MISSING
from sora.config import PRIMARY_COLUMN, Params, TaskParams
from sora.errors import DataError


def class_ids(names: pd.Series, task: TaskParams, where: str) -> pd.Series:
    """Class names (a built-in corpus's labels, e.g. 'sports') as the task's class ids; None stays MISSING."""
    index = {name: i for i, name in enumerate(task.classes)}
    unknown = sorted(set(names.dropna()) - set(index))
    if unknown:
        raise DataError(
            f"{where}: labels {unknown} are not in params.yaml 'tasks.{task.name}.classes' ({task.classes}): "
            "add them there (the order gives the class ids)"
        )
    return names.map(lambda n: MISSING if pd.isna(n) else index[n]).astype("int64")


def with_task_columns(frame: pd.DataFrame, params: Params, where: str) -> pd.DataFrame:
    """`frame` with one int column per task: class names mapped to ids, columns it lacks set to MISSING, columns
    no task reads dropped."""
    out = frame.copy()
    for task in params.tasks.values():
        if task.column not in out:
            out[task.column] = MISSING
        elif not pd.api.types.is_integer_dtype(out[task.column]):
            out[task.column] = class_ids(out[task.column], task, where)
        out[task.column] = out[task.column].astype("int64")
    return out[[c for c in out.columns if c in ("text", "lang_hint", "source", "ref") or c in params.columns]]


def labeled_for(frame: pd.DataFrame, column: str = PRIMARY_COLUMN) -> pd.DataFrame:
    """The rows of a split that have a label for the task reading `column` (by default the primary task)."""
    if column not in frame:
        return frame
    return frame[frame[column] != MISSING].reset_index(drop=True)


def labeled_splits(frames: dict[str, pd.DataFrame], column: str = PRIMARY_COLUMN) -> dict[str, pd.DataFrame]:
    """labeled_for on each frame of a {split: frame} mapping."""
    return {name: labeled_for(frame, column) for name, frame in frames.items()}


def label_counts(frame: pd.DataFrame, params: Params) -> dict[str, dict[str, dict[str, int]]]:
    """{task: {lang: {class name: texts}}} for the languages a task has labels in."""
    lang = frame["lang"] if "lang" in frame else frame["lang_hint"]
    out = {}
    for name, task in params.tasks.items():
        has = frame[task.column] != MISSING
        out[name] = {
            str(lg): {task.classes[k] if k < len(task.classes) else str(k): int(n)
                      for k, n in sorted(frame.loc[has & (lang == lg), task.column].value_counts().items())}
            for lg in sorted(lang[has].dropna().unique())
        }  # fmt: skip
    return out
