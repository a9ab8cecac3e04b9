"""The ten-minute scikit-learn baseline every Sora model must beat: TF-IDF + LogisticRegression per language
(zh: character 1-3 grams; en: word 1-2 grams)."""

from __future__ import annotations

import pandas as pd
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.pipeline import make_pipeline

VECTORIZERS = {
    "zh": lambda: TfidfVectorizer(analyzer="char", ngram_range=(1, 3)),
    "en": lambda: TfidfVectorizer(analyzer="word", ngram_range=(1, 2)),
}


def tfidf_baseline(lang: str, C: float, max_iter: int):
    return make_pipeline(VECTORIZERS[lang](), LogisticRegression(C=C, max_iter=max_iter))


def evaluate_baseline(splits: dict[str, pd.DataFrame], C: float, max_iter: int) -> dict[str, dict[str, float]]:
    """Fit per language on train+val (the baseline tunes nothing, so val is training data for it, as in the
    usual 80/20 protocol); {lang: {acc, f1, n}} on test."""
    metrics: dict[str, dict[str, float]] = {}
    fit_on = pd.concat([splits["train"], splits["val"]], ignore_index=True)
    test = splits["test"]
    for lang in sorted(fit_on["lang"].unique()):
        train = fit_on[fit_on["lang"] == lang]
        frame = test[test["lang"] == lang]
        if train["label"].nunique() < 2 or frame.empty:
            continue
        pred = tfidf_baseline(lang, C, max_iter).fit(train["text"], train["label"]).predict(frame["text"])
        metrics[lang] = {
            "acc": round(float(accuracy_score(frame["label"], pred)), 5),
            "f1": round(float(f1_score(frame["label"], pred, average="macro")), 5),
            "n": int(len(frame)),
        }
    return metrics


def baseline_gap(test_scores: dict[str, dict[str, float]], baseline: dict[str, dict[str, float]]) -> dict[str, float]:
    """Test accuracy minus the baseline's, per language both have (same split, same pipeline run)."""
    return {
        lang: round(test_scores[lang]["acc"] - baseline[lang]["acc"], 5)
        for lang in ("zh", "en")
        if lang in test_scores and lang in baseline
    }
