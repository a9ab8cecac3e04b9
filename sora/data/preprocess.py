"""Clean, deduplicate, tokenise and split labeled rows. Pure functions over DataFrames."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from sora.data.text import detect_lang, normalise, tokenise_many

REJECT_COLUMNS = ["text", "source", "ref", "reason", "detail"]
# every reason a row can be dropped for, from ingest (invalid_row, ambiguous_rating, malformed_line) to here
REJECT_REASONS = (
    "invalid_row",
    "ambiguous_rating",
    "malformed_line",
    "empty_after_normalisation",
    "language_not_zh_or_en",
    "too_short",
    "too_long",
    "conflicting_labels",
    "duplicate",
)


@dataclass
class Cleaned:
    rows: pd.DataFrame  # text, label, lang, source, ref
    rejects: pd.DataFrame  # REJECT_COLUMNS
    lang_mismatch: int  # rows whose file said one language and the text another
    conflicting_texts: int  # distinct normalised texts seen with more than one label


def _reject(frame: pd.DataFrame, reason: str) -> pd.DataFrame:
    out = frame.reindex(columns=["raw_text", "source", "ref"]).rename(columns={"raw_text": "text"})
    out["reason"] = reason
    out["detail"] = None
    return out


def clean_labeled(raw: pd.DataFrame, min_chars: int, max_chars: int) -> Cleaned:
    """Normalise, detect language, apply length limits, drop conflicting labels, dedup on normalised text.

    Every dropped row lands in `rejects` with one reason. Order: invalid -> conflicts -> duplicates, so a
    text seen with both labels is counted as a conflict (all its copies), not as a duplicate.
    """
    df = raw.copy()
    df["raw_text"] = df["text"]
    df["text"] = df["raw_text"].map(normalise)
    df["lang"] = df["text"].map(detect_lang)
    rejects = []

    empty = df["text"].str.len() == 0
    rejects.append(_reject(df[empty], "empty_after_normalisation"))
    df = df[~empty]
    other = df["lang"].isna()
    rejects.append(_reject(df[other], "language_not_zh_or_en"))
    df = df[~other]
    short = df["text"].str.len() < min_chars
    rejects.append(_reject(df[short], "too_short"))
    df = df[~short]
    long = df["text"].str.len() > max_chars
    rejects.append(_reject(df[long], "too_long"))
    df = df[~long]

    labels_per_text = df.groupby("text")["label"].nunique()
    conflict_texts = labels_per_text[labels_per_text > 1].index
    conflicting = df["text"].isin(conflict_texts)
    rejects.append(_reject(df[conflicting], "conflicting_labels"))
    df = df[~conflicting]
    dup = df.duplicated("text", keep="first")
    rejects.append(_reject(df[dup], "duplicate"))
    df = df[~dup]

    hint = df["lang_hint"] if "lang_hint" in df else pd.Series(None, index=df.index)
    mismatch = int((hint.notna() & (hint != df["lang"])).sum())
    rows = df[["text", "label", "lang", "source", "ref"]].reset_index(drop=True)
    rows["label"] = rows["label"].astype("int64")
    return Cleaned(rows, pd.concat(rejects, ignore_index=True)[REJECT_COLUMNS], mismatch, len(conflict_texts))


def stratified_split(
    frame: pd.DataFrame, val_fraction: float, test_fraction: float, seed: int
) -> dict[str, pd.DataFrame]:
    """Split per (lang, label) group with one seeded permutation each; rows are unique texts already,
    so no text can land in two splits."""
    rng = np.random.default_rng(seed)
    parts: dict[str, list[pd.DataFrame]] = {"train": [], "val": [], "test": []}
    for _, group in frame.groupby(["lang", "label"], sort=True):
        order = rng.permutation(len(group))
        n_test = int(round(len(group) * test_fraction))
        n_val = int(round(len(group) * val_fraction))
        parts["test"].append(group.iloc[order[:n_test]])
        parts["val"].append(group.iloc[order[n_test : n_test + n_val]])
        parts["train"].append(group.iloc[order[n_test + n_val :]])
    return {
        name: pd.concat(chunks).sample(frac=1.0, random_state=seed).reset_index(drop=True)
        for name, chunks in parts.items()
    }


def add_tokens(frame: pd.DataFrame, progress=None) -> pd.DataFrame:
    """Tokenise each language with its spaCy pipeline; `progress(n)` is called as rows finish."""
    tokens = pd.Series([None] * len(frame), index=frame.index, dtype=object)
    for lang in ("zh", "en"):
        idx = frame.index[frame["lang"] == lang]
        for i, toks in zip(idx, tokenise_many(frame.loc[idx, "text"].tolist(), lang)):
            tokens.at[i] = toks
            if progress:
                progress(1)
    out = frame.copy()
    out["tokens"] = tokens
    return out


def clean_unlabeled(
    raw: pd.DataFrame, min_chars: int, max_chars: int, exclude: set[str], limit: int, seed: int
) -> pd.DataFrame:
    """Unlabeled pretraining text: normalised, zh/en only, within limits, deduplicated, never a text that is
    in the labeled val/test splits (`exclude`), capped at `limit` lines (seeded sample)."""
    df = raw.copy()
    df["text"] = df["text"].map(normalise)
    df["lang"] = df["text"].map(detect_lang)
    keep = df["lang"].notna() & df["text"].str.len().between(min_chars, max_chars) & ~df["text"].isin(exclude)
    df = df[keep].drop_duplicates("text")
    if len(df) > limit:
        df = df.sample(n=limit, random_state=seed)
    return df[["text", "lang", "source"]].reset_index(drop=True)
