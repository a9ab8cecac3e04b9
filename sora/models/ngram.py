"""The n-gram half of the served model: per language, the tuned classical model (TF-IDF views, sentiment-lexicon
features where val chose them, and a linear layer) as plain arrays, so a model bundle carries it without pickle
and scores it with scikit-learn's own analyzers.

Why it is part of the model: on a few tens of thousands of labels a linear model over character and word
n-grams is the strongest single model here, and the Transformer alone stays below it. The served logits are
this model's plus the Transformer's, and the Transformer is trained on the residual (its training texts get
this model's out-of-fold logits as a fixed offset), so it learns what the n-grams miss instead of relearning
them."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.preprocessing import normalize

from sora.models.lexicon import LexiconFeatures

FILES = ("ngram.json", "ngram.npz")


@dataclass
class View:
    """One TF-IDF view: scikit-learn analyzer settings, its vocabulary (terms in column order) and idf."""

    analyzer: str
    ngram_range: tuple[int, int]
    terms: list[str]
    idf: np.ndarray

    def __post_init__(self):
        self._counter = CountVectorizer(
            analyzer=self.analyzer,
            ngram_range=tuple(self.ngram_range),
            vocabulary={t: i for i, t in enumerate(self.terms)},
        )

    def transform(self, texts: Sequence[str]) -> sparse.csr_matrix:
        """L2-normalised tf-idf rows, as TfidfVectorizer(defaults) computes them."""
        counts = self._counter.transform(texts).astype(np.float64)
        return normalize(counts @ sparse.diags(self.idf), norm="l2", copy=False)


@dataclass
class LangModel:
    views: list[View | LexiconFeatures]
    coef: np.ndarray  # (features, classes): logits = features @ coef + bias
    bias: np.ndarray  # (classes,)

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        x = sparse.hstack([v.transform(texts) for v in self.views]).tocsr()
        return np.asarray(x @ self.coef) + self.bias


class NgramModel:
    """Logits (n, classes) per text from the model of its language; a language without one gets zeros."""

    def __init__(self, langs: dict[str, LangModel], num_classes: int):
        self.langs, self.num_classes = langs, num_classes

    def logits(self, texts: Sequence[str], langs: Sequence[str | None]) -> np.ndarray:
        out = np.zeros((len(texts), self.num_classes), dtype=np.float32)
        langs = np.asarray(list(langs), dtype=object)
        for lang, model in self.langs.items():
            rows = np.flatnonzero(langs == lang)
            if len(rows):
                out[rows] = model.logits([texts[i] for i in rows])
        return out

    @classmethod
    def from_pipelines(cls, pipelines: dict, num_classes: int) -> NgramModel:
        """From fitted scikit-learn pipelines (a FeatureUnion of TfidfVectorizers, then a LogisticRegression)."""
        langs = {}
        for lang, pipe in pipelines.items():
            union, lr = pipe.steps[0][1], pipe.steps[-1][1]
            views = []
            for _, vec in union.transformer_list:
                if isinstance(vec, LexiconFeatures):
                    views.append(vec)
                    continue
                terms = [""] * len(vec.vocabulary_)
                for term, col in vec.vocabulary_.items():
                    terms[col] = term
                views.append(View(vec.analyzer, tuple(vec.ngram_range), terms, np.asarray(vec.idf_)))
            langs[lang] = LangModel(views, *linear_logits(lr, num_classes))
        return cls(langs, num_classes)

    def save(self, directory: str | Path) -> None:
        from sora.io import atomic_path

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        meta = {"num_classes": self.num_classes, "langs": {}}
        arrays = {}
        for lang, model in self.langs.items():
            meta["langs"][lang] = []
            for k, v in enumerate(model.views):
                if isinstance(v, LexiconFeatures):
                    meta["langs"][lang].append({"lexicon": v.lang, "scale": v.scale, "terms": list(v.terms)})
                    arrays[f"{lang}.polarity{k}"] = np.asarray(v.polarity, dtype=np.float64)
                else:
                    meta["langs"][lang].append(
                        {"analyzer": v.analyzer, "ngram_range": list(v.ngram_range), "terms": v.terms}
                    )
                    arrays[f"{lang}.idf{k}"] = v.idf
            arrays[f"{lang}.coef"], arrays[f"{lang}.bias"] = model.coef, model.bias
        with atomic_path(directory / FILES[0]) as tmp:
            tmp.write_text(json.dumps(meta, ensure_ascii=False))
        with atomic_path(directory / FILES[1]) as tmp, open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)

    @classmethod
    def load(cls, directory: str | Path) -> NgramModel:
        directory = Path(directory)
        meta = json.loads((directory / FILES[0]).read_text())
        with np.load(directory / FILES[1], allow_pickle=False) as arrays:
            langs = {
                lang: LangModel(
                    [
                        LexiconFeatures(v["lexicon"], v["terms"], arrays[f"{lang}.polarity{k}"], v["scale"])
                        if "lexicon" in v
                        else View(v["analyzer"], tuple(v["ngram_range"]), v["terms"], arrays[f"{lang}.idf{k}"])
                        for k, v in enumerate(views)
                    ],
                    arrays[f"{lang}.coef"],
                    arrays[f"{lang}.bias"],
                )
                for lang, views in meta["langs"].items()
            }
        return cls(langs, meta["num_classes"])


def linear_logits(lr, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(coef (features, classes), bias) whose softmax equals the LogisticRegression's predict_proba. Binary:
    the logits (-z/2, z/2) of its decision z, since softmax of those is sigmoid(z)."""
    classes = lr.classes_.astype(int)
    coef = np.zeros((lr.coef_.shape[1], num_classes))
    bias = np.zeros(num_classes)
    if lr.coef_.shape[0] == 1:
        coef[:, classes[0]], coef[:, classes[1]] = -lr.coef_[0] / 2, lr.coef_[0] / 2
        bias[classes[0]], bias[classes[1]] = -lr.intercept_[0] / 2, lr.intercept_[0] / 2
    else:
        coef[:, classes] = lr.coef_.T
        bias[classes] = lr.intercept_
    return coef, bias
