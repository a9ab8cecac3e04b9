"""Foundations the classifier builds on: PPMI word vectors (sora.training.ppmi) and the vocabulary's hashed
character-trigram fallback for unknown English words (sora.data.vocab)."""

from __future__ import annotations

import random
import zlib

import numpy as np
import pytest
import torch

from sora.data.vocab import Vocab, trigrams
from sora.training.ppmi import cooccurrence, nearest, ppmi, ppmi_encoder, ppmi_vectors


def two_topic_texts(n: int = 200, seed: int = 0) -> list[list[str]]:
    """'good'/'great' share every context, as do 'apple'/'pear'; the two topics share no word. 'lonely' is a
    one-word text (no context at all)."""
    rng = random.Random(seed)
    texts = []
    for _ in range(n):
        texts.append(["the", "movie", "was", rng.choice(["good", "great"]), "today"])
        texts.append([rng.choice(["apple", "pear"]), "pie", "tastes", "sweet"])
    return [*texts, ["lonely"]]


@pytest.fixture(scope="module")
def topics(specials):
    texts = two_topic_texts()
    vocab = Vocab.build([*texts, ["orphan"]], specials, min_freq=1, max_size=100)  # 'orphan': in no text
    return texts, vocab


def ignored(vocab: Vocab) -> set[int]:
    return {vocab.pad_id, vocab.unk_id, vocab.cls_id}


def cosine(vectors: np.ndarray, vocab: Vocab, a: str, b: str) -> float:
    x, y = vectors[vocab.stoi[a]], vectors[vocab.stoi[b]]
    return float(x @ y / (np.linalg.norm(x) * np.linalg.norm(y)))


# ---------------------------------------------------------------- PPMI


def test_shared_contexts_give_near_vectors_and_disjoint_ones_orthogonal(topics):
    texts, vocab = topics
    ids = [vocab.ids(t) for t in texts]
    vectors, found, spectrum = ppmi_vectors(ids, len(vocab), 16, 2, ignored(vocab), seed=0, norm=1.0)
    assert vectors.shape == (len(vocab), 16) and vectors.dtype == np.float32
    assert cosine(vectors, vocab, "good", "great") > 0.9
    assert cosine(vectors, vocab, "apple", "pear") > 0.9
    for a, b in (("good", "apple"), ("great", "pear"), ("movie", "pie"), ("today", "sweet")):
        assert abs(cosine(vectors, vocab, a, b)) < 0.05, (a, b)
    assert np.all(np.diff(spectrum) <= 1e-9) and spectrum[0] > 0  # singular values, largest first


def test_found_is_false_for_ignored_unseen_and_contextless_ids(topics):
    texts, vocab = topics
    ids = [vocab.ids(t) for t in texts]
    ids[0] = [vocab.cls_id, *ids[0], vocab.unk_id, vocab.pad_id]  # ignored ids inside a text
    _, found, _ = ppmi_vectors(ids, len(vocab), 16, 2, ignored(vocab), seed=0, norm=1.0)
    for token in ("<pad>", "<unk>", "<cls>", "orphan", "lonely"):
        assert not found[vocab.stoi[token]], token
    for token in ("the", "good", "great", "apple", "sweet"):
        assert found[vocab.stoi[token]], token


def test_ignored_ids_count_as_neither_word_nor_context():
    counts = cooccurrence([[4, 1, 5]], vocab_size=6, window=2, ignore={1})
    assert counts[1].nnz == 0 and counts[:, 1].nnz == 0
    assert counts[4, 5] == pytest.approx(0.5)  # still counted at its distance, across the ignored id


