"""The wide (bag of unigrams + hashed bigrams) part of Classifier and its closed-form warm start."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from sora.models.classifier import MAX_CHAR_GRAMS, Classifier, build_classifier, pad_ids
from sora.training.wide import design_matrix, fit_wide

VOCAB_SIZE, PAD, CLS = 30, 0, 2
FIRST_WORD = 4  # ids below are specials


@pytest.fixture(scope="module")
def wide_params(tiny_model):
    return tiny_model.model_copy(update={"wide_buckets": 64})


def make_model(params, seed: int = 0, random_wide: bool = True) -> Classifier:
    torch.manual_seed(seed)
    model = build_classifier(VOCAB_SIZE, PAD, params, 2)
    if random_wide and params.wide_buckets:
        with torch.no_grad():
            model.wide_unigram.weight.normal_()
            model.wide_bigram.weight.normal_()
    return model.eval()


def random_ids(rng: random.Random, min_words: int = 1, max_words: int = 10) -> list[int]:
    """[CLS] + words drawn from a small range, so repeated unigrams and bigrams are common."""
    return [CLS] + [rng.randrange(FIRST_WORD, 12) for _ in range(rng.randint(min_words, max_words))]


def stacked_weights(model: Classifier) -> np.ndarray:
    buckets = model.wide_buckets
    tables = [model.wide_unigram.weight, model.wide_bigram.weight, model.wide_char.weight[:buckets]]
    return torch.cat(tables).detach().double().numpy()


def test_padding_changes_neither_wide_nor_forward(wide_params):
    model = make_model(wide_params)
    ids = torch.tensor([[CLS, 5, 6, 7, 5, 6]])
    padded = torch.cat([ids, torch.full((1, 5), PAD)], dim=1)
    with torch.no_grad():
        wide, wide_padded = model.wide(ids), model.wide(padded)
        out, out_padded = model(ids), model(padded)
    assert wide.abs().sum() > 0  # the random tables make the check meaningful
    assert torch.allclose(wide, wide_padded, atol=1e-6)
    assert torch.allclose(out, out_padded, atol=1e-5)
    # A batch of different lengths (padded to the longest) gives each row what it gets alone.
    rng = random.Random(1)
    seqs = [random_ids(rng) for _ in range(6)]
    with torch.no_grad():
        batched = model(pad_ids(seqs, PAD))
        alone = torch.cat([model(torch.tensor([s])) for s in seqs])
    assert torch.allclose(batched, alone, atol=1e-5)


def test_wide_equals_design_matrix_times_tables(wide_params):
    model = make_model(wide_params, seed=1)
    rng = random.Random(0)
    seqs = [random_ids(rng) for _ in range(20)] + [[CLS, 9], [CLS, 9, 9, 9]]
    x = design_matrix(model, seqs)
    assert x.shape == (len(seqs), VOCAB_SIZE + 2 * wide_params.wide_buckets)
    expected = x @ stacked_weights(model)
    with torch.no_grad():
        got = model.wide(pad_ids(seqs, PAD)).double().numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5)
    # [CLS] x 9 x 9 x 9: three unigrams and two (identical) bigrams over sqrt(5), [CLS] not among them.
    rows, cols = model.wide_columns([[CLS, 9, 9, 9]])
    assert CLS not in cols and list(cols).count(9) == 3 and len(cols) == 5 and not rows.any()
    assert cols[3] == cols[4] and VOCAB_SIZE <= cols[3] < VOCAB_SIZE + wide_params.wide_buckets
    assert x[len(seqs) - 1, 9] == pytest.approx(3 / np.sqrt(5))
    # Features are exactly the columns: padding and position 0 are not words.
    columns = lambda ids: sorted(model.wide_columns([ids])[1].tolist())
    assert columns([CLS, 9, 10, PAD, PAD]) == columns([CLS, 9, 10])
    assert columns([CLS]) == []
    # Rows stay apart: no bigram across the end of one text and the start of the next.
    rows, cols = model.wide_columns([[CLS, 9, 10], [CLS], [CLS, 11]])
    assert sorted(rows.tolist()) == [0] * len(columns([CLS, 9, 10])) + [2] * len(columns([CLS, 11]))


def test_wide_is_a_linear_model_on_l2_normalised_tfidf(wide_params):
    """With idf set from training texts, wide() equals the design matrix times the tables, and for texts without
    a repeated feature that design matrix is scikit-learn's TfidfTransformer (smooth idf, L2 norm) restricted to
    the features seen in training."""
    from sklearn.feature_extraction.text import TfidfTransformer

    from sora.training.wide import occurrences, set_idf

    model = make_model(wide_params, seed=2)
    rng = random.Random(3)
    train = [random_ids(rng) for _ in range(40)]
    set_idf(model, occurrences(model, train))
    assert model.idf_unigram[FIRST_WORD] > 1 and model.idf_unigram[20] == 0  # 20 never occurs: out of the norm
    seqs = [[CLS, 5, 6, 7], [CLS, 9, 10, 20], [CLS, 11, 8]]  # no repeated word or bigram
    x, coef = design_matrix(model, seqs), stacked_weights(model)
    with torch.no_grad():  # the tables carry weight x idf (what fit_wide copies in)
        for table, idf in ((model.wide_unigram, model.idf_unigram), (model.wide_bigram, model.idf_bigram)):
            table.weight.mul_(idf.unsqueeze(1))
        model.wide_char.weight.mul_(model.idf_char.unsqueeze(1))
        got = model.wide(pad_ids(seqs, PAD)).double().numpy()
    np.testing.assert_allclose(got, x @ coef, atol=1e-5)

    seen = np.flatnonzero(occurrences(model, train).sum(0).A.ravel() > 0)
    reference = TfidfTransformer().fit(occurrences(model, train)[:, seen]).transform(occurrences(model, seqs)[:, seen])
    np.testing.assert_allclose(x[:, seen].toarray(), reference.toarray(), atol=1e-6)
    assert x[:, np.setdiff1d(np.arange(x.shape[1]), seen)].nnz == 0


def synthetic_task(seed: int, n: int, share_of_ones: float = 0.5) -> tuple[list[list[int]], np.ndarray]:
    """Token 7 => label 1, token 8 => label 0, among random filler tokens 9..29."""
    rng = random.Random(seed)
    id_lists, labels = [], []
    for _ in range(n):
        label = int(rng.random() < share_of_ones)
        words = [rng.randrange(9, VOCAB_SIZE) for _ in range(rng.randint(2, 6))]
        words.insert(rng.randint(0, len(words)), 7 if label else 8)
        id_lists.append([CLS, *words])
        labels.append(label)
    return id_lists, np.array(labels)


def test_fit_wide_copies_the_fitted_logistic_regression(wide_params):
    model = make_model(wide_params, random_wide=False)
    # Mostly ones in train: a heavily regularised fit falls back to its intercept and says 1 for everything.
    train_ids, train_labels = synthetic_task(0, 400, share_of_ones=0.75)
    val_ids, val_labels = synthetic_task(1, 60)
    Cs = [0.001, 1.0, 100.0]
    result = fit_wide(model, train_ids, train_labels, val_ids, val_labels, Cs)
    assert result["C"] in Cs

    # The choice is the first C with the best val accuracy, and val_acc is that accuracy.
    x_train, x_val = design_matrix(model, train_ids), design_matrix(model, val_ids)
    fits = {C: LogisticRegression(C=C, max_iter=2000).fit(x_train, train_labels) for C in Cs}
    accs = [float((fits[C].predict(x_val) == val_labels).mean()) for C in Cs]
    assert result["C"] == Cs[int(np.argmax(accs))]
    assert result["val_acc"] == pytest.approx(max(accs), abs=1e-5)
    assert result["val_acc"] == 1.0  # the task is separable
    assert accs[0] < 1.0  # the heavily regularised fit is not: the choice mattered

    # The wide part alone (plus the head bias the intercept went to) is the fitted model.
    with torch.no_grad():
        logits = model.wide(pad_ids(val_ids, PAD)) + model.head.bias
    diff = (logits[:, 1] - logits[:, 0]).double().numpy()
    decision = fits[result["C"]].decision_function(x_val)
    np.testing.assert_allclose(diff, decision, rtol=1e-4, atol=1e-4)
    assert np.array_equal(diff > 0, decision > 0)
    assert float(((diff > 0).astype(int) == val_labels).mean()) == result["val_acc"]
    assert model.wide_unigram.weight[7, 1] > model.wide_unigram.weight[7, 0]
    assert model.wide_unigram.weight[8, 0] > model.wide_unigram.weight[8, 1]


def test_fit_wide_rejects_more_classes_than_the_model_has(wide_params):
    model = make_model(wide_params, random_wide=False)
    ids, _ = synthetic_task(0, 30)
    labels = np.arange(30) % 3
    with pytest.raises(ValueError, match="3 classes"):
        fit_wide(model, ids, labels, ids, labels, [1.0])
    assert model.wide_unigram.weight.abs().sum() == 0  # nothing was copied


def test_zero_initialised_wide_part_adds_exactly_nothing(tiny_model, wide_params):
    deep = make_model(tiny_model, seed=3)
    wide = make_model(wide_params, seed=3, random_wide=False)
    assert all(t.weight.abs().sum() == 0 for t in (wide.wide_unigram, wide.wide_bigram, wide.wide_char))
    missing, unexpected = wide.load_state_dict(deep.state_dict(), strict=False)
    tables = {"wide_unigram.weight", "wide_bigram.weight", "wide_char.weight", "char_ngrams"}
    assert set(missing) == tables | {"idf_unigram", "idf_bigram", "idf_char"}
    assert not unexpected
    ids = pad_ids([random_ids(random.Random(i)) for i in range(5)], PAD)
    with torch.no_grad():
        assert torch.equal(wide.wide(ids), torch.zeros(5, 2))
        assert torch.equal(wide(ids), deep(ids))
    assert not hasattr(deep, "wide_unigram")  # wide_buckets=0: Transformer only


def test_character_ngrams_of_a_token_count_in_wide_and_in_the_design_matrix(wide_params):
    model = make_model(wide_params, seed=3)
    buckets = wide_params.wide_buckets
    table = torch.full((VOCAB_SIZE, MAX_CHAR_GRAMS), buckets)
    table[9, :3] = torch.tensor([1, 2, 2])  # token 9 has three n-grams, one of them twice
    model.set_char_ngrams(table)
    with torch.no_grad():
        model.wide_char.weight.normal_()
        model.wide_char.weight[buckets].zero_()  # the filler row stays silent
    seqs = [[CLS, 9, 10], [CLS, 10, 11]]
    x = design_matrix(model, seqs)
    assert x[0].nnz == 2 + 1 + 2  # two words, one bigram, two distinct n-gram columns (one counted twice)
    assert x[0, VOCAB_SIZE + buckets + 2] == pytest.approx(2 / np.sqrt(6))
    with torch.no_grad():
        got = model.wide(pad_ids(seqs, PAD)).double().numpy()
    np.testing.assert_allclose(got, x @ stacked_weights(model), atol=1e-5)


def test_int8_with_quantised_embeddings_runs_the_wide_part(wide_params):
    from sora.compression import quantize_dynamic_int8

    model = make_model(wide_params, seed=4).eval()
    table = torch.full((VOCAB_SIZE, MAX_CHAR_GRAMS), wide_params.wide_buckets)
    table[5:, :2] = torch.arange(2 * (VOCAB_SIZE - 5)).view(-1, 2) % wide_params.wide_buckets
    model.set_char_ngrams(table)
    with torch.no_grad():
        for t in (model.wide_unigram, model.wide_bigram, model.wide_char):
            t.weight.normal_(0, 0.5)
        model.wide_char.weight[wide_params.wide_buckets].zero_()
    x = pad_ids([[CLS, 5, 6, 7, 8], [CLS, 9, 10]], PAD)
    q = quantize_dynamic_int8(model, quantize_embeddings=True)
    with torch.inference_mode():
        torch.testing.assert_close(q(x), model(x), atol=0.1, rtol=0)
