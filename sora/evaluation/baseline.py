"""The classical models every Sora model must beat, per language:
- the ten-minute baseline: TF-IDF + LogisticRegression (zh: character 1-3 grams; en: word 1-2 grams);
- the tuned classical model: the union of two TF-IDF views (zh: char 1-3 + char_wb 2-4; en: word 1-2 +
  char_wb 2-5), C picked on val, fitted on train only;
- the n-gram half of Sora's model: the tuned classical model plus sentiment-lexicon features where val says
  they help. It is also a teacher for distillation."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import sparse
from sklearn.base import clone
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.pipeline import FeatureUnion, make_pipeline, make_union

from sora.models.lexicon import LexiconFeatures

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


def _fit_regression(x, y, C: float, max_iter: int) -> LogisticRegression:
    return LogisticRegression(C=C, max_iter=max_iter).fit(x, y)


def run_parallel(calls: list, jobs: int, bar) -> list:
    """joblib calls (`delayed(f)(...)`) run `jobs` at a time in worker processes, results in call order, the
    progress bar advanced as each one ends. Each logistic-regression fit is single-threaded, so this is what
    puts a second core to work."""
    from joblib import Parallel

    results = []
    for result in Parallel(n_jobs=max(1, min(jobs, len(calls))), return_as="generator")(calls):
        results.append(result)
        bar.advance(1)
    return results


def fit_regressions(x, y, Cs: list[float], max_iter: int, jobs: int, bar) -> list[LogisticRegression]:
    """One LogisticRegression per C on the same features, `jobs` at a time."""
    from joblib import delayed

    return run_parallel([delayed(_fit_regression)(x, y, C, max_iter) for C in Cs], jobs, bar)


def with_lexicon(views, lexicon: LexiconFeatures | None):
    """The fitted TF-IDF views, plus the lexicon's two features when there is one."""
    if lexicon is None:
        return views
    return FeatureUnion([*views.transformer_list, ("lexiconfeatures", lexicon)])


def _held_out_probs(
    lang: str, texts: pd.Series, labels: np.ndarray, fit_on, held_out, C: float, max_iter: int, lexicon
):
    """One fold: the whole model (views and regression) fitted without the held-out texts, as on unseen text."""
    model = make_pipeline(with_lexicon(TUNED_VIEWS[lang](), lexicon), LogisticRegression(C=C, max_iter=max_iter))
    model.fit(texts.iloc[fit_on], labels[fit_on])
    return model.predict_proba(texts.iloc[held_out]), model.classes_.astype(int)


