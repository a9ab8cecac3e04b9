"""Clean, deduplicate, tokenise and split labeled rows. Pure functions over DataFrames."""

from __future__ import annotations

import hashlib
import unicodedata
from dataclasses import dataclass

import numpy as np
import pandas as pd

from sora.config import MISSING_LABEL as MISSING
from sora.data.text import detect_lang, normalise, tokenise_many
from sora.errors import DataError

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
    rows: pd.DataFrame  # text, the label columns, lang, source, ref
    rejects: pd.DataFrame  # REJECT_COLUMNS
    lang_mismatch: int  # rows whose file said one language and the text another
    conflicting_texts: dict[str, int]  # per label column: distinct normalised texts seen with more than one label


def _reject(frame: pd.DataFrame, reason: str) -> pd.DataFrame:
    out = frame.reindex(columns=["raw_text", "source", "ref"]).rename(columns={"raw_text": "text"})
    out["reason"] = reason
    out["detail"] = None
    return out


def clean_labeled(raw: pd.DataFrame, min_chars: int, max_chars: int, columns: list[str] = ("label",)) -> Cleaned:
    """Normalise, detect language, apply length limits, resolve conflicting labels, dedup on normalised text.

    `columns` are the tasks' label columns (MISSING where a row has no label for a task). A text seen with two
    labels for one task loses that task's label (all its copies); copies of a text then merge into one row
    holding every task's label. A row left with no label is dropped as a conflict, a further copy as a
    duplicate. Every dropped row lands in `rejects` with one reason.
    """
    columns = list(columns)
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

    conflicts = {}
    for column in columns:
        given = df[df[column] != MISSING]
        labels_per_text = given.groupby("text")[column].nunique()
        conflict_texts = labels_per_text[labels_per_text > 1].index
        df.loc[df["text"].isin(conflict_texts), column] = MISSING
        conflicts[column] = len(conflict_texts)
    unlabeled = (df[columns] == MISSING).all(axis=1)
    rejects.append(_reject(df[unlabeled], "conflicting_labels"))
    df = df[~unlabeled]
    merged = df.groupby("text", sort=False)[columns].max()  # one label per task is left; MISSING is the lowest
    dup = df.duplicated("text", keep="first")
    rejects.append(_reject(df[dup], "duplicate"))
    df = df[~dup]
    df[columns] = merged.loc[df["text"]].to_numpy()

    hint = df["lang_hint"] if "lang_hint" in df else pd.Series(None, index=df.index)
    mismatch = int((hint.notna() & (hint != df["lang"])).sum())
    rows = df[["text", *columns, "lang", "source", "ref"]].reset_index(drop=True).astype({c: "int64" for c in columns})
    return Cleaned(rows, pd.concat(rejects, ignore_index=True)[REJECT_COLUMNS], mismatch, conflicts)


def group_key(text: str) -> str:
    """What near-duplicates share: the text case-folded, without whitespace, punctuation or symbols
    ("NERVOUS as HELL" and "Nervous as hell!" are one group). A text made only of those is its own key."""
    key = "".join(ch for ch in text.casefold() if not ch.isspace() and unicodedata.category(ch)[0] not in "PS")
    return key or text


def split_of(texts: pd.Series, val_fraction: float, test_fraction: float, seed: int) -> pd.Series:
    """'train' | 'val' | 'test' for each normalised text, from a seeded hash of its group key alone.

    Near-duplicates (see group_key) share a split, so a case or punctuation variant of a test text is never
    trained on. A text's split never depends on which other rows exist: appending rows moves no existing text
    to another split, and the unlabeled pool can leave out every text that is, or would be if it were ever
    labeled, a val or test text, without reading the labeled data (so a new label never reruns pretraining)."""
    salt = f"{seed}:".encode()
    u = texts.map(
        lambda t: int.from_bytes(hashlib.blake2b(salt + group_key(t).encode(), digest_size=8).digest(), "big") / 2**64
    )
    return pd.Series(
        np.where(u < test_fraction, "test", np.where(u < test_fraction + val_fraction, "val", "train")),
        index=texts.index,
    )


def near_duplicates(texts: pd.Series) -> dict[str, int]:
    """Groups of distinct texts that share a group key, and the texts in them."""
    sizes = texts.map(group_key).value_counts()
    return {"groups": int((sizes > 1).sum()), "texts": int(sizes[sizes > 1].sum())}


def hash_split(frame: pd.DataFrame, val_fraction: float, test_fraction: float, seed: int) -> dict[str, pd.DataFrame]:
    """Rows are unique texts already, so no text can land in two splits."""
    which = split_of(frame["text"], val_fraction, test_fraction, seed)
    return {
        name: frame[which == name].sample(frac=1.0, random_state=seed).reset_index(drop=True)
        for name in ("train", "val", "test")
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
    raw: pd.DataFrame,
    min_chars: int,
    max_chars: int,
    val_fraction: float,
    test_fraction: float,
    seed: int,
    limit: int,
) -> tuple[pd.DataFrame, dict[str, int]]:
    """The unlabeled pool: normalised, zh/en only, within the length limits, deduplicated, and only texts whose
    hash split is 'train' (see split_of), capped at `limit` texts (seeded sample). Returns the pool and the
    count of texts dropped for each reason."""
    df = raw.copy()
    df["text"] = df["text"].map(normalise)
    df["lang"] = df["text"].map(detect_lang)
    dropped = {}
    steps = (
        ("language_not_zh_or_en", lambda d: d["lang"].notna()),
        ("length", lambda d: d["text"].str.len().between(min_chars, max_chars)),
        ("duplicate", lambda d: ~d.duplicated("text")),
        ("val_or_test_text", lambda d: split_of(d["text"], val_fraction, test_fraction, seed) == "train"),
    )
    for reason, keep in steps:
        mask = keep(df)
        dropped[reason] = int((~mask).sum())
        df = df[mask]
    dropped["over_limit"] = max(0, len(df) - limit)
    if len(df) > limit:
        df = df.sample(n=limit, random_state=seed)
    return df[["text", "lang", "source"]].reset_index(drop=True), dropped


def check_no_leak(pool_texts: pd.Series, where: str, *evaluation: pd.DataFrame) -> None:
    """Raise DataError if a val/test text, or a near-duplicate of one (see group_key), is in the pool that the
    vocabulary, pretraining or distillation learn from: a model that has seen a test text, even without its
    label, is not held out."""
    seen = set(pool_texts.map(group_key))
    leaked = sorted({t for frame in evaluation for t in frame["text"] if group_key(t) in seen})
    if leaked:
        raise DataError(
            f"{where}: {len(leaked)} val/test texts are in the unlabeled pool (first: {leaked[0][:60]!r}); "
            "rebuild the pool (dvc repro pool) with the same preprocess split params so it drops them"
        )
