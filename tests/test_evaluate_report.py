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
