"""Sentiment-lexicon features of the n-gram half: scoring rules, the choice on val, and saving them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from sora.evaluation.baseline import TUNED_VIEWS, TunedClassical, with_lexicon
from sora.models.lexicon import LexiconFeatures
from sora.models.ngram import NgramModel

EN = LexiconFeatures("en", ["good", "great", "bad", "superb", "dreadful"], [1.9, 3.1, -2.5, 3.0, -3.0])
ZH = LexiconFeatures("zh", ["不错", "好", "差", "精彩", "糟糕"], [1.0, 1.0, -1.0, 1.0, -1.0])


def test_english_words_add_their_polarity_and_a_negator_flips_and_damps_them():
    ((pos, neg),) = np.expm1(EN.transform(["Good, GREAT and bad"]).toarray())
    assert (pos, neg) == pytest.approx((1.9 + 3.1, 2.5))
    # "not" within the 3 words before: good counts -0.74 x 1.9 as negative; "bad" is 4 words after "never"
    ((pos, neg),) = np.expm1(EN.transform(["not really that good, never mind the other one bad"]).toarray())
    assert (pos, neg) == pytest.approx((0.0, 0.74 * 1.9 + 2.5))
    ((pos, neg),) = np.expm1(EN.transform(["it wasn't bad"]).toarray())
    assert (pos, neg) == pytest.approx((0.74 * 2.5, 0.0))


def test_chinese_matches_the_longest_word_and_a_negator_before_it_flips_it():
    # "不错" is one positive word (not 不 + 错); "不好" is 好 negated; 很差 is negative
    assert np.expm1(ZH.transform(["这家店不错", "不好", "很差", "无关的话"]).toarray()).tolist() == [
        [1.0, 0.0],
        [0.0, 1.0],
        [0.0, 1.0],
        [0.0, 0.0],
    ]


def test_scale_multiplies_both_features_and_clone_keeps_the_lexicon():
    one = EN.transform(["good but bad"]).toarray()
    doubled = clone(EN).set_params(scale=2.0)
    np.testing.assert_allclose(doubled.transform(["good but bad"]).toarray(), 2 * one)
    np.testing.assert_allclose(EN.transform(["good but bad"]).toarray(), one)  # the original is untouched


def test_an_unknown_language_is_refused():
    with pytest.raises(ValueError, match="'fr'"):
        LexiconFeatures("fr", ["bon"], [1.0]).transform(["bon"])


def _frames():
    """Train says good/bad; val and test use words train never saw, which only the lexicon knows."""
    subjects = ["the room", "the food", "the staff", "the film", "the seller", "the price"]
    train = [
        {"text": f"{s} was {w} {i}", "label": y, "lang": "en"}
        for i, (s, (w, y)) in enumerate((s, wy) for s in subjects for wy in [("good", 1), ("bad", 0)] * 4)
    ]
    unseen = [
        {"text": f"{s} felt {w} today", "label": y, "lang": "en"}
        for s in subjects
        for w, y in [("superb", 1), ("dreadful", 0)]
    ]
    return pd.DataFrame(train), pd.DataFrame(unseen)


def test_the_lexicon_joins_the_ngram_half_only_where_it_wins_on_val():
    train, val = _frames()
    useful = TunedClassical([1.0], 500, lexicons={"en": clone(EN)}, lexicon_scales=[1.0, 4.0]).fit(train, val)
    assert useful.lexicon_scale["en"] > 0
    assert useful.lexicon_val["en"][str(useful.lexicon_scale["en"])] > useful.lexicon_val["en"]["0"]
    assert useful.scores(val)["en"]["acc"] > useful.scores(val, reference=True)["en"]["acc"]
    # A lexicon of words no text has gives all-zero features: no gain on val, so the half is the reference.
    idle = LexiconFeatures("en", ["marvellous", "abysmal"], [3.0, -3.0])
    plain = TunedClassical([1.0], 500, lexicons={"en": idle}, lexicon_scales=[1.0]).fit(train, val)
    assert plain.lexicon_scale["en"] == 0.0 and plain.models["en"] is plain.reference["en"]
    # Where the half is the reference, its scores are the reference's, given or computed; a half with a lexicon
    # is always scored.
    reference = plain.scores(val, reference=True)
    assert plain.scores(val) == reference and plain.scores(val, known={"en": "given"}) == {"en": "given"}
    assert useful.scores(val, known={"en": "given"})["en"] == useful.scores(val)["en"]
    oof = plain.out_of_fold_logits(train, 2, folds=3)
    assert oof.shape == (len(train), 2)


def test_an_ngram_half_with_lexicon_saves_and_scores_as_scikit_learn(tmp_path):
    train, val = _frames()
    views = TUNED_VIEWS["en"]().fit(train["text"])
    pipe = make_pipeline(with_lexicon(views, clone(EN).set_params(scale=2.0)), LogisticRegression(max_iter=500))
    pipe.fit(train["text"], train["label"])
    NgramModel.from_pipelines({"en": pipe}, 2).save(tmp_path)
    loaded = NgramModel.load(tmp_path)
    assert isinstance(loaded.langs["en"].views[-1], LexiconFeatures) and loaded.langs["en"].views[-1].scale == 2.0
    logits = loaded.logits(val["text"].tolist(), val["lang"].tolist())
    probs = torch.softmax(torch.tensor(logits, dtype=torch.float64), -1).numpy()
    np.testing.assert_allclose(probs, pipe.predict_proba(val["text"]), atol=1e-6)
