"""The ten-minute scikit-learn baseline every Sora model must beat: TF-IDF + LogisticRegression per language
(zh: character 1-3 grams; en: word 1-2 grams), as in DATA.md."""

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


def evaluate_baseline(splits: dict[str, pd.DataFrame], C: float, max_iter: int) -> dict[str, float]:
    """Fit per language on train+val (the baseline tunes nothing, so val is training data for it, as in
    DATA.md's 80/20 protocol); accuracy and macro-F1 on test."""
    metrics: dict[str, float] = {}
    fit_on = pd.concat([splits["train"], splits["val"]], ignore_index=True)
    for lang in sorted(fit_on["lang"].unique()):
        train = fit_on[fit_on["lang"] == lang]
        if train["label"].nunique() < 2:
            continue
        model = tfidf_baseline(lang, C, max_iter).fit(train["text"], train["label"])
        for split in ("test",):
            frame = splits[split][splits[split]["lang"] == lang]
            if frame.empty:
                continue
            pred = model.predict(frame["text"])
            metrics[f"{lang}_{split}_acc"] = round(float(accuracy_score(frame["label"], pred)), 5)
            metrics[f"{lang}_{split}_f1"] = round(float(f1_score(frame["label"], pred, average="macro")), 5)
            metrics[f"{lang}_{split}_n"] = int(len(frame))
    return metrics
