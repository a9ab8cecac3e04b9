"""The n-gram half of the served model: the tuned classical model as plain arrays, and its out-of-fold logits
(the offset a network is trained on the residual of)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import labeled_rows

from sora.evaluation.baseline import TunedClassical
from sora.models.ngram import FILES, NgramModel


@pytest.fixture(scope="module")
def frames():
    rows = pd.DataFrame(labeled_rows(60, seed=0))
    rows["lang"] = ["zh" if i % 2 == 0 else "en" for i in range(len(rows))]
    val = pd.DataFrame(labeled_rows(20, seed=1))
    val["lang"] = ["zh" if i % 2 == 0 else "en" for i in range(len(val))]
    return rows, val


@pytest.fixture(scope="module")
def classical(frames):
    train, val = frames
    return TunedClassical([1.0, 4.0], 500).fit(train, val)


def test_saved_ngram_model_scores_as_scikit_learn(classical, frames, tmp_path):
    _, val = frames
    classical.ngram_model(2).save(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(FILES)
    loaded = NgramModel.load(tmp_path)
    logits = loaded.logits(val["text"].tolist(), val["lang"].tolist())
    probs = torch.softmax(torch.tensor(logits, dtype=torch.float64), -1).numpy()
    np.testing.assert_allclose(probs, classical.predict_proba(val, 2), atol=1e-5)


def test_a_language_without_a_model_gets_zero_logits(classical):
    logits = classical.ngram_model(2).logits(["bonjour", "這本書很好"], [None, "zh"])
    assert (logits[0] == 0).all() and (logits[1] != 0).any()


def test_out_of_fold_logits_come_from_models_that_did_not_see_the_text(classical, frames):
    train, _ = frames
    oof = classical.out_of_fold_logits(train, 2, folds=3)
    assert oof.shape == (len(train), 2)
    np.testing.assert_allclose(np.exp(oof).sum(1), 1.0, atol=1e-4)  # log-probabilities
    # Each text ends in its own number, an n-gram the held-out fold's model never saw: out of fold it is less
    # sure of the training texts than the model fitted on all of them.
    full = np.log(classical.predict_proba(train, 2))
    y = train["label"].to_numpy()
    assert oof[np.arange(len(y)), y].mean() < full[np.arange(len(y)), y].mean()


def test_fits_in_worker_processes_equal_fits_one_after_the_other(classical, frames):
    train, val = frames
    parallel = TunedClassical([1.0, 4.0], 500, jobs=2).fit(train, val)
    assert parallel.chosen_C == classical.chosen_C
    np.testing.assert_allclose(parallel.predict_proba(val, 2), classical.predict_proba(val, 2), atol=1e-12)
    np.testing.assert_allclose(
        parallel.out_of_fold_logits(train, 2, folds=3), classical.out_of_fold_logits(train, 2, folds=3), atol=1e-12
    )


def test_a_bundle_with_an_ngram_half_adds_its_logits(bundle, classical, tmp_path):
    import shutil

    from sora.inference import load_bundle

    texts, langs = ["这部电影很好看", "a good movie"], ["zh", "en"]
    plain = load_bundle(bundle)
    folder = tmp_path / "bundle"
    shutil.copytree(bundle, folder)
    ngram = classical.ngram_model(2)
    ngram.save(folder)
    both = load_bundle(folder)
    assert plain.ngram is None and both.ngram is not None
    network = torch.log(torch.tensor(plain.predict_proba(texts, langs), dtype=torch.float64))
    expected = torch.softmax(network + torch.tensor(ngram.logits(texts, langs), dtype=torch.float64), -1).numpy()
    np.testing.assert_allclose(both.predict_proba(texts, langs), expected, atol=1e-5)
    frame = both.predict_frame(texts)
    np.testing.assert_allclose(frame["prob_positive"], expected[:, 1], atol=1e-5)
