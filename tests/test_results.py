"""docs/results.md is generated from the committed metrics: a figure in the docs never drifts from them."""

from pathlib import Path

from sora.results import render

REPO = Path(__file__).resolve().parents[1]


def test_committed_results_page_matches_committed_metrics():
    expected = render(REPO / "metrics")
    assert (REPO / "docs/results.md").read_text(encoding="utf-8") == expected, "run `sora results` and commit"


def test_render_reads_nested_metrics(tmp_path):
    (tmp_path / "baseline.json").write_text('{"test": {"zh": {"acc": 0.8, "f1": 0.79, "n": 10}}}')
    (tmp_path / "finetune.json").write_text('{"test": {"zh": {"acc": 0.85, "f1": 0.84}}}')
    (tmp_path / "prune.json").write_text(
        '{"int8": {"test_acc_zh": 0.86}, "vs_tuned_classical": {"zh": {"champion_acc": 0.86, "classical_acc": 0.84,'
        ' "p_value": 0.0123}}}'
    )
    text = render(tmp_path)
    assert "| TF-IDF + logistic regression (`baseline`) | 0.800 | – |" in text
    assert "| fine-tuned wide-and-deep (`finetune`) | 0.850 | – |" in text
    assert "| student pruned + int8 (`prune`) | 0.860 | – |" in text
    assert "| zh | 0.860 | 0.840 | +0.020 | 0.012 |" in text
    assert "zh +0.060" in text  # registered minus the ten-line baseline


def test_results_show_the_other_tasks_under_attack():
    from sora.results import _task_attacks_section

    attack = {"topic": {"clean": {"zh": {"acc": 0.8, "n": 50}, "en": {"acc": 1.0, "n": 1}},
                        "all_perturbations": {"zh": {"acc": 0.6}, "en": {"acc": 1.0}}}}  # fmt: skip
    text = "\n".join(_task_attacks_section({"hardened": {"task_attack": attack}, "distilled": {}}))
    assert "| topic | en |" not in text  # one text is noise, as in the tasks table
    assert "### Other tasks under attack" in text and "| task | lang | n | hardened |" in text
    assert "| topic | zh | 50 | 0.800 → 0.600 |" in text
    assert _task_attacks_section({"distilled": {"zh": {"acc": 0.9}}}) == []  # no task attacked: no section
