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


class _TopicByKeyword:
    """A stand-in predictor whose topic head says 1 when a text holds 足球 (football), else 0."""

    def __init__(self):
        self.calls = 0

    def predict_task_proba(self, column, texts):
        import numpy as np

        assert column == "topic"
        self.calls += 1
        hit = np.array([float("足球" in t) for t in texts])
        return np.stack([1 - hit, hit], axis=1)


def test_task_attacks_attack_a_capped_sample_of_each_tasks_labeled_texts():
    from sora.config import load_params
    from sora.evaluation.assess import task_attack_metrics, task_attacks

    e = load_params().evaluate.model_copy(update={"task_attack_examples": 30})
    every_row = pd.DataFrame(
        {
            "text": [f"今天的足球比赛{i}很精彩" for i in range(40)] + [f"今天的股市{i}上涨了" for i in range(40)]
            + [f"the match {i}" for i in range(10)],
            "lang": ["zh"] * 80 + ["en"] * 10,
            "topic": [1] * 40 + [0] * 30 + [-1] * 10 + [0] * 10,  # ten zh texts without a topic label
        }
    )  # fmt: skip
    predictor = _TopicByKeyword()
    table = task_attacks(predictor, every_row, e, "zh", {"topic": "topic"})
    assert set(table["task"]) == {"topic"} and set(table["lang"]) == {"zh"}
    assert (table["n"] == 30).all()  # the cap, drawn from the 70 zh texts labeled for the task
    worst = table.set_index("attack").loc["all_perturbations"]
    assert worst["clean_accuracy"] == 1.0 and worst["accuracy_under_attack"] <= 1.0
    metrics = task_attack_metrics(table)
    assert metrics["topic"]["clean"] == {"zh": {"acc": 1.0, "n": 30}}
    assert set(metrics["topic"]["all_perturbations"]["zh"]) == {"acc", "success_rate"}
    assert task_attacks(predictor, every_row, e.model_copy(update={"task_attack_examples": 0}), "zh",
                        {"topic": "topic"}).empty  # fmt: skip