def test_cooccurrence_never_crosses_text_boundaries():
    a, b, c, d = 2, 3, 4, 5
    counts = cooccurrence([[a, b], [c, d]], vocab_size=6, window=3, ignore=set()).toarray()
    assert counts[b, c] == 0 and counts[c, b] == 0 and counts[a, c] == 0 and counts[a, d] == 0
    assert counts[a, b] == 1 and counts[c, d] == 1
    # Within a text, pairs are weighted 1 / distance, and the matrix is symmetric.
    counts = cooccurrence([[a, b, c, d]], vocab_size=6, window=3, ignore=set()).toarray()
    assert counts[a, b] == pytest.approx(1.0) and counts[a, c] == pytest.approx(0.5)
    assert counts[a, d] == pytest.approx(1 / 3)
    np.testing.assert_allclose(counts, counts.T)
    assert cooccurrence([[a, b, c, d]], vocab_size=6, window=1, ignore=set())[a, c] == 0


def test_ppmi_keeps_only_positive_associations():
    # 2 and 3 always together, 4 and 5 always together: positive PMI inside each pair, none across.
    counts = cooccurrence([[2, 3]] * 5 + [[4, 5]] * 5, vocab_size=6, window=1, ignore=set())
    matrix = ppmi(counts).toarray()
    assert matrix[2, 3] > 0 and matrix[4, 5] > 0
    assert matrix[2, 4] == 0 and matrix[2, 5] == 0 and (matrix >= 0).all()


def test_rows_are_scaled_to_the_requested_norm(topics):
    texts, vocab = topics
    ids = [vocab.ids(t) for t in texts]
    vectors, found, _ = ppmi_vectors(ids, len(vocab), 16, 2, ignored(vocab), seed=0, norm=2.5)
    np.testing.assert_allclose(np.linalg.norm(vectors[found], axis=1), 2.5, rtol=1e-5)
    assert (np.linalg.norm(vectors[~found], axis=1) < 0.5).all()  # the small random ones


def test_ppmi_encoder_holds_the_vectors_and_is_seeded(topics, tiny_model):
    texts, vocab = topics
    encoder, share, spectrum = ppmi_encoder(vocab, texts, tiny_model, window=2, seed=0)
    ids = [vocab.ids(t) for t in texts]
    vectors, found, expected_spectrum = ppmi_vectors(
        ids, len(vocab), tiny_model.d_model, 2, ignored(vocab), seed=0, norm=1.0
    )
    weight = encoder.tok.weight.detach().numpy()
    assert weight.shape == (len(vocab), tiny_model.d_model)
    assert np.all(weight[vocab.pad_id] == 0)
    rows = [i for i in range(len(vocab)) if i != vocab.pad_id]
    np.testing.assert_allclose(weight[rows], vectors[rows], atol=1e-6)
    assert share == pytest.approx(found.mean())
    np.testing.assert_allclose(spectrum, expected_spectrum)

    again, _, _ = ppmi_encoder(vocab, texts, tiny_model, window=2, seed=0)
    other, _, _ = ppmi_encoder(vocab, texts, tiny_model, window=2, seed=1)
    state, state_again, state_other = encoder.state_dict(), again.state_dict(), other.state_dict()
    assert all(torch.equal(state[k], state_again[k]) for k in state)
    assert not torch.equal(state["pos.weight"], state_other["pos.weight"])  # the rest is seeded too
    assert cosine(weight, vocab, "good", "great") > 0.9


def test_nearest_returns_the_neighbour_word(topics):
    texts, vocab = topics
    vectors, _, _ = ppmi_vectors([vocab.ids(t) for t in texts], len(vocab), 16, 2, ignored(vocab), 0, 1.0)
    assert nearest(vectors, vocab, "good", k=1) == ["great"]
    assert nearest(vectors, vocab, "pear", k=1) == ["apple"]
    three = nearest(vectors, vocab, "good", k=3)
    assert len(three) == 3 and "good" not in three and not set(three) & set(vocab.specials)
    assert nearest(vectors, vocab, "not-a-word") == []


# ---------------------------------------------------------------- vocabulary: hashed trigrams


BUCKETS = 16
TEXTS = [["great", "movie", "great", "film"], ["好", "电影"], ["喜欢", "欢乐"]] * 2


def test_trigrams_mark_word_boundaries():
    assert trigrams("cat") == ["<ca", "cat", "at>"]
    assert trigrams("a") == ["<a>"]


