"""CheckList-style behavioural cases: the committed file, its loader, the pass-rate report and the figure."""

import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sora.errors import DataError
from sora.evaluation.behaviour import (
    DOMAINS,
    INV_CAPABILITIES,
    LANGS,
    MFT_CAPABILITIES,
    behaviour_figure,
    behaviour_report,
    load_cases,
)

REPO = Path(__file__).resolve().parents[1]
CASES = REPO / "data/behaviour/cases.jsonl"


def keyword_model(texts: list[str]) -> np.ndarray:
    """Positive iff the text contains 好 or "good": passes the easy cases and fails negation on purpose."""
    return np.array([[0.1, 0.9] if "好" in t or "good" in t.lower() else [0.8, 0.2] for t in texts])


def write_cases(path: Path, records: list) -> Path:
    lines = [r if isinstance(r, str) else json.dumps(r, ensure_ascii=False) for r in records]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def mft(case_id, lang, capability, text, label, domain="products"):
    return {"id": case_id, "lang": lang, "capability": capability, "domain": domain, "text": text, "label": label}


def inv(case_id, lang, capability, text, variant):
    return {"id": case_id, "lang": lang, "capability": capability, "text": text, "variant": variant}


# ---------------------------------------------------------------- the committed cases


@pytest.fixture(scope="module")
def cases():
    return load_cases(CASES)


def test_committed_cases_are_tracked_by_git_not_ignored():
    ignored = subprocess.run(["git", "check-ignore", "-q", str(CASES)], cwd=REPO)
    assert ignored.returncode == 1, f"{CASES} is git-ignored; the cases must be committed"


def test_committed_cases_cover_every_capability_language_and_domain(cases):
    counts = cases.groupby(["lang", "capability"]).size()
    minimum = {"clear": 60, "negation": 20, "intensifier": 20, "typo": 15, "name": 15, "punctuation": 15}
    for lang in LANGS:
        for capability, least in minimum.items():
            assert counts.get((lang, capability), 0) >= least, (lang, capability)
        for capability in MFT_CAPABILITIES:
            rows = cases[(cases.lang == lang) & (cases.capability == capability)]
            assert set(rows.label) == {0, 1}, (lang, capability)
            assert set(rows.domain) == set(DOMAINS), (lang, capability)
        clear = cases[(cases.lang == lang) & (cases.capability == "clear")]
        assert (clear.label == 1).sum() == (clear.label == 0).sum(), f"{lang} clear cases are not label-balanced"
        assert clear.groupby("domain").size().min() >= 10, f"{lang} clear cases are thin in some domain"
    assert set(cases.capability) == set(MFT_CAPABILITIES + INV_CAPABILITIES)
    book = cases[cases.text == "这本书写得很好，推荐！"]
    assert ((book.capability == "clear") & (book.label == 1)).any()


def test_committed_cases_run_through_the_report(cases):
    metrics, table = behaviour_report(cases, keyword_model)
    assert len(table) == len(cases) and table.id.is_unique
    for lang in LANGS:
        assert set(metrics[lang]) == set(MFT_CAPABILITIES + INV_CAPABILITIES) | {"mft_all", "inv_all"}
        assert metrics[lang]["mft_all"]["n"] == sum(metrics[lang][c]["n"] for c in MFT_CAPABILITIES)


# ---------------------------------------------------------------- the loader


@pytest.mark.parametrize(
    "bad_line, problem",
    [
        ('{"id": "x", "lang": "en"', "not valid JSON"),
        ('["a list"]', "expected a JSON object"),
        (mft("x", "en", "sarcasm", "Great.", 1), "capability 'sarcasm' is not one of"),
        (mft("x", "en", "clear", "Great.", 2), "label must be 0 or 1, got 2"),
        (mft("x", "en", "clear", "Great.", True), "label must be 0 or 1, got True"),
        (mft("x", "en", "clear", "Great.", 1, domain="cars"), "domain 'cars' is not one of"),
        (mft("x", "fr", "clear", "Great.", 1), "lang 'fr' is not one of"),
        (mft("x", "zh", "clear", "Great film.", 1), "text 'Great film.' is detected as en, not zh"),
        ({"id": "x", "lang": "en", "capability": "typo", "text": "Good."}, "typo case lacks field.* variant"),
        ({**mft("x", "en", "clear", "Great.", 1), "lable": 1}, "unexpected field.* lable in a clear case"),
        (inv("x", "en", "typo", "Good.", "Good."), "variant is identical to text"),
        (mft("zh-clear-01", "en", "clear", "Great.", 1), "duplicate id 'zh-clear-01' \\(first on line 1\\)"),
        (mft("y", "zh", "clear", "很好。", 1), "duplicate text '很好。' \\(first on line 1\\)"),
    ],
)
def test_loader_names_file_line_and_problem(tmp_path, bad_line, problem):
    path = write_cases(tmp_path / "cases.jsonl", [mft("zh-clear-01", "zh", "clear", "很好。", 1), bad_line])
    with pytest.raises(DataError, match=f"^{re.escape(str(path))}:2: {problem}"):
        load_cases(path)


