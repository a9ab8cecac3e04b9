"""Sentiment-lexicon features beside the TF-IDF views of the n-gram model: per text, log(1 + positive score)
and log(1 + negative score), where a lexicon word adds its polarity and a word shortly after a negator counts
the other way.

Why: the n-gram model only knows the words of its training domain, and there it learns their associations, not
their meaning ("refund" and "customer service" come mostly with complaints in product reviews). A lexicon rated
by people carries word meaning that holds across domains, at the price of two features. Whether a language gets
them is decided on val (sora.evaluation.baseline.TunedClassical)."""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
from scipy import sparse
from sklearn.base import BaseEstimator, TransformerMixin

# English: a lexicon word with one of these among the 3 words before it flips (VADER's rule and damping).
NEGATORS_EN = frozenset({"not", "no", "never", "cannot", "nothing", "without", "nor", "neither", "hardly"})
NEGATED_EN = -0.74
# Chinese: one of these characters in the 2 characters before a lexicon word flips it.
NEGATORS_ZH = ("不", "没", "无", "别", "未")
_WORD = re.compile(r"[a-z']+")


class LexiconFeatures(TransformerMixin, BaseEstimator):
    """A scikit-learn transformer (it learns nothing: fit returns self) that a FeatureUnion can hold beside the
    TF-IDF views. `terms` and `polarity` are the lexicon; `scale` multiplies both features, which is how
    strongly a regularised linear model can use them at a given C."""

    def __init__(self, lang: str = "en", terms: Sequence[str] = (), polarity: Sequence[float] = (), scale: float = 1.0):
        self.lang, self.terms, self.polarity, self.scale = lang, terms, polarity, scale

    def fit(self, texts=None, y=None) -> LexiconFeatures:
        return self

    def set_params(self, **params) -> LexiconFeatures:
        self._cached = None
        return super().set_params(**params)

    @property
    def _lookup(self) -> tuple[dict[str, float], int]:
        if getattr(self, "_cached", None) is None:
            if self.lang not in ("zh", "en"):
                raise ValueError(f"no lexicon scoring for language {self.lang!r} (zh or en)")
            table = dict(zip(self.terms, np.asarray(self.polarity, dtype=np.float64).tolist(), strict=True))
            self._cached = (table, max(map(len, table), default=1))
        return self._cached

    def scores(self, text: str) -> tuple[float, float]:
        """(positive, negative) sums of the polarities found in one text, negation applied."""
        found = self._found_en(text) if self.lang == "en" else self._found_zh(text)
        pos = sum(v for v in found if v > 0)
        return pos, pos - sum(found)

    def _found_en(self, text: str) -> list[float]:
        table, _ = self._lookup
        words = _WORD.findall(text.lower())
        found = []
        for i, word in enumerate(words):
            value = table.get(word)
            if value is not None:
                negated = any(w in NEGATORS_EN or w.endswith("n't") for w in words[max(0, i - 3) : i])
                found.append(NEGATED_EN * value if negated else value)
        return found

    def _found_zh(self, text: str) -> list[float]:
        (table, longest), found, i = self._lookup, [], 0
        while i < len(text):  # greedy longest match, left to right
            for size in range(min(longest, len(text) - i), 0, -1):
                value = table.get(text[i : i + size])
                if value is not None:
                    negated = any(n in text[max(0, i - 2) : i] for n in NEGATORS_ZH)
                    found.append(-value if negated else value)
                    i += size
                    break
            else:
                i += 1
        return found

    def transform(self, texts: Sequence[str]) -> sparse.csr_matrix:
        rows = np.array([self.scores(t) for t in texts], dtype=np.float64).reshape(-1, 2)
        return sparse.csr_matrix(np.log1p(rows) * self.scale)
