"""User files: labeled .csv/.tsv/.jsonl/.parquet and unlabeled plain text.

Labeled files are read row by row so every problem can be reported as `file:row: problem`; rows with problems
are returned as rejects (never dropped silently), and a file that is wholly unusable raises DataError.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from sora.config import PRIMARY_COLUMN, TaskParams
from sora.data.tasks import MISSING
from sora.errors import DataError
from sora.io import sha256_file

LABELED_SUFFIXES = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".parquet": "parquet"}
LANGS = ("zh", "en")


@dataclass
class Problem:
    file: str
    row: int | None  # 1-based line (CSV/TSV/JSONL, header = line 1) or record number (Parquet)
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.row}: {self.message}" if self.row is not None else f"{self.file}: {self.message}"


@dataclass
class LabeledRead:
    rows: pd.DataFrame  # text, lang_hint, source, ref, and each task's column (MISSING where a row has none)
    problems: list[Problem] = field(default_factory=list)  # per-row problems (rows excluded)
    warnings: list[Problem] = field(default_factory=list)  # file-level issues that do not stop ingest


def _decode(path: Path, raw: bytes) -> str:
    if not raw.strip():
        raise DataError(f"{path}: file is empty")
    if b"\x00" in raw[:8192]:
        raise DataError(f"{path}: looks binary (NUL bytes); expected UTF-8 text")
    try:
        return raw.decode("utf-8-sig")  # strips a BOM
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        hint = ""
        try:
            raw.decode("gb18030")
            hint = " (it decodes as GBK/GB18030: re-save it as UTF-8)"
        except UnicodeDecodeError:
            pass
        raise DataError(f"{path}:{line}: not valid UTF-8 at byte {err.start}{hint}") from None


def _parse_label(value) -> tuple[int | None, str | None]:
    """An integer class id >= 0, given as int or digit string; anything else is a problem."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None, "label is missing"
    if isinstance(value, bool):
        return None, f"label {value!r} is a boolean; use 0/1"
    if isinstance(value, int):
        return (value, None) if value >= 0 else (None, f"label {value} is negative")
    if isinstance(value, float):
        return None, f"label {value!r} is a float; expected an integer class id"
    s = str(value).strip()
    if not s or s.lower() in {"nan", "null", "none", "na"}:
        return None, "label is missing"
    if re.fullmatch(r"\d+", s):
        return int(s), None
    if re.fullmatch(r"-?\d*\.\d*(e-?\d+)?", s, re.IGNORECASE):
        return None, f"label {s!r} is a float; expected an integer class id"
    return None, f"label {s!r} is not an integer class id"


def _records_from_file(path: Path) -> tuple[list[str], list[tuple[int, dict]]]:
    kind = LABELED_SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise DataError(f"{path}: unsupported file type '{path.suffix}'; use .csv, .tsv, .jsonl or .parquet")
    if kind == "parquet":
        try:
            frame = pd.read_parquet(path)
        except Exception as err:  # pyarrow raises several types for corrupt files
            raise DataError(f"{path}: not a readable Parquet file ({type(err).__name__}: {err})") from None
        for name in frame.columns:  # a column of class ids with empty cells is stored as floats: 1.0 -> 1
            column = frame[name]
            if pd.api.types.is_float_dtype(column) and (column.dropna() % 1 == 0).all():
                frame[name] = column.astype("Int64")
        records = frame.to_dict("records")
        return list(frame.columns), [(i + 1, r) for i, r in enumerate(records)]
    text = _decode(path, path.read_bytes())
    if kind == "jsonl":
        columns: list[str] = []
        records = []
        for lineno, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as err:
                records.append((lineno, {"__error__": f"invalid JSON ({err.msg})"}))
                continue
            if not isinstance(obj, dict):
                records.append((lineno, {"__error__": "line is not a JSON object"}))
                continue
            columns.extend(k for k in obj if k not in columns)
            records.append((lineno, obj))
        if not records:
            raise DataError(f"{path}: no JSON records")
        return columns, records
    csv.field_size_limit(sys.maxsize)
    # TSV has no quoting: a quote is part of the text (CSV rules would let an unclosed one swallow later rows)
    dialect = {"delimiter": "\t", "quoting": csv.QUOTE_NONE} if kind == "tsv" else {"delimiter": ","}
    reader = csv.reader(io.StringIO(text, newline=""), **dialect)
    try:
        header = next(reader)
    except StopIteration:
        raise DataError(f"{path}: file is empty") from None
    header = [h.strip() for h in header]
    records = []
    try:
        for row in reader:
            lineno = reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                records.append((lineno, {"__error__": f"has {len(row)} fields, header has {len(header)}"}))
                continue
            records.append((lineno, dict(zip(header, row))))
    except csv.Error as err:
        raise DataError(f"{path}:{reader.line_num}: CSV parse error: {err}") from None
    return header, records


