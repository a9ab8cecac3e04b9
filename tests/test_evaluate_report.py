"""Paired comparison of two models on the same examples (exact McNemar)."""

import pandas as pd
import pytest

from sora.evaluation.report import paired_comparison


def _outcomes(correct):
    return pd.DataFrame({"attack": "typo", "lang": "en", "example": range(len(correct)), "correct": correct})


def test_paired_comparison_counts_discordant_examples_and_tests_them():
    a = _outcomes([True] * 10 + [False] * 10 + [True] * 80)
    b = _outcomes([False] * 10 + [True] * 10 + [True] * 80)
    row = paired_comparison(a, b, "finetuned", "hardened").iloc[0]
    assert row.n == 100 and row.finetuned_acc == row.hardened_acc == 0.9 and row.difference == 0
    assert row.only_finetuned_right == 10 and row.only_hardened_right == 10
    assert row.p_value == pytest.approx(1.0)
    b_better = _outcomes([True] * 10 + [True] * 10 + [True] * 80)
    row = paired_comparison(a, b_better, "finetuned", "hardened").iloc[0]
    assert row.only_hardened_right == 10 and row.only_finetuned_right == 0
    assert row.p_value == pytest.approx(2 * 0.5**10)  # exact two-sided binomial on 10 discordant examples
    assert paired_comparison(a, a, "x", "y").iloc[0].p_value == 1.0  # no discordant examples


def test_paired_comparison_needs_the_same_examples():
    with pytest.raises(Exception, match="one-to-one|unique"):
        paired_comparison(_outcomes([True, True]), pd.concat([_outcomes([True, True])] * 2), "a", "b")


def test_figures_name_the_classes_and_the_attacks(tmp_path, monkeypatch):
    import numpy as np
    import pandas as pd

    from sora.evaluation import report

    saved = {}
    monkeypatch.setattr(report, "_save", lambda fig, path: saved.setdefault(path.name, fig) and path)
    labels = np.array([0, 1, 1, 0])
    probs = np.array([[0.8, 0.2], [0.3, 0.7], [0.6, 0.4], [0.9, 0.1]])
    results = {"distilled": {"probs": probs, "labels": labels, "curves": {}}}
    robustness = pd.DataFrame(
        {"lang": ["zh", "en"], "attack": ["zh_width_flip", "en_typo"], "model": "distilled",
         "accuracy_under_attack": [0.8, 0.7]}
    )  # fmt: skip
    report.figures(results, robustness, tmp_path, ["negative", "positive"])
    ax = saved["confusion.png"].axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["negative", "positive"]  # no 0.5 ticks in between
    assert [t.get_text() for t in ax.get_yticklabels()] == ["negative", "positive"]
    bars = saved["robustness.png"].axes[0]
    assert sorted(t.get_text() for t in bars.get_yticklabels()) == ["en: en_typo", "zh: zh_width_flip"]
