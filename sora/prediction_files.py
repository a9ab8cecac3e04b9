"""`sora predict`'s files: the texts to classify in, the predictions out. Problems are one-line DataErrors."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import TYPE_CHECKING

from sora.errors import DataError
from sora.io import atomic_path

if TYPE_CHECKING:
    import pandas as pd

OUTPUT_TYPES = (".csv", ".jsonl", ".parquet")
INPUT_HELP = "Texts file: .txt (one text per line), .csv/.tsv/.jsonl/.parquet with a 'text' column."


def read_texts(path: Path) -> list[str]:
    """Texts to predict, with a one-line error for anything unreadable."""
    import pandas as pd  # here: `sora --help` imports this module for its option help

    if not path.is_file():
        raise DataError(f"{path}: no such file")
    suffix = path.suffix.lower()
    try:
        if suffix == ".txt":
            raw = path.read_bytes()
            if b"\x00" in raw[:8192]:
                raise DataError(f"{path}: looks binary (NUL bytes); expected UTF-8 text")
            return [line for line in raw.decode("utf-8-sig").splitlines() if line.strip()]  # blank lines skipped
        if suffix == ".parquet":
            frame = pd.read_parquet(path)
        elif suffix == ".csv":
            frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        elif suffix == ".tsv":  # no quoting in TSV, as in ingest: a quote is part of the text
            frame = pd.read_csv(path, sep="\t", quoting=csv.QUOTE_NONE, dtype=str, keep_default_na=False)
        elif suffix == ".jsonl":
            frame = pd.DataFrame(_jsonl_records(path))
        else:
            raise DataError(f"{path}: unsupported file type '{suffix}'. {INPUT_HELP}")
    except UnicodeDecodeError as err:
        raise DataError(
            f"{path}: not valid UTF-8 at byte {err.start} (save it as UTF-8; Chinese files are often GBK)"
        ) from None
    except (ValueError, OSError) as err:
        raise DataError(f"{path}: cannot be read as {suffix[1:]}: {str(err).splitlines()[0]}") from None
    if "text" not in frame.columns:
        raise DataError(f"{path}: no 'text' column (found {list(frame.columns)})")
    return frame["text"].fillna("").astype(str).tolist()


def _jsonl_records(path: Path) -> list[dict]:
    """One JSON object per line; a broken line is named by its line number."""
    records = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(f"{path}:{lineno}: invalid JSON ({err.msg})") from None
        if not isinstance(record, dict):
            raise DataError(f"{path}:{lineno}: expected a JSON object with a 'text' key")
        records.append(record)
    return records


def write_predictions(result: pd.DataFrame, path: Path) -> None:
    """Atomically, as .parquet, .jsonl or (otherwise) .csv."""
    suffix = path.suffix.lower()
    try:
        with atomic_path(path) as tmp:
            if suffix == ".parquet":
                result.to_parquet(tmp, index=False)
            elif suffix == ".jsonl":
                result.to_json(tmp, orient="records", lines=True, force_ascii=False)
            else:
                result.to_csv(tmp, index=False)
    except OSError as err:
        raise DataError(f"cannot write {path}: {err.strerror or err}") from None