class TunedClassical:
    """The two-view TF-IDF union + LogisticRegression per language, C picked on val accuracy: the `reference`
    every Sora model is compared with. The n-gram half of Sora's model (`models`) is the reference plus the
    sentiment-lexicon features of its language at the scale best on val, or the reference itself where no scale
    beats it on val. The regressions (one per C, scale or fold) are independent single-threaded fits, so they
    run `jobs` at a time in worker processes; the results are the same as one after the other."""

    def __init__(
        self,
        Cs: list[float],
        max_iter: int,
        jobs: int = 1,
        lexicons: dict[str, LexiconFeatures] | None = None,
        lexicon_scales: list[float] = (),
    ):
        self.Cs, self.max_iter, self.jobs = Cs, max_iter, jobs
        self.lexicons, self.lexicon_scales = lexicons or {}, list(lexicon_scales)
        self.reference: dict[str, object] = {}
        self.models: dict[str, object] = {}
        self.chosen_C: dict[str, float] = {}
        self.lexicon_scale: dict[str, float] = {}  # 0: the language's n-gram half is the reference
        self.lexicon_val: dict[str, dict[str, float]] = {}  # val accuracy by scale, "0" = the reference

    def fit(self, train: pd.DataFrame, val: pd.DataFrame) -> TunedClassical:
        from sora.progress import progress

        langs = sorted(train["lang"].unique())
        fits_per_lang = {
            lang: len(self.Cs) + (len(self.lexicon_scales) if lang in self.lexicons else 0) for lang in langs
        }
        with progress("tuned classical: fits (C, then lexicon scale, on val)", sum(fits_per_lang.values())) as bar:
            for lang in langs:
                tr, va = train[train["lang"] == lang], val[val["lang"] == lang]
                if tr["label"].nunique() < 2:
                    bar.advance(fits_per_lang[lang])
                    continue
                views = TUNED_VIEWS[lang]()
                x_tr, x_va = views.fit_transform(tr["text"]), views.transform(va["text"])
                y_va = va["label"].to_numpy()
                fits = fit_regressions(x_tr, tr["label"], self.Cs, self.max_iter, self.jobs, bar)
                accs = [float((lr.predict(x_va) == y_va).mean()) if len(va) else 0.0 for lr in fits]
                best = int(np.argmax(accs))  # the first of equals, in the order of Cs
                self.reference[lang] = self.models[lang] = make_pipeline(views, fits[best])
                self.chosen_C[lang], self.lexicon_scale[lang] = self.Cs[best], 0.0
                self.lexicon_val[lang] = {"0": round(accs[best], 5)}
                if lang in self.lexicons and self.lexicon_scales and len(va):
                    self._add_lexicon(lang, views, tr, va, x_tr, x_va, accs[best], bar)
        return self

    def lexicon_at(self, lang: str, scale: float) -> LexiconFeatures:
        """A copy of the language's lexicon features at `scale` (the one given to the constructor is left as is)."""
        return clone(self.lexicons[lang]).set_params(scale=scale)

    def _add_lexicon(self, lang, views, tr, va, x_tr, x_va, reference_acc: float, bar) -> None:
        """Fit the reference's features plus the lexicon's at each scale (the reference's C); keep the best
        scale if it beats the reference on val."""
        from joblib import delayed

        lexicon = self.lexicon_at(lang, 1.0)
        lex_tr, lex_va = lexicon.transform(tr["text"]), lexicon.transform(va["text"])
        design = lambda x, lex, scale: sparse.hstack([x, lex * scale]).tocsr()
        calls = [
            delayed(_fit_regression)(design(x_tr, lex_tr, s), tr["label"], self.chosen_C[lang], self.max_iter)
            for s in self.lexicon_scales
        ]
        fits = run_parallel(calls, self.jobs, bar)
        y_va = va["label"].to_numpy()
        accs = [float((lr.predict(design(x_va, lex_va, s)) == y_va).mean()) for lr, s in zip(fits, self.lexicon_scales)]
        self.lexicon_val[lang] |= {str(s): round(a, 5) for s, a in zip(self.lexicon_scales, accs)}
        best = int(np.argmax(accs))
        if accs[best] > reference_acc:
            scale = self.lexicon_scales[best]
            self.models[lang] = make_pipeline(with_lexicon(views, self.lexicon_at(lang, scale)), fits[best])
            self.lexicon_scale[lang] = float(scale)

    def predict_proba(self, frame: pd.DataFrame, num_classes: int, reference: bool = False) -> np.ndarray:
        """(n, num_classes) from the n-gram half (or the reference); a row whose language has no model gets the
        uniform distribution."""
        out = np.full((len(frame), num_classes), 1.0 / num_classes)
        for lang, model in (self.reference if reference else self.models).items():
            rows = np.flatnonzero((frame["lang"] == lang).to_numpy())
            if len(rows):
                probs = model.predict_proba(frame["text"].iloc[rows])
                out[np.ix_(rows, model.classes_.astype(int))] = probs
        return out

    def ngram_model(self, num_classes: int):
        """The n-gram half as an NgramModel (plain arrays, no pickle: what a model bundle carries)."""
        from sora.models.ngram import NgramModel

        return NgramModel.from_pipelines(self.models, num_classes)

    def out_of_fold_logits(self, frame: pd.DataFrame, num_classes: int, folds: int = 5, seed: int = 0) -> np.ndarray:
        """(n, num_classes) log-probabilities for every row of `frame` (the train split) from a model of its
        language fitted, with the C chosen on val, on the other folds: what this model says about texts it has
        not seen. A network trained on its residual needs those; on its own training texts it is nearly always
        right and confident, so the residual would be empty."""
        from joblib import delayed
        from sklearn.model_selection import StratifiedKFold

        from sora.progress import progress

        out = np.zeros((len(frame), num_classes))
        calls, targets = [], []
        for lang in self.models:
            rows = np.flatnonzero((frame["lang"] == lang).to_numpy())
            texts, labels = frame["text"].iloc[rows], frame["label"].iloc[rows].to_numpy()
            splitter = StratifiedKFold(folds, shuffle=True, random_state=seed)
            for fit_on, held_out in splitter.split(texts, labels):
                lexicon = self.lexicon_at(lang, self.lexicon_scale[lang]) if self.lexicon_scale[lang] else None
                C = self.chosen_C[lang]
                calls.append(delayed(_held_out_probs)(lang, texts, labels, fit_on, held_out, C, self.max_iter, lexicon))
                targets.append(rows[held_out])
        with progress("tuned classical: out-of-fold logits", len(calls)) as bar:
            for rows, (probs, classes) in zip(targets, run_parallel(calls, self.jobs, bar), strict=True):
                out[np.ix_(rows, classes)] = np.log(np.clip(probs, 1e-7, 1.0))
        return out

    def scores(
        self, frame: pd.DataFrame, reference: bool = False, known: dict | None = None
    ) -> dict[str, dict[str, float]]:
        """{lang: {acc, f1, n}} of the n-gram half (or the reference) on a labeled frame. `known`: the reference's
        scores on the same frame, reused for the languages whose n-gram half is the reference."""
        metrics = {}
        for lang, model in (self.reference if reference else self.models).items():
            part = frame[frame["lang"] == lang]
            if known and lang in known and model is self.reference[lang]:
                metrics[lang] = known[lang]
                continue
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


