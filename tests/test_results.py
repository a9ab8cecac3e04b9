"""docs/results.md is generated from the committed metrics: a figure in the docs never drifts from them."""

from pathlib import Path

from sora.results import render

REPO = Path(__file__).resolve().parents[1]


def test_committed_results_page_matches_committed_metrics():
    expected = render(REPO / "metrics")
    assert (REPO / "docs/results.md").read_text(encoding="utf-8") == expected, "run `sora results` and commit"


def test_render_reads_nested_metrics(tmp_path):
    (tmp_path / "baseline.json").write_text('{"test": {"zh": {"acc": 0.8, "f1": 0.79, "n": 10}}}')
    (tmp_path / "finetune.json").write_text(
        '{"test": {"zh": {"acc": 0.85, "f1": 0.84}}, "test_minus_baseline": {"zh": 0.05}}'
    )
    text = render(tmp_path)
    assert "| TF-IDF + logistic regression (`baseline`) | 0.800 | – |" in text
    assert "| fine-tuned Transformer (`finetune`) | 0.850 | – |" in text
    assert "zh +0.050" in text
