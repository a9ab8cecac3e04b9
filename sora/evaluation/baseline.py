"""The classical models every Sora model must beat, per language:
- the ten-minute baseline: TF-IDF + LogisticRegression (zh: character 1-3 grams; en: word 1-2 grams);
- the tuned classical model: the union of two TF-IDF views (zh: char 1-3 + char_wb 2-4; en: word 1-2 +
  char_wb 2-5), C picked on val, fitted on train only. It is also a teacher for distillation."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.pipeline import make_pipeline, make_union

VECTORIZERS = {
    "zh": lambda: TfidfVectorizer(analyzer="char", ngram_range=(1, 3)),
    "en": lambda: TfidfVectorizer(analyzer="word", ngram_range=(1, 2)),
}


TUNED_VIEWS = {
    "zh": lambda: make_union(
        TfidfVectorizer(analyzer="char", ngram_range=(1, 3)), TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4))
    ),
    "en": lambda: make_union(
        TfidfVectorizer(analyzer="word", ngram_range=(1, 2)), TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5))
    ),
}


class TunedClassical:
    """The two-view TF-IDF union + LogisticRegression per language, C picked on val accuracy."""

    def __init__(self, Cs: list[float], max_iter: int):
        self.Cs, self.max_iter = Cs, max_iter
        self.models: dict[str, object] = {}
        self.chosen_C: dict[str, float] = {}

    def fit(self, train: pd.DataFrame, val: pd.DataFrame) -> TunedClassical:
        from sora.progress import progress

        langs = sorted(train["lang"].unique())
        with progress("tuned classical: fits (C on val)", len(langs) * len(self.Cs)) as bar:
            for lang in langs:
                tr, va = train[train["lang"] == lang], val[val["lang"] == lang]
                if tr["label"].nunique() < 2:
                    bar.advance(len(self.Cs))
                    continue
                views = TUNED_VIEWS[lang]().fit(tr["text"])
                x_tr = views.transform(tr["text"])
                best = None
                for C in self.Cs:
                    lr = LogisticRegression(C=C, max_iter=self.max_iter).fit(x_tr, tr["label"])
                    acc = float((lr.predict(views.transform(va["text"])) == va["label"]).mean()) if len(va) else 0.0
                    if best is None or acc > best[0]:
                        best = (acc, C, lr)
                    bar.advance(1)
                self.models[lang] = make_pipeline(views, best[2])
                self.chosen_C[lang] = best[1]
        return self

    def predict_proba(self, frame: pd.DataFrame, num_classes: int) -> np.ndarray:
        """(n, num_classes); a row whose language has no model gets the uniform distribution."""
        out = np.full((len(frame), num_classes), 1.0 / num_classes)
        for lang, model in self.models.items():
            rows = np.flatnonzero((frame["lang"] == lang).to_numpy())
            if len(rows):
                probs = model.predict_proba(frame["text"].iloc[rows])
                out[np.ix_(rows, model.classes_.astype(int))] = probs
        return out

    def ngram_model(self, num_classes: int):
        """The fitted models as an NgramModel (plain arrays, no pickle: what a model bundle carries)."""
        from sora.models.ngram import NgramModel

        return NgramModel.from_pipelines(self.models, num_classes)

    def out_of_fold_logits(self, frame: pd.DataFrame, num_classes: int, folds: int = 5, seed: int = 0) -> np.ndarray:
        """(n, num_classes) log-probabilities for every row of `frame` (the train split) from a model of its
        language fitted, with the C chosen on val, on the other folds: what this model says about texts it has
        not seen. A network trained on its residual needs those; on its own training texts it is nearly always
        right and confident, so the residual would be empty."""
        from sklearn.model_selection import StratifiedKFold

        from sora.progress import progress

        out = np.zeros((len(frame), num_classes))
        with progress("tuned classical: out-of-fold logits", len(self.models) * folds) as bar:
            for lang in self.models:
                rows = np.flatnonzero((frame["lang"] == lang).to_numpy())
                texts, labels = frame["text"].iloc[rows], frame["label"].iloc[rows].to_numpy()
                splitter = StratifiedKFold(folds, shuffle=True, random_state=seed)
                for fit_on, held_out in splitter.split(texts, labels):
                    lr = LogisticRegression(C=self.chosen_C[lang], max_iter=self.max_iter)
                    model = make_pipeline(TUNED_VIEWS[lang](), lr).fit(texts.iloc[fit_on], labels[fit_on])
                    probs = model.predict_proba(texts.iloc[held_out])
                    out[np.ix_(rows[held_out], model.classes_.astype(int))] = np.log(np.clip(probs, 1e-7, 1.0))
                    bar.advance(1)
        return out

    def scores(self, frame: pd.DataFrame) -> dict[str, dict[str, float]]:
        """{lang: {acc, f1, n}} on a labeled frame."""
        metrics = {}
        for lang, model in self.models.items():
            part = frame[frame["lang"] == lang]
            if part.empty:
                continue
            pred = model.predict(part["text"])
            metrics[lang] = {
                "acc": round(float(accuracy_score(part["label"], pred)), 5),
                "f1": round(float(f1_score(part["label"], pred, average="macro")), 5),
                "n": int(len(part)),
            }
        return metrics


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