def _baseline_scores(
    lang: str, train: pd.DataFrame, test: pd.DataFrame, C: float, max_iter: int, column: str = "label"
) -> dict:
    pred = tfidf_baseline(lang, C, max_iter).fit(train["text"], train[column]).predict(test["text"])
    return {
        "acc": round(float(accuracy_score(test[column], pred)), 5),
        "f1": round(float(f1_score(test[column], pred, average="macro")), 5),
        "n": int(len(test)),
    }


def evaluate_baseline(
    splits: dict[str, pd.DataFrame], C: float, max_iter: int, jobs: int = 1, column: str = "label"
) -> dict[str, dict[str, float]]:
    """Fit per language on train+val (the baseline tunes nothing, so val is training data for it, as in the
    usual 80/20 protocol); {lang: {acc, f1, n}} on test, for the labels in `column` (the splits hold only rows
    labeled in it). The languages are fitted `jobs` at a time; a language with one class in training is left
    out."""
    from joblib import Parallel, delayed

    fit_on = pd.concat([splits["train"], splits["val"]], ignore_index=True)
    test = splits["test"]
    parts = {
        lang: (fit_on[fit_on["lang"] == lang], test[test["lang"] == lang]) for lang in sorted(fit_on["lang"].unique())
    }
    langs = [lang for lang, (train, frame) in parts.items() if train[column].nunique() >= 2 and not frame.empty]
    calls = [delayed(_baseline_scores)(lang, *parts[lang], C, max_iter, column) for lang in langs]
    return dict(zip(langs, Parallel(n_jobs=max(1, min(jobs, len(calls))))(calls), strict=True))


def baseline_gap(test_scores: dict[str, dict[str, float]], baseline: dict[str, dict[str, float]]) -> dict[str, float]:
    """Test accuracy minus the baseline's, per language both have (same split, same pipeline run)."""
    return {
        lang: round(test_scores[lang]["acc"] - baseline[lang]["acc"], 5)
        for lang in ("zh", "en")
        if lang in test_scores and lang in baseline
    }