def _suggest(missing: str, columns: list[str]) -> str:
    import difflib

    if len(columns) == 1 and any(sep in columns[0] for sep in ";|\t,"):
        return " (the header parsed as one column: .csv must be comma-separated, .tsv tab-separated)"
    by_lower = {c.lower(): c for c in columns}
    close = difflib.get_close_matches(missing, list(by_lower), n=1, cutoff=0.6)
    return f" (found '{by_lower[close[0]]}': misspelled? names are case-sensitive)" if close else ""


def read_labeled_file(path: str | Path, tasks: dict[str, TaskParams], max_chars: int | None = None) -> LabeledRead:
    """Read a user file with a text column, the label column of one or more tasks (`label` for the primary
    task), and optionally lang. A row may lack some tasks' labels; a row with none, or with a problem, is
    reported, not returned."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file")
    if path.is_dir():
        raise DataError(f"{path}: is a directory, expected a file")
    columns, records = _records_from_file(path)
    task_columns = {t.column: t for t in tasks.values()}
    present = [c for c in task_columns if c in columns]
    missing = [c for c in ("text",) if c not in columns] + ([] if present else [PRIMARY_COLUMN])
    if missing and records and all("__error__" in rec for _, rec in records):
        row_no, rec = records[0]  # e.g. a .jsonl whose every line is broken: the first line says why
        raise DataError(f"{path}:{row_no}: {rec['__error__']} (and every other record: none is usable)")
    if missing:
        detail = "; ".join(f"missing column '{m}'{_suggest(m, columns)}" for m in missing)
        others = [c for c in task_columns if c != PRIMARY_COLUMN]
        if not present and others:
            detail += f" (or another task's label column: {', '.join(others)})"
        raise DataError(f"{path}: {detail}; found columns {columns}")
    if not records:
        raise DataError(f"{path}: header only, no data rows")
    good, problems = [], []
    for row_no, rec in records:
        if "__error__" in rec:
            problems.append(Problem(str(path), row_no, rec["__error__"]))
            continue
        text = rec.get("text")
        if text is None or (isinstance(text, float) and math.isnan(text)) or not str(text).strip():
            problems.append(Problem(str(path), row_no, "text is empty"))
            continue
        text = str(text)
        if max_chars is not None and len(text) > max_chars * 20:
            # far beyond any length limit: certainly a broken row (e.g. a missing quote swallowing the file)
            problems.append(Problem(str(path), row_no, f"text has {len(text):,} characters (limit {max_chars:,})"))
            continue
        labels, errors = {}, []
        for column in present:
            label, err = _parse_label(rec.get(column))
            task = task_columns[column]
            if err == "label is missing" and len(present) > 1:
                label, err = MISSING, None  # this row trains the other tasks' heads only
            elif err is None and label >= len(task.classes):
                err = (
                    f"label {label} is not a class of task {task.name} (0..{len(task.classes) - 1}: "
                    f"{', '.join(task.classes)}); name it in params.yaml tasks.{task.name}.classes"
                )
            if err:
                errors.append(err if column == PRIMARY_COLUMN else err.replace("label", column, 1))
            labels[column] = label
        if not errors and all(v == MISSING for v in labels.values()):
            errors.append(f"no label for any task (columns {', '.join(present)} are all empty)")
        if errors:
            problems.append(Problem(str(path), row_no, "; ".join(errors)))
            continue
        hint = rec.get("lang")
        hint = None if hint is None or (isinstance(hint, float) and math.isnan(hint)) else str(hint).strip().lower()
        if hint and hint not in LANGS:
            problems.append(Problem(str(path), row_no, f"lang {hint!r} is not one of {list(LANGS)}"))
            continue
        good.append({"text": text, **labels, "lang_hint": hint or None, "ref": f"{path.name}:{row_no}"})
    frame = pd.DataFrame(good, columns=["text", *present, "lang_hint", "ref"])
    frame["source"] = f"file:{path.name}"
    warnings = []
    for column in present:
        has = frame[column][frame[column] != MISSING]
        if has.nunique() == 1:
            warnings.append(Problem(str(path), None, f"only one class ({has.iloc[0]}) in column '{column}'"))
    if not len(frame):
        raise DataError(f"{path}: no usable rows ({len(problems)} rows with problems; first: {problems[0].message})")
    return LabeledRead(frame, problems, warnings)


def read_unlabeled_files(globs: list[str]) -> tuple[pd.DataFrame, list[dict]]:
    """Plain UTF-8 text files, one text per line. Returns texts and a manifest entry per file."""
    import glob as globlib

    texts, manifest = [], []
    for pattern in globs:
        paths = sorted(globlib.glob(pattern, recursive=True))
        if not paths:
            raise DataError(f"unlabeled_globs: pattern '{pattern}' matches no files")
        for p in map(Path, paths):
            content = _decode(p, p.read_bytes())
            lines = [ln for ln in content.splitlines() if ln.strip()]
            texts.extend({"text": ln, "source": f"file:{p.name}"} for ln in lines)
            manifest.append({"path": str(p), "sha256": sha256_file(p), "rows": len(lines)})
    return pd.DataFrame(texts, columns=["text", "source"]), manifest