def test_loader_reports_bad_bytes_and_empty_or_missing_files(tmp_path):
    path = tmp_path / "cases.jsonl"
    path.write_bytes(json.dumps(mft("a", "en", "clear", "Great.", 1)).encode() + b'\n{"id": "\xff"}\n')
    with pytest.raises(DataError, match=r"cases\.jsonl:2: .*utf-8"):
        load_cases(path)
    path.write_text("\n\n", encoding="utf-8")
    with pytest.raises(DataError, match="no cases"):
        load_cases(path)
    with pytest.raises(DataError, match="no such file"):
        load_cases(tmp_path / "absent.jsonl")


# ---------------------------------------------------------------- the report and the figure


@pytest.fixture
def small_cases(tmp_path):
    return load_cases(
        write_cases(
            tmp_path / "cases.jsonl",
            [
                mft("zh-c1", "zh", "clear", "服务很好", 1),  # pass
                mft("zh-c2", "zh", "clear", "服务很差", 0),  # pass
                mft("zh-n1", "zh", "negation", "服务不好", 0),  # fail: 好 is there
                mft("zh-n2", "zh", "negation", "一点也不差", 1),  # fail: no 好
                mft("zh-n3", "zh", "negation", "没有不好的地方", 1),  # pass, for the wrong reason
                inv("zh-t1", "zh", "typo", "很好", "很女子"),  # fail: the typo removes the cue
                inv("zh-p1", "zh", "punctuation", "很好", "很好！"),  # pass
                mft("en-c1", "en", "clear", "Good food.", 1),  # pass
                mft("en-i1", "en", "intensifier", "Extremely good.", 1),  # pass
                mft("en-i2", "en", "intensifier", "Extremely bad.", 0),  # pass
                mft("en-i3", "en", "intensifier", "Really, really awful.", 1),  # fail (label deliberately wrong)
                inv("en-m1", "en", "name", "John was good.", "Maria was good."),  # pass
                inv("en-t1", "en", "typo", "A good film.", "A goood film."),  # fail
            ],
        )
    )


def test_report_pass_rates_on_a_keyword_model(small_cases):
    metrics, table = behaviour_report(small_cases, keyword_model)
    assert metrics == {
        "zh": {
            "clear": {"pass_rate": 1.0, "n": 2},
            "negation": {"pass_rate": 0.3333, "n": 3},
            "typo": {"pass_rate": 0.0, "n": 1},
            "punctuation": {"pass_rate": 1.0, "n": 1},
            "mft_all": {"pass_rate": 0.6, "n": 5},
            "inv_all": {"pass_rate": 0.5, "n": 2},
        },
        "en": {
            "clear": {"pass_rate": 1.0, "n": 1},
            "intensifier": {"pass_rate": 0.6667, "n": 3},
            "name": {"pass_rate": 1.0, "n": 1},
            "typo": {"pass_rate": 0.0, "n": 1},
            "mft_all": {"pass_rate": 0.75, "n": 4},
            "inv_all": {"pass_rate": 0.5, "n": 2},
        },
    }
    failed = set(table.loc[~table.passed, "id"])
    assert failed == {"zh-n1", "zh-n2", "zh-t1", "en-i3", "en-t1"}
    row = table.set_index("id").loc["zh-t1"]
    assert (row.kind, row.pred, row.variant_pred, row.p_positive, row.variant_p_positive) == ("inv", 1, 0, 0.9, 0.2)
    assert pd.isna(table.set_index("id").loc["zh-c1", "variant_pred"])  # MFT cases have no variant


def test_report_rejects_a_predictor_of_the_wrong_shape(small_cases):
    with pytest.raises(ValueError, match="predict_proba returned shape"):
        behaviour_report(small_cases, lambda texts: keyword_model(texts)[:-1])


def test_figure_is_written_whole(tmp_path, small_cases):
    metrics, _ = behaviour_report(small_cases, keyword_model)
    path = behaviour_figure(metrics, tmp_path / "plots" / "behaviour.png")
    assert path == tmp_path / "plots" / "behaviour.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in path.parent.iterdir()] == ["behaviour.png"]  # no temp file left behind