def test_hash_buckets_are_appended_within_max_size(specials):
    plain = Vocab.build(TEXTS, specials, min_freq=1, max_size=100)
    hashed = Vocab.build(TEXTS, specials, min_freq=1, max_size=100, hash_buckets=BUCKETS)
    assert len(hashed) == len(plain) + BUCKETS
    assert hashed.itos[: len(plain)] == plain.itos
    assert hashed.itos[-BUCKETS:] == [f"<#{i}>" for i in range(BUCKETS)]
    small = Vocab.build(TEXTS, specials, min_freq=1, max_size=len(specials) + BUCKETS + 3, hash_buckets=BUCKETS)
    assert len(small) == len(specials) + BUCKETS + 3 and small.itos[-BUCKETS:] == hashed.itos[-BUCKETS:]


def test_unknown_english_word_maps_to_its_trigram_buckets(specials):
    vocab = Vocab.build(TEXTS, specials, min_freq=1, max_size=100, hash_buckets=BUCKETS)
    ids = vocab.ids(["zqxv"])
    first = len(vocab) - BUCKETS
    assert ids == [first + zlib.crc32(g.encode()) % BUCKETS for g in trigrams("zqxv")]
    assert len(ids) == 4 and all(first <= i < len(vocab) for i in ids)
    assert vocab.ids(["ZQXV"]) == ids  # lower-cased first
    # Stable across Vocab objects (no per-process hash salt), built or loaded.
    again = Vocab.build(TEXTS, specials, min_freq=1, max_size=100, hash_buckets=BUCKETS)
    assert again.ids(["zqxv", "blorp"]) == vocab.ids(["zqxv", "blorp"])
    # Known words, one-edit typos and Chinese words are unaffected; non-alphabetic tokens are still <unk>.
    assert vocab.decode(vocab.ids(["great", "graet", "gr8"])) == ["great", "great", "<unk>"]
    assert vocab.decode(vocab.ids(["喜乐"])) == ["喜", "乐"]
    assert vocab.encode(["zqxv"], max_len=16) == [vocab.cls_id, *ids]


def test_hash_buckets_round_trip_and_default_off(specials, tmp_path):
    vocab = Vocab.build(TEXTS, specials, min_freq=1, max_size=100, hash_buckets=BUCKETS)
    loaded = Vocab.from_dict(vocab.to_dict())
    assert loaded.hash_buckets == BUCKETS and loaded.itos == vocab.itos
    assert loaded.ids(["zqxv"]) == vocab.ids(["zqxv"])
    vocab.save(tmp_path / "vocab.json")
    assert Vocab.load(tmp_path / "vocab.json").ids(["zqxv"]) == vocab.ids(["zqxv"])
    old = vocab.to_dict()
    del old["hash_buckets"]  # a vocabulary saved before hash buckets existed
    assert Vocab.from_dict(old).hash_buckets == 0

    plain = Vocab.build(TEXTS, specials, min_freq=1, max_size=100)
    assert plain.hash_buckets == 0 and plain.decode(plain.ids(["zqxv"])) == ["<unk>"]


def test_char_ngram_table_gives_words_their_character_ngrams_and_specials_none():
    vocab = Vocab.build([["cat", "cat", "好看", "好看"]], ["<pad>", "<unk>", "<cls>", "<mask>"], 1, 100, 2)
    table = vocab.char_ngram_table(buckets=1000, width=8)
    assert len(table) == len(vocab) and all(len(row) == 8 for row in table)
    assert all(g == 1000 for row in table[:4] for g in row)  # specials
    assert all(g == 1000 for row in table[-2:] for g in row)  # hash buckets
    cat = [g for g in table[vocab.stoi["cat"]] if g != 1000]
    assert len(cat) == 8  # " c", "ca", "at", "t ", " ca", "cat", "at ", " cat" (then the width cuts)
    hao = [g for g in table[vocab.stoi["好看"]] if g != 1000]
    assert len(hao) == 3  # 好, 看, 好看
    assert table == Vocab.from_dict(vocab.to_dict()).char_ngram_table(buckets=1000, width=8)  # stable ids
